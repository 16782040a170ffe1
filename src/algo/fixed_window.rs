//! Fixed window counter; a window starts at the first request admitted after the previous
//! window ended (as the Python `limits` library does), not on an epoch-aligned grid.
//!
//! The state is the window's start and the cost admitted in it. The window is
//! `[window_start, window_start + W)`; from `window_start + W` on the key is as if absent.
//!
//! * a request of cost `n` is admitted iff `count + n ≤ limit`; on an absent key the window
//!   starts at `now`;
//! * `remaining` = `limit − count` after the charge;
//! * `retry_after` (denied, `n ≤ limit`) = `window_start + W − now`: the window's end;
//! * `reset_after` / expiry = `window_start + W` (0 for an absent key).
//!
//! A window that starts after `now` (a clock step back, or a promoted replica whose clock is
//! behind) is read as starting at `now` — the latest start possible — with its count
//! ([`FixedWindowState::clamped`]). On a rule change the start and count are kept and the
//! window ends at `window_start + new W` (if that is not after `now`, the window is over).
//!
//! Worked example: limit 3, `W` = 1 s. Requests at 10.0 s and 10.2 s open the window
//! `[10 s, 11 s)` with count 2. At 10.5 s a cost-2 request is denied with `remaining` 1 and
//! `retry_after` 0.5 s; at 11.0 s it passes and opens `[11 s, 12 s)`.
//!
//! ```
//! use redis_ratelimit::algo::fixed_window::{decide, FixedWindowState};
//! use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
//! let rule = Rule::new(Algorithm::FixedWindow, 3, 1_000_000, None).unwrap();
//! let state = FixedWindowState { window_start_us: 10_000_000, count: 2 };
//! let (d, _) = decide(Some(&state), &rule, 2, 10_500_000);
//! assert_eq!((d.allowed, d.remaining), (false, 1));
//! assert_eq!(d.retry_after, RetryAfter::After(500_000));
//! let (d, write) = decide(Some(&state), &rule, 2, 11_000_000);
//! assert!(d.allowed);
//! assert_eq!(write, Some(FixedWindowState { window_start_us: 11_000_000, count: 2 }));
//! ```

use super::counter::{self, Counter};
use super::kind::{Bounds, Change, Fields, Kind};
use super::{Decision, RetryAfter, Rule, MAX_COUNT, MAX_TIMESTAMP_US};
use crate::bits::{bit_width, Packer, Unpacker};
use crate::varint::{put_u64, Reader, Sink};

/// State of a fixed-window limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedWindowState {
    /// When the current window started (its first admitted request), µs since the epoch.
    pub window_start_us: u64,
    /// Cost admitted in the current window.
    pub count: u64,
}

impl FixedWindowState {
    /// Whether the fields are within bounds (timestamp, count).
    pub fn is_valid(&self) -> bool {
        self.window_start_us <= MAX_TIMESTAMP_US && self.count <= MAX_COUNT
    }

    /// Absolute µs at which the window ends (0 for an empty state).
    pub fn expires_at_us(&self, rule: &Rule) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.window_start_us.saturating_add(rule.window_us())
        }
    }

    /// Whether the window starts after `now_us` (a clock step back).
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.window_start_us > now_us
    }

    /// The most restrictive state possible at `now_us`: a window starting at `now_us` at the
    /// latest.
    pub fn clamped(&self, now_us: u64) -> FixedWindowState {
        FixedWindowState {
            window_start_us: self.window_start_us.min(now_us),
            ..*self
        }
    }

    /// The state as seen at `now_us` under `rule`: `None` when its window is over (or empty).
    pub fn at(&self, rule: &Rule, now_us: u64) -> Option<FixedWindowState> {
        (self.count > 0 && now_us < self.expires_at_us(rule)).then_some(*self)
    }
}

