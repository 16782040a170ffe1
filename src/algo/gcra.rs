//! Generic cell rate algorithm: a token bucket kept as one timestamp, exact to the microsecond.
//!
//! The emission interval `T = window / limit` is a rational number of µs (3 per second is one
//! per 333 333⅓ µs), so time is kept in units of `1 / limit` µs: there `T` is exactly `window`
//! units and nothing is ever rounded in the user's favour. `B` = `rule.burst()` is the most that
//! can pass at once; the tolerance is `τ = B × T`. The state is the theoretical arrival time
//! `tat` (stored as `tat × limit`): the bucket is full again at `tat`; a state with
//! `tat ≤ now` is as if absent.
//!
//! * with `tat0 = max(tat, now)` and `new_tat = tat0 + n × T`, a request of cost `n` is admitted
//!   iff `new_tat − now ≤ τ`, and then `tat = new_tat` — all in units, i.e.
//!   `tat0·L + n·W − now·L ≤ B·W`;
//! * `remaining` = `B − ceil((tat − now) / T)` clamped to `[0, B]` (after the charge);
//! * `retry_after` (denied, `n ≤ B`) = `ceil(new_tat − τ) − now` µs;
//! * `reset_after` = `ceil(tat) − now` µs (0 when `tat ≤ now`); the key expires at `ceil(tat)`.
//!
//! So over any span of `d` µs at most `B + limit × d / window` is admitted, exactly.
//!
//! **Debt** (`RL.CHARGE`): a charge past the capacity moves `tat` beyond `now + τ`; every
//! request waits until `tat − τ + n × T`, so the debt drains at the rule's rate. It is bounded
//! by one window: a charge never moves `tat` beyond `now + τ + W` (the excess is dropped), so a
//! debt never makes a key wait more than one window longer than an empty bucket does. The state
//! remembers that its last write left a debt ([`GcraState::debt`]).
//!
//! A clock step back can leave `tat − now > τ`, which no sequence of requests produces; such a
//! state is read as an empty bucket at `now` (`tat = now + τ`). A state whose last write left a
//! debt may legitimately be up to `τ + W` ahead: only beyond that is it a clock step, read as
//! the largest debt at `now` (`tat = now + τ + W`). So a debt is never clamped away, and a step
//! back of a day still costs at most `τ + W`. On a rule change the used part
//! of the bucket is kept in cells — `(tat − now) / T_old` cells become
//! `ceil((tat − now) × T_new / T_old)` µs under the new rule, capped at the new `τ` — so
//! raising the limit or the burst never denies a request the old rule would have admitted.
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
//! assert_eq!(state.unwrap().tat_us_ceil(&rule), 500_000);
//! let (d, _) = decide(state.as_ref(), &rule, 1, 0);
//! assert_eq!(d.retry_after, RetryAfter::After(100_000));
//! let (d, _) = decide(state.as_ref(), &rule, 0, 250_000);
//! assert_eq!(d.remaining, 2);
//! ```

use super::counter::{self, Counter};
use super::kind::{Bounds, Change, Fields, Kind};
use super::math::{clamp_u64, div_ceil, mul};
use super::{Decision, RetryAfter, Rule, MAX_TIMESTAMP_US};
use crate::bits::{bit_width, Packer, Unpacker};
use crate::varint::{put_u128, put_u64, Reader, Sink};

/// State of a gcra limiter.
///
/// Packed to 8-byte alignment: 24 bytes, so that `State` stays 32 bytes (a `u128` would align
/// the flag to 16 and grow every key's value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(8))]
pub struct GcraState {
    /// Theoretical arrival time × `limit`: when the bucket is full again, in units of
    /// `1 / limit` µs since the epoch.
    pub tat_scaled: u128,
    /// The last write left a debt (`tat` beyond `now + τ`): up to `τ + W` ahead is then not a
    /// clock step (see the module docs).
    pub debt: bool,
}

impl GcraState {
    /// A state from a whole-µs `tat` (how the first release stored it).
    ///
    /// ```
    /// use redis_ratelimit::algo::{gcra::GcraState, Algorithm, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 3, 1_000_000, None).unwrap();
    /// let tat = GcraState::from_tat_us(&rule, 7).tat_scaled; // packed: copied out
    /// assert_eq!(tat, 21);
    /// ```
    pub fn from_tat_us(rule: &Rule, tat_us: u64) -> GcraState {
        GcraState {
            tat_scaled: mul(tat_us, rule.limit()),
            debt: false,
        }
    }

