//! Generic cell rate algorithm: a token bucket kept as one timestamp, with µs precision.
//!
//! `T` = `rule.emission_interval_us()` = `window / limit` **rounded down to whole µs** (so the
//! sustained rate is `limit` per `window` or slightly faster when `window` is not a multiple of
//! `limit`: 3 per second runs at one per 333 333 µs). `B` = `rule.burst()` is the most that can
//! pass at once, the tolerance is `τ = B × T`. The state is the theoretical arrival time `tat`:
//! the bucket is full again at `tat`; a state with `tat ≤ now` is as if absent.
//!
//! * with `tat0 = max(tat, now)` and `new_tat = tat0 + n × T`, a request of cost `n` is admitted
//!   iff `new_tat − now ≤ τ`, and then `tat = new_tat`;
//! * `remaining` = `B − ceil((tat − now) / T)` clamped to `[0, B]` (after the charge);
//! * `retry_after` (denied, `n ≤ B`) = `new_tat − τ − now`;
//! * `reset_after` = `tat − now` (0 when `tat ≤ now`); the expiry is `tat`.
//!
//! A clock step back simply makes `tat − now` larger (more of the bucket looks used). On a rule
//! change the used part of the bucket is kept in cells: if `tat > now`,
//! `tat' = now + ceil((tat − now) × T_new / T_old)` (capped at `MAX_TIMESTAMP_US`); so raising
//! the limit or burst never denies a request the old rule would have admitted.
//!
//! Worked example: 10 per second with burst 5 (`T` = 100 ms, `τ` = 500 ms). On an empty bucket
//! at 0 a cost-5 request passes (`tat` = 500 ms, `remaining` 0, `reset_after` 500 ms); another
//! request at 0 is denied with `retry_after` = 600 − 500 − 0 = 100 ms. At 250 ms `remaining` is
//! `5 − ceil(250 / 100) = 2`.
//!
//! ```
//! use redis_ratelimit::algo::gcra::{decide, GcraState};
//! use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
//! let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, Some(5)).unwrap();
//! let (d, state) = decide(None, &rule, 5, 0);
//! assert_eq!((d.allowed, d.remaining, d.reset_after_us), (true, 0, 500_000));
//! assert_eq!(state, Some(GcraState { tat_us: 500_000 }));
//! let (d, _) = decide(state.as_ref(), &rule, 1, 0);
//! assert_eq!(d.retry_after, RetryAfter::After(100_000));
//! let (d, _) = decide(state.as_ref(), &rule, 0, 250_000);
//! assert_eq!(d.remaining, 2);
//! ```

use super::{clamp_u64, mul, Decision, RetryAfter, Rule, MAX_TIMESTAMP_US};

/// State of a gcra limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraState {
    /// Theoretical arrival time: when the bucket is full again, µs since the epoch.
    pub tat_us: u64,
}

impl GcraState {
    /// Whether the timestamp is within bounds.
    pub fn is_valid(&self) -> bool {
        self.tat_us <= MAX_TIMESTAMP_US
    }

    /// Absolute µs at which the bucket is full again (`tat`).
    pub fn expires_at_us(&self) -> u64 {
        self.tat_us
    }

    /// The state as seen at `now_us`: `None` when the bucket is full (as absent).
    pub fn at(&self, now_us: u64) -> Option<GcraState> {
        (self.tat_us > now_us).then_some(*self)
    }

    /// Ages the state at `now_us`, then rescales the used cells from `old`'s emission interval
    /// to `new`'s: `tat' = now + ceil((tat − now) × T_new / T_old)`, at most `MAX_TIMESTAMP_US`.
    pub fn carried_over(&self, old: &Rule, new: &Rule, now_us: u64) -> Option<GcraState> {
        let aged = self.at(now_us)?;
        let (t_old, t_new) = (old.emission_interval_us(), new.emission_interval_us());
        if t_old == t_new {
            return Some(aged);
        }
        let used = mul(aged.tat_us.saturating_sub(now_us), t_new);
        let Some(scaled) = div_ceil(used, u128::from(t_old)) else {
            return Some(aged); // t_old == 0: not a gcra rule, nothing sensible to rescale
        };
        // More used cells than fit before year 9999 mean "practically never": keep it storable.
        let latest = MAX_TIMESTAMP_US.max(now_us.saturating_add(1));
        Some(GcraState {
            tat_us: clamp_u64(u128::from(now_us).saturating_add(scaled)).min(latest),
        })
    }
}