/// Decides a request of `cost` at `now_us` against `state` (already under `rule`; `None` =
/// absent). Returns the decision and, iff allowed with `cost > 0`, the state to store.
pub fn decide(
    state: Option<&FixedWindowState>,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> (Decision, Option<FixedWindowState>) {
    let state = state.and_then(|s| s.at(rule, now_us));
    let capacity = rule.capacity();
    let limit = rule.limit();
    let count = state.map_or(0, |s| s.count);
    let remaining = |count: u64| limit.saturating_sub(count);
    let reset_after =
        |s: Option<FixedWindowState>| s.map_or(0, |s| s.expires_at_us(rule).saturating_sub(now_us));
    if cost == 0 || cost > capacity {
        let decision = Decision {
            allowed: cost == 0,
            capacity,
            remaining: remaining(count),
            retry_after: if cost == 0 {
                RetryAfter::Now
            } else {
                RetryAfter::Never
            },
            reset_after_us: reset_after(state),
        };
        return (decision, None);
    }
    match count.checked_add(cost) {
        Some(charged) if charged <= limit => {
            let written = FixedWindowState {
                window_start_us: state.map_or(now_us, |s| s.window_start_us),
                count: charged,
            };
            let decision = Decision {
                allowed: true,
                capacity,
                remaining: remaining(charged),
                retry_after: RetryAfter::Now,
                reset_after_us: reset_after(Some(written)),
            };
            (decision, Some(written))
        }
        _ => {
            let reset_after_us = reset_after(state);
            let decision = Decision {
                allowed: false,
                capacity,
                remaining: remaining(count),
                // The window's end; an absent key never denies a cost within the limit.
                retry_after: RetryAfter::After(reset_after_us.max(1)),
                reset_after_us,
            };
            (decision, None)
        }
    }
}

/// Charges `cost` at `now_us` against `state` (already under `rule`; `None` = absent) whatever
/// the limit says (`RL.CHARGE`): the count may exceed the limit — a *debt* — and every request
/// is then denied until the window ends, which is also when the debt is gone. So a debt never
/// outlives the window it was made in; the count is bounded by `MAX_COUNT`.
///
/// ```
/// use redis_ratelimit::algo::fixed_window::{charge, decide, FixedWindowState};
/// use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
/// let rule = Rule::new(Algorithm::FixedWindow, 10, 1_000, None).unwrap();
/// let s = charge(None, &rule, 25, 5_000); // 15 over the limit
/// assert_eq!(s, FixedWindowState { window_start_us: 5_000, count: 25 });
/// let (d, _) = decide(Some(&s), &rule, 1, 5_400);
/// assert_eq!((d.remaining, d.retry_after), (0, RetryAfter::After(600)));
/// ```
pub fn charge(
    state: Option<&FixedWindowState>,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> FixedWindowState {
    let state = state.and_then(|s| s.at(rule, now_us));
    FixedWindowState {
        window_start_us: state.map_or(now_us, |s| s.window_start_us),
        count: state
            .map_or(0, |s| s.count)
            .saturating_add(cost)
            .min(MAX_COUNT),
    }
}

/// Gives back up to `amount` of the window's count (`RL.REFUND`), never below 0; `None` when
/// nothing is left (or nothing was there).
///
/// ```
/// use redis_ratelimit::algo::fixed_window::{refund, FixedWindowState};
/// use redis_ratelimit::algo::{Algorithm, Rule};
/// let rule = Rule::new(Algorithm::FixedWindow, 10, 1_000, None).unwrap();
/// let s = FixedWindowState { window_start_us: 5_000, count: 7 };
/// assert_eq!(refund(Some(&s), &rule, 3, 5_500).map(|s| s.count), Some(4));
/// assert_eq!(refund(Some(&s), &rule, 9, 5_500), None);
/// assert_eq!(refund(Some(&s), &rule, 1, 6_000), None); // the window is over
/// ```
pub fn refund(
    state: Option<&FixedWindowState>,
    rule: &Rule,
    amount: u64,
    now_us: u64,
) -> Option<FixedWindowState> {
    let s = state.and_then(|s| s.at(rule, now_us))?;
    let count = s.count.saturating_sub(amount);
    (count > 0).then_some(FixedWindowState { count, ..s })
}

impl Counter for FixedWindowState {
    fn view(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self> {
        self.clamped(now_us)
            .at(stored, now_us)
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

impl Kind for FixedWindowState {
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
        FixedWindowState::is_ahead(self, now_us)
    }

    fn expires_at_us(&self, rule: &Rule) -> u64 {
        FixedWindowState::expires_at_us(self, rule)
    }

    fn is_valid(&self, _rule: &Rule) -> bool {
        FixedWindowState::is_valid(self)
    }

    /// `window_start_us count`.
    fn encode(&self, out: &mut impl Sink) {
        put_u64(out, self.window_start_us);
        put_u64(out, self.count);
    }

    fn decode(bytes: &mut Reader<'_>, _rule: &Rule) -> Option<Self> {
        Some(FixedWindowState {
            window_start_us: bytes.u64()?,
            count: bytes.u64()?,
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

    /// An empty window at the epoch (never ahead of any clock).
    fn nothing(_rule: &Rule, _now_us: u64) -> Self {
        FixedWindowState {
            window_start_us: 0,
            count: 0,
        }
    }

    /// `window_start_us count`: the window's start and the cost admitted in it.
    fn inspect(state: Option<&Self>, stored: &Rule, now_us: u64, out: &mut Fields) {
        let view = state.and_then(|s| s.view(stored, stored, now_us));
        out.push(("window_start_us", view.map_or(0, |s| s.window_start_us)));
        out.push(("count", view.map_or(0, |s| s.count)));
    }

    /// `count` (up to the limit), then the window's start as the anchor: the windows of keys
    /// alive together started less than one window apart.
    #[inline(always)]
    fn pack(&self, rule: &Rule, out: &mut Packer) -> bool {
        out.count(self.count, rule.limit())
            && out.anchor(
                u128::from(self.window_start_us),
                bit_width(u128::from(rule.window_us())),
            )
    }

    /// Always: its fields decide.
    #[inline(always)]
    fn may_pack(&self) -> bool {
        true
    }

    #[inline(always)]
    fn unpack(rule: &Rule, bits: &mut Unpacker) -> Option<Self> {
        let count = bits.count(rule.limit())?;
        let window_start_us = u64::try_from(bits.anchor()?).ok()?;
        Some(FixedWindowState {
            window_start_us,
            count,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod unit {
    use super::*;
    use crate::algo::Algorithm;

    fn rule(limit: u64, w: u64) -> Rule {
        Rule::new(Algorithm::FixedWindow, limit, w, None).unwrap()
    }

    #[test]
    fn window_edges_and_limit_one() {
        let r = rule(1, 100);
        let (d, s) = decide(None, &r, 1, 1_234);
        assert_eq!((d.allowed, d.remaining, d.reset_after_us), (true, 0, 100));
        let s = s.unwrap();
        assert_eq!(s.window_start_us, 1_234);
        let (d, w) = decide(Some(&s), &r, 1, 1_333);
        assert_eq!((d.allowed, d.retry_after), (false, RetryAfter::After(1)));
        assert!(w.is_none());
        let (d, w) = decide(Some(&s), &r, 1, 1_334);
        assert!(d.allowed);
        assert_eq!(w.unwrap().window_start_us, 1_334);
        let (d, _) = decide(Some(&s), &r, 2, 1_300);
        assert_eq!(d.retry_after, RetryAfter::Never);
        assert_eq!((d.remaining, d.reset_after_us), (0, 34));
    }

    #[test]
    fn clock_step_and_rule_change() {
        let r = rule(5, 1_000);
        let s = FixedWindowState {
            window_start_us: 10_000,
            count: 5,
        };
        // A window starting in the future is read as starting now.
        assert!(s.is_ahead(9_900));
        let c = s.clamped(9_900);
        assert_eq!(c.window_start_us, 9_900);
        let (d, _) = decide(Some(&c), &r, 1, 9_900);
        assert_eq!(d.retry_after, RetryAfter::After(1_000));
        assert_eq!(d.reset_after_us, 1_000);
        // Shorter window: ends at 10_300.
        let short = rule(5, 300);
        assert_eq!(s.at(&short, 10_299), Some(s));
        let (d, _) = decide(Some(&s), &short, 1, 10_299);
        assert_eq!(d.retry_after, RetryAfter::After(1));
        let (d, _) = decide(Some(&s), &short, 1, 10_300);
        assert!(d.allowed);
        // Aged under the old rule first: over at 11_000 even with a longer new window.
        assert_eq!(s.at(&r, 11_000), None);
    }
}