    /// A state written at `now_us` with `tat_scaled`: in debt iff beyond `now + τ`.
    fn written(rule: &Rule, now_us: u64, tat_scaled: u128) -> GcraState {
        GcraState {
            tat_scaled,
            debt: tat_scaled > latest(rule, now_us, false),
        }
    }

    /// `tat` rounded up to whole µs (the key's expiry).
    pub fn tat_us_ceil(&self, rule: &Rule) -> u64 {
        clamp_u64(div_ceil(self.tat_scaled, u128::from(rule.limit())).unwrap_or(u128::MAX))
    }

    /// Whether `tat` is within bounds.
    pub fn is_valid(&self, rule: &Rule) -> bool {
        self.tat_us_ceil(rule) <= MAX_TIMESTAMP_US
    }

    /// Absolute µs at which the bucket is full again (`ceil(tat)`).
    pub fn expires_at_us(&self, rule: &Rule) -> u64 {
        self.tat_us_ceil(rule)
    }

    /// Whether `tat − now > τ` (`τ + W` after a debt): more of the bucket used than any write
    /// can have left (a clock step back).
    pub fn is_ahead(&self, rule: &Rule, now_us: u64) -> bool {
        self.tat_scaled > latest(rule, now_us, self.debt)
    }

    /// The most restrictive state possible at `now_us`: `tat` at most `now + τ` (`now + τ + W`
    /// after a debt).
    pub fn clamped(&self, rule: &Rule, now_us: u64) -> GcraState {
        GcraState {
            tat_scaled: self.tat_scaled.min(latest(rule, now_us, self.debt)),
            debt: self.debt,
        }
    }

    /// The state at `now_us`: `None` when the bucket is full (as absent).
    pub fn at(&self, rule: &Rule, now_us: u64) -> Option<GcraState> {
        (self.tat_scaled > now_scaled(rule, now_us)).then_some(*self)
    }

    /// Ages the state under `old` at `now_us`, then rescales the used cells to `new`'s units:
    /// `(tat − now)` of `T_old` becomes `ceil((tat − now) × T_new / T_old)`, at most `τ_new`.
    pub fn carried_over(&self, old: &Rule, new: &Rule, now_us: u64) -> Option<GcraState> {
        let aged = self.at(old, now_us)?;
        if old.limit() == new.limit() && old.window_us() == new.window_us() {
            return aged.at(new, now_us).map(|s| s.clamped(new, now_us));
        }
        // Used time in old units; cells = used / W_old; new units = cells × W_new.
        let used = aged.tat_scaled.saturating_sub(now_scaled(old, now_us));
        let w_old = u128::from(old.window_us());
        let w_new = u128::from(new.window_us());
        // used × W_new / W_old without overflow: used = q × W_old + r.
        let q = used.checked_div(w_old).unwrap_or(0);
        let r = used.checked_rem(w_old).unwrap_or(0);
        let scaled = q
            .saturating_mul(w_new)
            .saturating_add(div_ceil(r.saturating_mul(w_new), w_old).unwrap_or(0));
        let state = GcraState {
            tat_scaled: now_scaled(new, now_us).saturating_add(scaled),
            debt: aged.debt,
        };
        state.at(new, now_us).map(|s| s.clamped(new, now_us))
    }
}

/// `now` in units of `1 / limit` µs.
fn now_scaled(rule: &Rule, now_us: u64) -> u128 {
    mul(now_us, rule.limit())
}

/// The latest possible `tat` at `now`: `now + τ`, in units; `now + τ + W` with a debt.
fn latest(rule: &Rule, now_us: u64, debt: bool) -> u128 {
    let plain = now_scaled(rule, now_us).saturating_add(mul(rule.burst(), rule.window_us()));
    if debt {
        plain.saturating_add(mul(rule.window_us(), rule.limit()))
    } else {
        plain
    }
}