/// Decides a request of `cost` at `now_us` against `state` (already under `rule`; `None` =
/// absent). Returns the decision and, iff allowed with `cost > 0`, the state to store.
pub fn decide(
    state: Option<&GcraState>,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> (Decision, Option<GcraState>) {
    let t = rule.emission_interval_us().max(1);
    let burst = rule.burst();
    let tau = mul(burst, t);
    let now = u128::from(now_us);
    // tat0 = max(tat, now)
    let tat0 = state
        .and_then(|s| s.at(now_us))
        .map_or(now, |s| u128::from(s.tat_us));
    let remaining = |tat: u128| {
        let used = div_ceil(tat.saturating_sub(now), u128::from(t)).unwrap_or(u128::MAX);
        clamp_u64(u128::from(burst).saturating_sub(used))
    };
    let reset_after = |tat: u128| clamp_u64(tat.saturating_sub(now));
    if cost == 0 || cost > burst {
        let decision = Decision {
            allowed: cost == 0,
            capacity: rule.capacity(),
            remaining: remaining(tat0),
            retry_after: if cost == 0 {
                RetryAfter::Now
            } else {
                RetryAfter::Never
            },
            reset_after_us: reset_after(tat0),
        };
        return (decision, None);
    }
    let new_tat = tat0.saturating_add(mul(cost, t));
    let over = new_tat.saturating_sub(now);
    if over <= tau {
        let written = GcraState {
            tat_us: clamp_u64(new_tat),
        };
        let tat = u128::from(written.tat_us);
        let decision = Decision {
            allowed: true,
            capacity: rule.capacity(),
            remaining: remaining(tat),
            retry_after: RetryAfter::Now,
            reset_after_us: reset_after(tat),
        };
        (decision, Some(written))
    } else {
        let decision = Decision {
            allowed: false,
            capacity: rule.capacity(),
            remaining: remaining(tat0),
            retry_after: RetryAfter::After(clamp_u64(over.saturating_sub(tau)).max(1)),
            reset_after_us: reset_after(tat0),
        };
        (decision, None)
    }
}

/// `ceil(a / b)`; `None` when `b == 0`.
fn div_ceil(a: u128, b: u128) -> Option<u128> {
    let q = a.checked_div(b)?;
    let r = a.checked_rem(b)?;
    Some(if r > 0 { q.saturating_add(1) } else { q })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod unit {
    use super::*;
    use crate::algo::Algorithm;

    #[test]
    fn emission_interval_rounds_down() {
        let r = Rule::new(Algorithm::Gcra, 3, 1_000_000, None).unwrap();
        assert_eq!(r.emission_interval_us(), 333_333);
        let (_, s) = decide(None, &r, 3, 0);
        assert_eq!(s.unwrap().tat_us, 999_999);
    }

    #[test]
    fn edges_limit_one() {
        let r = Rule::new(Algorithm::Gcra, 1, 1_000, None).unwrap();
        let (d, s) = decide(None, &r, 1, 5_000);
        assert_eq!((d.allowed, d.remaining, d.reset_after_us), (true, 0, 1_000));
        let s = s.unwrap();
        let (d, _) = decide(Some(&s), &r, 1, 5_999);
        assert_eq!(d.retry_after, RetryAfter::After(1));
        assert_eq!(d.reset_after_us, 1);
        let (d, w) = decide(Some(&s), &r, 1, 6_000);
        assert!(d.allowed);
        assert_eq!(w.unwrap().tat_us, 7_000);
        // Clock backwards: more of the bucket looks used.
        let (d, _) = decide(Some(&s), &r, 1, 4_990);
        assert_eq!(d.retry_after, RetryAfter::After(1_010));
        assert_eq!(d.reset_after_us, 1_010);
    }

    #[test]
    fn rescale_keeps_used_cells() {
        let old = Rule::new(Algorithm::Gcra, 10, 1_000, None).unwrap(); // T = 100
        let new = Rule::new(Algorithm::Gcra, 3, 1_000, None).unwrap(); // T = 333
        let s = GcraState { tat_us: 1_250 };
        // 2.5 cells used at 1_000 → ceil(2.5 × 333) = 833.
        assert_eq!(
            s.carried_over(&old, &new, 1_000),
            Some(GcraState { tat_us: 1_833 })
        );
        assert_eq!(s.carried_over(&old, &new, 1_250), None);
    }
}
