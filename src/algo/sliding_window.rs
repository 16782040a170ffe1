//! Sliding window counter over windows aligned to the Unix epoch (the default algorithm).
//!
//! Time is cut into windows `[k·W, (k+1)·W)` (`W` = `rule.window_us()`). The state counts the
//! cost admitted in the current window (`current`) and in the window right before it
//! (`previous`). At `now`, `e = now − window_start` µs into the current window, the *weighted
//! count* is
//!
//! ```text
//! previous × (W − e) / W  +  current
//! ```
//!
//! **Approximation:** this assumes the previous window's requests were spread evenly over it, and
//! counts only the share of them that still lies inside the sliding window `(now − W, now]`. If
//! they really came at the end of the previous window, up to about `2 × limit` can pass within
//! some span of length `W`; if they came at its start, fewer than `limit` may. Within one aligned
//! window never more than `limit` pass.
//!
//! Exact rules, all in integers (`u128`):
//!
//! * a request of cost `n` is admitted iff `previous × (W − e) + (current + n) × W ≤ limit × W`;
//! * `remaining` = `floor((limit × W − previous × (W − e)) / W) − current` (at least 0), counted
//!   after the charge: exactly that many further cost-1 requests would pass right now;
//! * `retry_after` = the exact earliest delay after which the same request would pass if nothing
//!   else arrived: later in the current window as the previous weight decays, else in the next
//!   window (where `current` becomes the previous count), at the latest at the start of the
//!   window after next;
//! * `reset_after` / expiry = `window_start + 2W` when `current > 0`, `window_start + W` when
//!   only `previous > 0`: the moment every weight has decayed to 0.
//!
//! A state whose current window starts after `now` (a clock step back, or a promoted replica
//! whose clock is behind) is read with its counts moved onto the window containing `now` and the
//! one before it (see [`SlidingWindowState::clamped`]). On a rule change with a new window length
//! the counts are kept as the new `current` / `previous`, and `window_start` moves to the new
//! grid's window containing `now`.
//!
//! Worked example: limit 10, `W` = 60 s. 8 requests passed in `[0 s, 60 s)` and 3 so far in
//! `[60 s, 120 s)`. At 75 s (`e` = 15 s) the weighted count is `8 × 45/60 + 3 = 9`, so
//! `remaining` is 1. A request of cost 2 is denied: it needs `8 × (60 s − e) ≤ (10 − 3 − 2) × 60 s`,
//! i.e. `e ≥ 22.5 s`, so `retry_after` is 7.5 s. `reset_after` is 45 s + 60 s = 105 s.
//!
//! ```
//! use redis_ratelimit::algo::sliding_window::{decide, SlidingWindowState};
//! use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
//! const S: u64 = 1_000_000;
//! let rule = Rule::new(Algorithm::SlidingWindow, 10, 60 * S, None).unwrap();
//! let state = SlidingWindowState { window_start_us: 60 * S, current: 3, previous: 8 };
//! let (d, write) = decide(Some(&state), &rule, 2, 75 * S);
//! assert!(!d.allowed && write.is_none());
//! assert_eq!(d.remaining, 1);
//! assert_eq!(d.retry_after, RetryAfter::After(7_500_000));
//! assert_eq!(d.reset_after_us, 105 * S);
//! let (d, _) = decide(Some(&state), &rule, 2, 75 * S + 7_500_000);
//! assert!(d.allowed);
//! ```

use super::counter::{self, Counter};
use super::kind::{Bounds, Change, Fields, Kind};
use super::math::{clamp_u64, mul};
use super::{Decision, RetryAfter, Rule, MAX_COUNT, MAX_TIMESTAMP_US};
use crate::bits::{Packer, Unpacker};
use crate::varint::{put_u64, Reader, Sink};

/// State of a sliding-window limiter: the costs admitted in the current and the previous
/// epoch-aligned window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindowState {
    /// Start of the current aligned window (a multiple of the window length), µs since the epoch.
    pub window_start_us: u64,
    /// Cost admitted in the current window.
    pub current: u64,
    /// Cost admitted in the window before the current one.
    pub previous: u64,
}