/// Charges `cost` at `now_us` against `state` (already under `rule` and clamped; `None` =
/// absent) whatever the capacity says (`RL.CHARGE`): `tat = max(tat, now) + n × T`, at most
/// `now + τ + W` (the debt's bound, see the module docs).
///
/// ```
/// use redis_ratelimit::algo::gcra::{charge, decide};
/// use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
/// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, Some(5)).unwrap(); // T = 100 ms, τ = 500 ms
/// let s = charge(None, &rule, 8, 0); // 3 cells of debt
/// assert!(s.debt && s.tat_us_ceil(&rule) == 800_000);
/// assert_eq!(decide(Some(&s), &rule, 1, 0).0.retry_after, RetryAfter::After(400_000));
/// // At most one window of debt: τ + W = 1.5 s.
/// assert_eq!(charge(None, &rule, 1_000, 0).tat_us_ceil(&rule), 1_500_000);
/// ```
pub fn charge(state: Option<&GcraState>, rule: &Rule, cost: u64, now_us: u64) -> GcraState {
    let now = now_scaled(rule, now_us);
    let tat0 = state.map_or(now, |s| s.tat_scaled.max(now));
    let tat = tat0
        .saturating_add(mul(cost, rule.window_us()))
        .min(latest(rule, now_us, true));
    GcraState::written(rule, now_us, tat)
}

/// Gives back up to `amount` cells (`RL.REFUND`): `tat − n × T`, not before `now`; `None` when
/// the bucket is then full (or was).
///
/// ```
/// use redis_ratelimit::algo::gcra::{refund, GcraState};
/// use redis_ratelimit::algo::{Algorithm, Rule};
/// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap(); // T = 100 ms
/// let s = GcraState::from_tat_us(&rule, 700_000);
/// assert_eq!(refund(Some(&s), &rule, 2, 0).unwrap().tat_us_ceil(&rule), 500_000);
/// assert_eq!(refund(Some(&s), &rule, 7, 0), None);
/// ```
pub fn refund(
    state: Option<&GcraState>,
    rule: &Rule,
    amount: u64,
    now_us: u64,
) -> Option<GcraState> {
    let s = state?;
    let tat = s.tat_scaled.saturating_sub(mul(amount, rule.window_us()));
    (tat > now_scaled(rule, now_us)).then(|| GcraState::written(rule, now_us, tat))
}

