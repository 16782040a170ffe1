//! Overflow-free arithmetic shared by the algorithms (products in `u128`).

/// `a * b` without overflow.
pub(crate) fn mul(a: u64, b: u64) -> u128 {
    u128::from(a).saturating_mul(u128::from(b))
}

/// A `u128` duration or instant clamped into `u64`.
pub(crate) fn clamp_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `ceil(a / b)`; `None` when `b == 0`.
pub(crate) fn div_ceil(a: u128, b: u128) -> Option<u128> {
    let q = a.checked_div(b)?;
    let r = a.checked_rem(b)?;
    Some(if r > 0 { q.saturating_add(1) } else { q })
}