impl SlidingWindowState {
    /// Whether the fields are possible under `rule`: aligned start, bounded timestamp and counts.
    pub fn is_valid(&self, rule: &Rule) -> bool {
        self.window_start_us <= MAX_TIMESTAMP_US
            && self.current <= MAX_COUNT
            && self.previous <= MAX_COUNT
            && self.window_start_us.checked_rem(rule.window_us()) == Some(0)
    }

    /// Absolute µs at which every weight has decayed to 0 (0 for an empty state).
    pub fn expires_at_us(&self, rule: &Rule) -> u64 {
        expiry(self, rule.window_us())
    }

    /// Whether the current window starts after `now_us` (a clock step back).
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.window_start_us > now_us
    }

    /// The most restrictive state possible at `now_us`: a state whose windows lie in the future
    /// keeps its counts on the window containing `now_us` and the one before it.
    pub fn clamped(&self, rule: &Rule, now_us: u64) -> SlidingWindowState {
        if self.is_ahead(now_us) {
            SlidingWindowState {
                window_start_us: align(now_us, rule.window_us()),
                ..*self
            }
        } else {
            *self
        }
    }

    /// The state as seen at `now_us` under `rule`: rolled into the window containing `now_us`,
    /// `None` when equivalent to an absent key. (A state ahead of `now_us` is kept as it is:
    /// [`SlidingWindowState::clamped`] first.)
    pub fn at(&self, rule: &Rule, now_us: u64) -> Option<SlidingWindowState> {
        let w = rule.window_us();
        let end = self.window_start_us.saturating_add(w);
        let state = if now_us < end {
            *self
        } else if now_us < end.saturating_add(w) {
            SlidingWindowState {
                window_start_us: end,
                current: 0,
                previous: self.current,
            }
        } else {
            return None;
        };
        (state.current > 0 || state.previous > 0).then_some(state)
    }

    /// Ages the state under `old` at `now_us`, then moves it onto `new`'s window grid: counts
    /// are kept, `window_start_us` becomes the start of `new`'s window containing `now_us`.
    pub fn carried_over(&self, old: &Rule, new: &Rule, now_us: u64) -> Option<SlidingWindowState> {
        let aged = self.at(old, now_us)?;
        if new.window_us() == old.window_us() {
            return Some(aged);
        }
        Some(SlidingWindowState {
            window_start_us: align(now_us, new.window_us()),
            ..aged
        })
    }
}