/// Decides a request of `cost` at `now_us` against `state` (already under `rule` and clamped;
/// `None` = absent). Returns the decision and, iff allowed with `cost > 0`, the state to store.
pub fn decide(
    state: Option<&GcraState>,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> (Decision, Option<GcraState>) {
    let limit = u128::from(rule.limit());
    let w = u128::from(rule.window_us());
    let burst = rule.burst();
    let tau = mul(burst, rule.window_us());
    let now = now_scaled(rule, now_us);
    // tat0 = max(tat, now)
    let tat0 = state.map_or(now, |s| s.tat_scaled.max(now));
    let remaining = |tat: u128| {
        let used = div_ceil(tat.saturating_sub(now), w).unwrap_or(u128::MAX);
        clamp_u64(u128::from(burst).saturating_sub(used))
    };
    let reset_after =
        |tat: u128| clamp_u64(div_ceil(tat.saturating_sub(now), limit).unwrap_or(u128::MAX));
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
    let new_tat = tat0.saturating_add(mul(cost, rule.window_us()));
    let over = new_tat.saturating_sub(now);
    if over <= tau {
        let decision = Decision {
            allowed: true,
            capacity: rule.capacity(),
            remaining: remaining(new_tat),
            retry_after: RetryAfter::Now,
            reset_after_us: reset_after(new_tat),
        };
        (
            decision,
            Some(GcraState {
                tat_scaled: new_tat,
                debt: false,
            }),
        )
    } else {
        // Passes at the first whole µs t with new_tat − t·L ≤ τ.
        let retry = div_ceil(over.saturating_sub(tau), limit).unwrap_or(u128::MAX);
        let decision = Decision {
            allowed: false,
            capacity: rule.capacity(),
            remaining: remaining(tat0),
            retry_after: RetryAfter::After(clamp_u64(retry).max(1)),
            reset_after_us: reset_after(tat0),
        };
        (decision, None)
    }
}

impl Counter for GcraState {
    /// Clamped, aged and carried over; the debt flag then says whether a debt is left.
    fn view(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self> {
        self.clamped(stored, now_us)
            .carried_over(stored, rule, now_us)
            .map(|s| GcraState::written(rule, now_us, s.tat_scaled))
    }

    fn decide_view(
        view: Option<&Self>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> (Decision, Option<Self>) {
        decide(view, rule, cost, now_us)
    }

    fn ahead(&self, rule: &Rule, now_us: u64) -> bool {
        self.is_ahead(rule, now_us)
    }
}

impl Kind for GcraState {
    const TAKES_BURST: bool = true;

    fn decide_absent(rule: &Rule, cost: u64, now_us: u64) -> (Decision, Option<Self>) {
        decide(None, rule, cost, now_us)
    }

    fn decide(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> (Decision, Change) {
        counter::decide(self, stored, rule, cost, now_us)
    }

    fn peek(&self, stored: &Rule, rule: &Rule, cost: u64, now_us: u64) -> Decision {
        counter::peek(self, stored, rule, cost, now_us)
    }

    fn carried_over(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self> {
        self.view(stored, rule, now_us)
    }

    fn is_ahead(&self, rule: &Rule, now_us: u64) -> bool {
        GcraState::is_ahead(self, rule, now_us)
    }

    fn expires_at_us(&self, rule: &Rule) -> u64 {
        GcraState::expires_at_us(self, rule)
    }

    fn is_valid(&self, rule: &Rule) -> bool {
        GcraState::is_valid(self, rule)
    }

    /// `tat × limit` (a varint of up to 128 bits), then, after a debt only, flags `1` (a field
    /// the previous payload version does not have: such a payload needs a current reader).
    fn encode(&self, out: &mut impl Sink) {
        put_u128(out, self.tat_scaled);
        if self.debt {
            put_u64(out, 1);
        }
    }

    fn decode(bytes: &mut Reader<'_>, _rule: &Rule) -> Option<Self> {
        Some(GcraState {
            tat_scaled: bytes.u128()?,
            debt: false,
        })
    }

    /// The flags, when present: bit 0 the debt (other bits are left to later versions).
    fn decode_current(&mut self, bytes: &mut Reader<'_>) -> Option<()> {
        if !bytes.is_empty() {
            self.debt = bytes.u64()? & 1 == 1;
        }
        Some(())
    }

    fn charge(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        *self = charge(self.view(stored, rule, now_us).as_ref(), rule, cost, now_us);
        Change::Updated
    }

    fn charge_absent(rule: &Rule, cost: u64, now_us: u64) -> Self {
        charge(None, rule, cost, now_us)
    }

    fn refund(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        amount: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        counter::refund(self, stored, rule, now_us, |v| {
            refund(Some(v), rule, amount, now_us)
        })
    }

    /// A bucket full since the epoch (never ahead of any clock).
    fn nothing(_rule: &Rule, _now_us: u64) -> Self {
        GcraState {
            tat_scaled: 0,
            debt: false,
        }
    }

    fn needs_current_reader(&self) -> bool {
        self.debt
    }

    /// `tat_us`: when the bucket is full again (rounded up to a µs).
    fn inspect(state: Option<&Self>, stored: &Rule, now_us: u64, out: &mut Fields) {
        let view = state.and_then(|s| s.view(stored, stored, now_us));
        out.push(("tat_us", view.map_or(0, |s| s.tat_us_ceil(stored))));
    }

    /// `tat × limit` as the anchor: the `tat`s of keys alive together lie within one bucket
    /// depth `τ = burst × window` (in these units) of each other, `τ + W` with debts. Where the
    /// packer has room for a debt's depth and one bit more, the debt flag goes first; where it
    /// has not (a deep bucket in the 47-bit value word), the flag is not stored and a state in
    /// debt does not pack there (the data type then tries the 16-byte block).
    #[inline(always)]
    fn pack(&self, rule: &Rule, out: &mut Packer) -> bool {
        let (flagged, min_bits) = debt_layout(rule, out.left());
        if flagged {
            out.uint(u64::from(self.debt), 1) && out.anchor(self.tat_scaled, min_bits)
        } else {
            !self.debt && out.anchor(self.tat_scaled, min_bits)
        }
    }

    /// Always: its fields decide.
    #[inline(always)]
    fn may_pack(&self) -> bool {
        true
    }

    #[inline(always)]
    fn unpack(rule: &Rule, bits: &mut Unpacker) -> Option<Self> {
        let (flagged, _) = debt_layout(rule, bits.left());
        let debt = flagged && bits.uint(1)? == 1;
        Some(GcraState {
            tat_scaled: bits.anchor()?,
            debt,
        })
    }
}

/// The packed layout of a gcra state under `rule` in `left` bits: whether the debt flag is
/// stored, and the anchor's least width (a bucket's depth, a debt's depth with the flag).
#[inline(always)]
fn debt_layout(rule: &Rule, left: u32) -> (bool, u32) {
    let tau = mul(rule.burst(), rule.window_us());
    let deep = bit_width(tau.saturating_add(u128::from(rule.window_us())));
    if left > deep {
        (true, deep)
    } else {
        (false, bit_width(tau))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod unit {
    use super::*;
    use crate::algo::Algorithm;

    fn rule(limit: u64, w: u64, burst: Option<u64>) -> Rule {
        Rule::new(Algorithm::Gcra, limit, w, burst).unwrap()
    }

    #[test]
    fn three_per_second_is_exact() {
        let r = rule(3, 1_000_000, None);
        let (_, s) = decide(None, &r, 3, 0);
        // tat = 1 s exactly: the full quota is back after one window, not 999 999 µs.
        assert_eq!(s.unwrap().expires_at_us(&r), 1_000_000);
        let (d, _) = decide(s.as_ref(), &r, 1, 0);
        // One cell is 333 333⅓ µs: the next request passes at 333 334 µs.
        assert_eq!(d.retry_after, RetryAfter::After(333_334));
        let (d, _) = decide(s.as_ref(), &r, 1, 333_333);
        assert!(!d.allowed);
        assert!(decide(s.as_ref(), &r, 1, 333_334).0.allowed);
    }

    #[test]
    fn the_review_cases_are_exact() {
        // 600 000 per second, a whole second's quota at once: back only after a second.
        let r = rule(600_000, 1_000_000, None);
        let (d, s) = decide(None, &r, 600_000, 0);
        assert_eq!((d.allowed, d.reset_after_us), (true, 1_000_000));
        let (d, _) = decide(s.as_ref(), &r, 600_000, 600_000);
        assert_eq!(d.retry_after, RetryAfter::After(400_000));
        // More than one request per µs.
        let r = rule(1_000_000, 1_900_000, None);
        let (d, s) = decide(None, &r, 1_000_000, 0);
        assert_eq!(d.reset_after_us, 1_900_000);
        assert!(!decide(s.as_ref(), &r, 1_000_000, 1_899_999).0.allowed);
        assert!(decide(s.as_ref(), &r, 1_000_000, 1_900_000).0.allowed);
    }

    #[test]
    fn edges_limit_one() {
        let r = rule(1, 1_000, None);
        let (d, s) = decide(None, &r, 1, 5_000);
        assert_eq!((d.allowed, d.remaining, d.reset_after_us), (true, 0, 1_000));
        let s = s.unwrap();
        let (d, _) = decide(Some(&s), &r, 1, 5_999);
        assert_eq!(d.retry_after, RetryAfter::After(1));
        assert_eq!(d.reset_after_us, 1);
        let (d, w) = decide(Some(&s), &r, 1, 6_000);
        assert!(d.allowed);
        assert_eq!(w.unwrap().expires_at_us(&r), 7_000);
    }

    #[test]
    fn a_state_from_the_future_is_an_empty_bucket_now() {
        let r = rule(10, 1_000_000, Some(5)); // τ = 500 ms
        let day = 86_400_000_000u64;
        let s = GcraState::from_tat_us(&r, 1_000 + day);
        assert!(s.is_ahead(&r, 1_000));
        let c = s.clamped(&r, 1_000);
        assert_eq!(c.expires_at_us(&r), 501_000);
        let (d, _) = decide(Some(&c), &r, 1, 1_000);
        assert_eq!(d.retry_after, RetryAfter::After(100_000));
        assert_eq!(d.reset_after_us, 500_000);
    }

    #[test]
    fn rescale_keeps_used_cells() {
        let old = rule(10, 1_000, None); // T = 100
        let new = rule(3, 1_000, None); // T = 333⅓
        let s = GcraState::from_tat_us(&old, 1_250);
        // 2.5 cells used at 1_000 → 2.5 × 333⅓ = 833⅓ µs: tat' = 1 833⅓.
        let c = s.carried_over(&old, &new, 1_000).unwrap();
        assert_eq!({ c.tat_scaled }, 3 * 1_000 + 2_500);
        assert_eq!(c.expires_at_us(&new), 1_834);
        assert_eq!(s.carried_over(&old, &new, 1_250), None);
        // A lower burst caps the used cells at the new tolerance.
        let small = rule(10, 1_000, Some(1));
        let c = s.carried_over(&old, &small, 1_000).unwrap();
        assert_eq!(c.expires_at_us(&small), 1_100);
    }
}