/// Decides a request of `cost` at `now_us` against `state` (already under `rule`; `None` =
/// absent). Returns the decision and, iff allowed with `cost > 0`, the state to store.
pub fn decide(
    state: Option<&SlidingWindowState>,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> (Decision, Option<SlidingWindowState>) {
    let view = View::new(state, rule, now_us);
    let capacity = rule.capacity();
    if cost == 0 || cost > capacity {
        let decision = Decision {
            allowed: cost == 0,
            capacity,
            remaining: view.remaining(),
            retry_after: if cost == 0 {
                RetryAfter::Now
            } else {
                RetryAfter::Never
            },
            reset_after_us: view.reset_after_us(),
        };
        return (decision, None);
    }
    if view.admits(cost) {
        let charged = View {
            state: SlidingWindowState {
                current: view.state.current.saturating_add(cost),
                ..view.state
            },
            ..view
        };
        let decision = Decision {
            allowed: true,
            capacity,
            remaining: charged.remaining(),
            retry_after: RetryAfter::Now,
            reset_after_us: charged.reset_after_us(),
        };
        (decision, Some(charged.state))
    } else {
        let decision = Decision {
            allowed: false,
            capacity,
            remaining: view.remaining(),
            retry_after: RetryAfter::After(view.retry_after_us(cost)),
            reset_after_us: view.reset_after_us(),
        };
        (decision, None)
    }
}

/// Charges `cost` at `now_us` against `state` (already under `rule`; `None` = absent) whatever
/// the limit says (`RL.CHARGE`): the current window's count may exceed the limit — a *debt*.
/// Requests are denied while the weighted count leaves no room; in the next window the debt
/// weighs `current × (W − e) / W` and decays to nothing by its end, so a debt never outlives
/// the window after the one it was made in. Counts are bounded by `MAX_COUNT`.
///
/// ```
/// use redis_ratelimit::algo::sliding_window::{charge, decide};
/// use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
/// let rule = Rule::new(Algorithm::SlidingWindow, 10, 1_000, None).unwrap();
/// let s = charge(None, &rule, 20, 5_000); // twice the limit, at a window's start
/// assert_eq!((s.window_start_us, s.current), (5_000, 20));
/// // Next window: 20 × (1000 − e) / 1000 + 1 ≤ 10 from e = 550 on.
/// let (d, _) = decide(Some(&s), &rule, 1, 5_100);
/// assert_eq!(d.retry_after, RetryAfter::After(1_450));
/// ```
pub fn charge(
    state: Option<&SlidingWindowState>,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> SlidingWindowState {
    let view = View::new(state, rule, now_us);
    SlidingWindowState {
        current: view.state.current.saturating_add(cost).min(MAX_COUNT),
        ..view.state
    }
}

/// Gives back up to `amount` (`RL.REFUND`): from the current window's count first, then from
/// the previous window's, never below 0; `None` when nothing is left (or nothing was there).
///
/// ```
/// use redis_ratelimit::algo::sliding_window::{refund, SlidingWindowState};
/// use redis_ratelimit::algo::{Algorithm, Rule};
/// let rule = Rule::new(Algorithm::SlidingWindow, 10, 1_000, None).unwrap();
/// let s = SlidingWindowState { window_start_us: 5_000, current: 2, previous: 6 };
/// let r = refund(Some(&s), &rule, 5, 5_500).unwrap();
/// assert_eq!((r.current, r.previous), (0, 3));
/// assert_eq!(refund(Some(&s), &rule, 8, 5_500), None);
/// ```
pub fn refund(
    state: Option<&SlidingWindowState>,
    rule: &Rule,
    amount: u64,
    now_us: u64,
) -> Option<SlidingWindowState> {
    let s = state.and_then(|s| s.at(rule, now_us))?;
    let from_current = amount.min(s.current);
    let from_previous = amount.saturating_sub(from_current).min(s.previous);
    let r = SlidingWindowState {
        current: s.current.saturating_sub(from_current),
        previous: s.previous.saturating_sub(from_previous),
        ..s
    };
    (r.current > 0 || r.previous > 0).then_some(r)
}

/// When every weight of `state` has decayed (0 for an empty state).
fn expiry(state: &SlidingWindowState, w: u64) -> u64 {
    if state.current > 0 {
        state.window_start_us.saturating_add(w.saturating_mul(2))
    } else if state.previous > 0 {
        state.window_start_us.saturating_add(w)
    } else {
        0
    }
}

/// Start of the `window_us`-long aligned window containing `t`.
fn align(t: u64, window_us: u64) -> u64 {
    t.saturating_sub(t.checked_rem(window_us).unwrap_or(0))
}

/// The state rolled to `now`, with what the formulas need.
#[derive(Clone, Copy)]
struct View {
    state: SlidingWindowState,
    now_us: u64,
    w: u64,
    limit: u64,
    /// µs into the current window (0 when the clock is before it), `< w` for sane states.
    e: u64,
}

impl View {
    fn new(state: Option<&SlidingWindowState>, rule: &Rule, now_us: u64) -> View {
        let w = rule.window_us();
        let state = state
            .and_then(|s| s.at(rule, now_us))
            .unwrap_or(SlidingWindowState {
                window_start_us: align(now_us, w),
                current: 0,
                previous: 0,
            });
        View {
            state,
            now_us,
            w,
            limit: rule.limit(),
            e: now_us.saturating_sub(state.window_start_us).min(w),
        }
    }

    /// `previous × (W − e)`: the previous window's weight, scaled by `W`.
    fn previous_weight(&self) -> u128 {
        mul(self.state.previous, self.w.saturating_sub(self.e))
    }

    fn admits(&self, cost: u64) -> bool {
        let used = self
            .previous_weight()
            .saturating_add(mul(self.state.current, self.w))
            .saturating_add(mul(cost, self.w));
        used <= mul(self.limit, self.w)
    }

    fn remaining(&self) -> u64 {
        let room = mul(self.limit, self.w)
            .saturating_sub(self.previous_weight())
            .checked_div(u128::from(self.w))
            .unwrap_or(0);
        clamp_u64(room.saturating_sub(u128::from(self.state.current)))
    }

    fn reset_after_us(&self) -> u64 {
        match expiry(&self.state, self.w) {
            0 => 0,
            at => at.saturating_sub(self.now_us),
        }
    }

    /// Exact earliest delay for a denied `cost <= limit` (at least 1).
    fn retry_after_us(&self, cost: u64) -> u64 {
        let start = self.state.window_start_us;
        let w = self.w;
        // Later in this window: previous × (W − e') ≤ (limit − current − cost) × W.
        let in_current = self
            .limit
            .checked_sub(self.state.current)
            .and_then(|r| r.checked_sub(cost))
            .and_then(|r| earliest_offset(self.state.previous, r, w));
        // Next window: current × (W − e') ≤ (limit − cost) × W.
        let at = match in_current {
            Some(offset) => start.saturating_add(offset),
            None => {
                let next = start.saturating_add(w);
                match self
                    .limit
                    .checked_sub(cost)
                    .and_then(|r| earliest_offset(self.state.current, r, w))
                {
                    Some(offset) => next.saturating_add(offset),
                    // The window after next: both counts are gone.
                    None => next.saturating_add(w),
                }
            }
        };
        at.saturating_sub(self.now_us).max(1)
    }
}

/// Smallest `e' < w` with `weight × (w − e') ≤ room × w`, if any.
fn earliest_offset(weight: u64, room: u64, w: u64) -> Option<u64> {
    let room = mul(room, w);
    let span = match room.checked_div(u128::from(weight)) {
        Some(span) => span.min(u128::from(w)),
        None => u128::from(w), // weight 0: any e' fits
    };
    let offset = clamp_u64(u128::from(w).saturating_sub(span));
    (offset < w).then_some(offset)
}

impl Counter for SlidingWindowState {
    fn view(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self> {
        self.clamped(stored, now_us)
            .carried_over(stored, rule, now_us)
            .and_then(|s| s.at(rule, now_us))
    }

    fn decide_view(
        view: Option<&Self>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> (Decision, Option<Self>) {
        decide(view, rule, cost, now_us)
    }

    fn ahead(&self, _rule: &Rule, now_us: u64) -> bool {
        self.is_ahead(now_us)
    }
}

impl Kind for SlidingWindowState {
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

    fn is_ahead(&self, _rule: &Rule, now_us: u64) -> bool {
        SlidingWindowState::is_ahead(self, now_us)
    }

    fn expires_at_us(&self, rule: &Rule) -> u64 {
        SlidingWindowState::expires_at_us(self, rule)
    }

    fn is_valid(&self, rule: &Rule) -> bool {
        SlidingWindowState::is_valid(self, rule)
    }

    /// `window_start_us current previous`.
    fn encode(&self, out: &mut impl Sink) {
        put_u64(out, self.window_start_us);
        put_u64(out, self.current);
        put_u64(out, self.previous);
    }

    fn decode(bytes: &mut Reader<'_>, _rule: &Rule) -> Option<Self> {
        Some(SlidingWindowState {
            window_start_us: bytes.u64()?,
            current: bytes.u64()?,
            previous: bytes.u64()?,
        })
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

    /// Empty windows at the epoch (never ahead of any clock).
    fn nothing(_rule: &Rule, _now_us: u64) -> Self {
        SlidingWindowState {
            window_start_us: 0,
            current: 0,
            previous: 0,
        }
    }

    /// `window_start_us current previous`: the aligned window containing now and the counts of
    /// it and the one before.
    fn inspect(state: Option<&Self>, stored: &Rule, now_us: u64, out: &mut Fields) {
        let view = state.and_then(|s| s.view(stored, stored, now_us));
        out.push(("window_start_us", view.map_or(0, |s| s.window_start_us)));
        out.push(("current", view.map_or(0, |s| s.current)));
        out.push(("previous", view.map_or(0, |s| s.previous)));
    }

    /// `current previous` (each up to the limit), then the window's index
    /// (`window_start / window`) as the anchor: keys alive together are at most two windows
    /// apart.
    #[inline(always)]
    fn pack(&self, rule: &Rule, out: &mut Packer) -> bool {
        let w = rule.window_us();
        self.window_start_us.checked_rem(w) == Some(0)
            && out.count(self.current, rule.limit())
            && out.count(self.previous, rule.limit())
            && out.anchor(
                u128::from(self.window_start_us.checked_div(w).unwrap_or(0)),
                2,
            )
    }

    /// Always: its fields decide.
    #[inline(always)]
    fn may_pack(&self) -> bool {
        true
    }

    #[inline(always)]
    fn unpack(rule: &Rule, bits: &mut Unpacker) -> Option<Self> {
        let current = bits.count(rule.limit())?;
        let previous = bits.count(rule.limit())?;
        let index = u64::try_from(bits.anchor()?).ok()?;
        Some(SlidingWindowState {
            window_start_us: index.checked_mul(rule.window_us())?,
            current,
            previous,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod unit {
    use super::*;
    use crate::algo::Algorithm;

    fn rule(limit: u64, w: u64) -> Rule {
        Rule::new(Algorithm::SlidingWindow, limit, w, None).unwrap()
    }

    #[test]
    fn window_edges() {
        let r = rule(4, 100);
        let s = SlidingWindowState {
            window_start_us: 1_000,
            current: 4,
            previous: 0,
        };
        // t = start + W − 1: still the same window, full.
        let (d, _) = decide(Some(&s), &r, 1, 1_099);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after_us, 1_200 - 1_099);
        // Next window at e = 0: previous weighs 4 × 100/100 = 4.
        let (d, _) = decide(Some(&s), &r, 1, 1_100);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, RetryAfter::After(25)); // 4 × 75 ≤ 3 × 100
        let (d, w) = decide(Some(&s), &r, 1, 1_125);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let w = w.unwrap();
        assert_eq!(
            w,
            SlidingWindowState {
                window_start_us: 1_100,
                current: 1,
                previous: 4
            }
        );
        // start + 2W: absent.
        let (d, w) = decide(Some(&s), &r, 4, 1_200);
        assert!(d.allowed);
        assert_eq!(w.unwrap().previous, 0);
        assert_eq!(s.at(&r, 1_200), None);
        assert_eq!(s.at(&r, 1_199).unwrap().previous, 4);
    }

    #[test]
    fn cost_equal_remaining_and_over_limit() {
        let r = rule(10, 1_000);
        let (d, s) = decide(None, &r, 4, 5_500);
        assert_eq!((d.allowed, d.remaining), (true, 6));
        let s = s.unwrap();
        let (d, w) = decide(Some(&s), &r, 6, 5_500);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        assert_eq!(w.unwrap().current, 10);
        let (d, w) = decide(Some(&s), &r, 11, 5_500);
        assert_eq!(d.retry_after, RetryAfter::Never);
        assert_eq!(
            (d.allowed, d.remaining, d.reset_after_us),
            (false, 6, 1_500)
        );
        assert!(w.is_none());
    }

    #[test]
    fn a_window_from_the_future_moves_to_now() {
        let r = rule(2, 1_000);
        let day = 86_400_000_000;
        let s = SlidingWindowState {
            window_start_us: 10_000 + day,
            current: 2,
            previous: 1,
        };
        assert!(s.is_ahead(10_250));
        let c = s.clamped(&r, 10_250);
        assert_eq!(
            c,
            SlidingWindowState {
                window_start_us: 10_000,
                current: 2,
                previous: 1
            }
        );
        let (d, _) = decide(Some(&c), &r, 1, 10_250);
        assert!(!d.allowed);
        // Next window: current 2 × (W − e') ≤ 1 × W at e' = 500.
        assert_eq!(d.retry_after, RetryAfter::After(11_500 - 10_250));
        assert_eq!(d.reset_after_us, 12_000 - 10_250);
        assert!(!c.is_ahead(10_250));
        assert_eq!(c.clamped(&r, 10_250), c);
    }

    #[test]
    fn window_change_moves_to_new_grid() {
        let old = rule(5, 1_000);
        let new = rule(5, 300);
        let s = SlidingWindowState {
            window_start_us: 3_000,
            current: 2,
            previous: 3,
        };
        let c = s.carried_over(&old, &new, 3_700).unwrap();
        assert_eq!(
            c,
            SlidingWindowState {
                window_start_us: 3_600,
                current: 2,
                previous: 3
            }
        );
        // Aged under the old rule first: rolled, then moved.
        let c = s.carried_over(&old, &new, 4_100).unwrap();
        assert_eq!((c.window_start_us, c.current, c.previous), (3_900, 0, 2));
        assert_eq!(s.carried_over(&old, &new, 5_000), None);
    }
}
