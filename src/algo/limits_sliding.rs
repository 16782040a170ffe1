//! `limits-sliding-window`: the Python `limits` library's sliding window counter, reproduced
//! exactly — its admissions, its counts and its expiries — in one key instead of two.
//!
//! `limits` keeps two counters with TTLs (its scripts `acquire_sliding_window.lua` and
//! `sliding_window.lua`): the *current* one, created with twice the window and counting hits, and
//! the *previous* one. All of it in server milliseconds (`PTTL`, `SET … PX`), `E` = the window
//! in ms, `t` = the server's ms clock (`now_us / 1000`):
//!
//! * **Shift** (on every access, reads included): when the current counter exists and has less
//!   than `E` left (`0 < ttl < E`), it becomes the previous one (same count, same expiry) and a new
//!   current counter of 0 starts, expiring `E` after the old one.
//! * **Weighted count** = `⌊previous × previous_ttl / E⌋ + current` (a missing counter counts 0,
//!   its TTL 0).
//! * **Hit** of cost `n`: refused at once when `n > limit` (no shift); otherwise after the shift,
//!   admitted iff `weighted + n ≤ limit`, and then the current counter grows by `n` (INCRBY keeps
//!   its expiry) or, when it does not exist, starts at `n` for `2E`.
//!
//! Unlike the module's epoch-aligned `sliding-window`, windows start at the first hit, the
//! previous window's weight is its remaining TTL and the weighted count is rounded down — which
//! is why this is a kind of its own. Because the shift happens on *access*, a read changes the
//! state as in `limits`: `RL.ALLOW … COST 0` is limits' acquire of 0 — it stores a shift and, on a
//! limiter without a current counter (an absent key), starts one at 0 for `2E`, as limits'
//! script does (it is a write command); `RL.PEEK` only reports. limits' read path
//! (`get_sliding_window`) is `RL.INSPECT`, then `COST 0` only when the key exists (its current
//! counter is then alive, so `COST 0` stores just the shift, as the read does).
//!
//! Reply fields: `remaining` = `limit − weighted` after the call (limits' `get_window_stats`
//! remaining); `retry_after` = the first ms at which the same hit would pass if nothing else
//! arrived; `reset_after` = when both counters are gone (the key's expiry, as `limits`' two keys).
//!
//! Worked example, `10` per `60 s` (`E` = 60,000): 8 hits at `t` = 0 create the current counter
//! (8, expires at 120,000). At 70,000 its TTL (50,000) is below `E`: it shifts (previous 8 until
//! 120,000, current 0 until 180,000) and the weighted count is `⌊8 × 50,000 / 60,000⌋` = 6, so 4
//! more pass.
//!
//! ```
//! use redis_ratelimit::algo::limits_sliding::LimitsSlidingState;
//! use redis_ratelimit::algo::{Algorithm, Bounds, Kind, Rule};
//! let rule = Rule::new(Algorithm::LimitsSlidingWindow, 10, 60_000_000, None).unwrap();
//! let (d, s) = LimitsSlidingState::decide_absent(&rule, 8, 0);
//! let mut s = s.unwrap();
//! assert_eq!((d.allowed, d.remaining), (true, 2));
//! let d = s.peek(&rule, &rule, 4, 70_000_000);
//! assert_eq!((d.allowed, d.remaining), (true, 0));
//! assert!(!s.peek(&rule, &rule, 5, 70_000_000).allowed);
//! s.decide(&rule, &rule, 0, 70_000_000, &Bounds::DEFAULT);
//! assert_eq!(s.counters(), ((0, 180_000), (8, 120_000)));
//! ```

use super::kind::{Bounds, Change, Fields, Kind};
use super::math::clamp_u64;
use super::{Decision, RetryAfter, Rule, MAX_COUNT, MAX_TIMESTAMP_US};
use crate::bits::{bit_width, Packer, Unpacker};
use crate::varint::{put_u64, Reader, Sink};

/// The two counters of `limits`' sliding window: counts and absolute expiries in server ms
/// (expiry 0: the counter does not exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LimitsSlidingState {
    current: u64,
    current_expire_ms: u64,
    previous: u64,
    previous_expire_ms: u64,
}

/// `E`: the window in ms (at least 1).
fn window_ms(rule: &Rule) -> u64 {
    (rule.window_us() / 1000).max(1)
}

impl LimitsSlidingState {
    /// A state from its two counters: counts and absolute expiries in ms (0: absent).
    pub fn new(
        current: u64,
        current_expire_ms: u64,
        previous: u64,
        previous_expire_ms: u64,
    ) -> LimitsSlidingState {
        LimitsSlidingState {
            current,
            current_expire_ms,
            previous,
            previous_expire_ms,
        }
    }

    /// `((current, expires_ms), (previous, expires_ms))` as stored (0 expiry: absent).
    pub fn counters(&self) -> ((u64, u64), (u64, u64)) {
        (
            (self.current, self.current_expire_ms),
            (self.previous, self.previous_expire_ms),
        )
    }

    /// The counters that still exist at `t` (ms): the others dropped. As limits' keys on the
    /// server, a counter exists through its expiry ms (the server removes a key once
    /// `now > expiry`): there its TTL is 0 and it still counts.
    fn alive(&self, t: u64) -> LimitsSlidingState {
        let mut s = *self;
        if s.current_expire_ms < t {
            s.current = 0;
            s.current_expire_ms = 0;
        }
        if s.previous_expire_ms < t {
            s.previous = 0;
            s.previous_expire_ms = 0;
        }
        s
    }

    /// The state as an access at `t` leaves it (the shift), and whether it shifted.
    fn accessed(&self, rule: &Rule, t: u64) -> (LimitsSlidingState, bool) {
        let e = window_ms(rule);
        let mut s = self.alive(t);
        let ttl = s.current_expire_ms.saturating_sub(t);
        // limits shifts when `0 < ttl < E`: not in the current counter's expiry ms.
        if s.current_expire_ms != 0 && ttl > 0 && ttl < e {
            s.previous = s.current;
            s.previous_expire_ms = s.current_expire_ms;
            s.current = 0;
            s.current_expire_ms = s.current_expire_ms.saturating_add(e);
            return (s, true);
        }
        (s, false)
    }

    /// `⌊previous × previous_ttl / E⌋ + current` at `t` (of an accessed state).
    fn weighted(&self, rule: &Rule, t: u64) -> u128 {
        let e = u128::from(window_ms(rule));
        let ttl = u128::from(self.previous_expire_ms.saturating_sub(t));
        let prev = u128::from(self.previous)
            .saturating_mul(ttl)
            .checked_div(e)
            .unwrap_or(0);
        prev.saturating_add(u128::from(self.current))
    }

    /// Whether a hit of `cost` passes at `t` (ms) when it is the first access since `self`.
    fn admits_at(&self, rule: &Rule, cost: u64, t: u64) -> bool {
        let (s, _) = self.accessed(rule, t);
        s.weighted(rule, t).saturating_add(u128::from(cost)) <= u128::from(rule.limit())
    }

    /// The latest expiry: when both counters are gone.
    fn last_expire_ms(&self) -> u64 {
        self.current_expire_ms.max(self.previous_expire_ms)
    }

    /// The decision at `now_us` on this (already clamped) state, and the state to store after
    /// it (`None`: nothing changes).
    fn decide_on(
        &self,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> (Decision, Option<LimitsSlidingState>) {
        let t = now_us / 1000;
        let limit = rule.limit();
        let (s, shifted) = self.accessed(rule, t);
        let remaining = |s: &LimitsSlidingState| {
            clamp_u64(u128::from(limit).saturating_sub(s.weighted(rule, t)))
        };
        let reset = |s: &LimitsSlidingState| {
            s.last_expire_ms()
                .saturating_mul(1000)
                .saturating_sub(now_us)
        };
        if cost > limit {
            // limits refuses before its shift: nothing is written.
            let (r, z) = (remaining(&s), reset(&s));
            return (Decision::over_capacity(limit, r, z), None);
        }
        let store_shift = shifted.then_some(s);
        if cost == 0 {
            // limits' acquire of 0 on a limiter that exists: `INCRBY current 0` keeps only the
            // shift (its current counter is alive: it outlives the previous one). An absent
            // limiter — or a key past its expiry, which answers as one (`Limiter::decide_with`)
            // — see `decide_absent`.
            return (Decision::look(limit, remaining(&s), reset(&s)), store_shift);
        }
        if s.admits_at(rule, cost, t) {
            let mut w = s;
            // (`accessed` left only live counters: an expiry, if any, is at least `t`.)
            if w.current_expire_ms != 0 {
                w.current = w.current.saturating_add(cost).min(MAX_COUNT);
            } else {
                w.current = cost;
                w.current_expire_ms = t.saturating_add(window_ms(rule).saturating_mul(2));
            }
            let d = Decision {
                allowed: true,
                capacity: limit,
                remaining: remaining(&w),
                retry_after: RetryAfter::Now,
                reset_after_us: reset(&w),
            };
            return (d, Some(w));
        }
        // The weighted count falls as time passes (the previous counter's weight, then the shift
        // that drops it, then the end of the current one), except in the current counter's
        // expiry ms, where limits does not shift and the counter counts in full; everything is
        // gone the ms after the last expiry. The search keeps `lo - 1` refusing and `hi`
        // admitting: a ms that admits, one before which the same hit does not.
        let mut lo = t.saturating_add(1);
        let mut hi = s.last_expire_ms().saturating_add(1).max(lo);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            if s.admits_at(rule, cost, mid) {
                hi = mid;
            } else {
                lo = mid.saturating_add(1);
            }
        }
        let d = Decision {
            allowed: false,
            capacity: limit,
            remaining: remaining(&s),
            retry_after: RetryAfter::After(lo.saturating_mul(1000).saturating_sub(now_us).max(1)),
            reset_after_us: reset(&s),
        };
        (d, store_shift)
    }

    /// `RL.CHARGE`: after the shift an access makes, the current counter grows by `cost` (or
    /// starts at `cost` for `2E`) whatever the limit says, as limits' acquire does once admitted.
    /// The weighted count may then pass the limit — a debt that requests wait out as the
    /// previous counter's weight decays and the counters expire: never longer than `2E` after
    /// the charge (the current counter's expiry).
    fn charged(&self, rule: &Rule, cost: u64, now_us: u64) -> LimitsSlidingState {
        let t = now_us / 1000;
        let (mut w, _) = self.accessed(rule, t);
        if w.current_expire_ms != 0 {
            w.current = w.current.saturating_add(cost).min(MAX_COUNT);
        } else {
            w.current = cost.min(MAX_COUNT);
            w.current_expire_ms = t.saturating_add(window_ms(rule).saturating_mul(2));
        }
        w
    }

    /// `RL.REFUND` on an accessed state: from the current counter first, then the previous one,
    /// never below 0 (expiries kept); `None` when both are then 0.
    fn refunded(&self, amount: u64) -> Option<LimitsSlidingState> {
        let mut w = *self;
        let from_current = amount.min(w.current);
        w.current = w.current.saturating_sub(from_current);
        w.previous = w
            .previous
            .saturating_sub(amount.saturating_sub(from_current));
        (w.current > 0 || w.previous > 0).then_some(w)
    }

    /// The most restrictive state possible at `now_us` (a clock step back): a current counter
    /// expires at most `2E` from now, a previous one at most `E`.
    fn clamped(&self, rule: &Rule, now_us: u64) -> LimitsSlidingState {
        let t = now_us / 1000;
        let e = window_ms(rule);
        let mut s = *self;
        s.current_expire_ms = s
            .current_expire_ms
            .min(t.saturating_add(e.saturating_mul(2)));
        s.previous_expire_ms = s.previous_expire_ms.min(t.saturating_add(e));
        s
    }
}

impl Kind for LimitsSlidingState {
    const COST_ZERO_WRITES: bool = true;
    const LIVES_THROUGH_EXPIRY_MS: bool = true;

    /// limits' acquire of 0 on a limiter without counters starts a current counter of 0 for
    /// `2E` (it anchors the next windows): `COST 0` creates it here too.
    fn decide_absent(rule: &Rule, cost: u64, now_us: u64) -> (Decision, Option<Self>) {
        if cost == 0 {
            let t = now_us / 1000;
            let w = LimitsSlidingState {
                current_expire_ms: t.saturating_add(window_ms(rule).saturating_mul(2)),
                ..LimitsSlidingState::default()
            };
            let reset = w
                .current_expire_ms
                .saturating_mul(1000)
                .saturating_sub(now_us);
            return (Decision::look(rule.limit(), rule.limit(), reset), Some(w));
        }
        LimitsSlidingState::default().decide_on(rule, cost, now_us)
    }

    fn decide(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> (Decision, Change) {
        let clamped = self.clamped(stored, now_us);
        let (d, written) = clamped.decide_on(rule, cost, now_us);
        match written {
            Some(w) => {
                *self = w;
                (d, Change::Updated)
            }
            None if clamped != *self && matches!(d.retry_after, RetryAfter::After(_)) => {
                *self = clamped;
                (d, Change::Updated)
            }
            None => (d, Change::Unchanged),
        }
    }

    fn peek(&self, stored: &Rule, rule: &Rule, cost: u64, now_us: u64) -> Decision {
        self.clamped(stored, now_us).decide_on(rule, cost, now_us).0
    }

    fn carried_over(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self> {
        let t = now_us / 1000;
        let (s, _) = self.clamped(stored, now_us).accessed(rule, t);
        (s.last_expire_ms() != 0).then_some(s) // `accessed` left only live counters
    }

    fn is_ahead(&self, rule: &Rule, now_us: u64) -> bool {
        self.clamped(rule, now_us) != *self
    }

    fn expires_at_us(&self, _rule: &Rule) -> u64 {
        self.last_expire_ms().saturating_mul(1000)
    }

    fn is_valid(&self, _rule: &Rule) -> bool {
        self.current <= MAX_COUNT
            && self.previous <= MAX_COUNT
            && self.last_expire_ms() <= MAX_TIMESTAMP_US / 1000
            && (self.current == 0 || self.current_expire_ms != 0)
            && (self.previous == 0 || self.previous_expire_ms != 0)
    }

    fn charge(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        // Clamped under the request's rule too: after a shorter window the counters' expiries
        // are read capped at 2E / E from now, so they are stored so (found by fuzzing `algo`:
        // the reply's reset_after and the key's TTL differed after a window change).
        *self = self
            .clamped(stored, now_us)
            .clamped(rule, now_us)
            .charged(rule, cost, now_us);
        Change::Updated
    }

    fn charge_absent(rule: &Rule, cost: u64, now_us: u64) -> Self {
        LimitsSlidingState::default().charged(rule, cost, now_us)
    }

    /// Counters that hold nothing (both 0) give nothing back, but the access's shift is stored,
    /// as a read's is; a refund that leaves both at 0 empties the key.
    fn refund(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        amount: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        // As a charge: read under both rules' clamps (a shorter window caps the expiries).
        let t = now_us / 1000;
        let (view, _) = self
            .clamped(stored, now_us)
            .clamped(rule, now_us)
            .accessed(rule, t);
        if view.last_expire_ms() == 0 {
            return Change::Unchanged;
        }
        if view.current == 0 && view.previous == 0 {
            if view == *self {
                return Change::Unchanged;
            }
            *self = view;
            return Change::Updated;
        }
        match view.refunded(amount) {
            Some(w) => {
                *self = w;
                Change::Updated
            }
            None => Change::Emptied,
        }
    }

    fn nothing(_rule: &Rule, _now_us: u64) -> Self {
        LimitsSlidingState::default()
    }

    /// `current current_expire_ms previous previous_expire_ms`.
    fn encode(&self, out: &mut impl Sink) {
        for v in [
            self.current,
            self.current_expire_ms,
            self.previous,
            self.previous_expire_ms,
        ] {
            put_u64(out, v);
        }
    }

    fn decode(bytes: &mut Reader<'_>, _rule: &Rule) -> Option<Self> {
        Some(LimitsSlidingState {
            current: bytes.u64()?,
            current_expire_ms: bytes.u64()?,
            previous: bytes.u64()?,
            previous_expire_ms: bytes.u64()?,
        })
    }

    /// `current current_ttl_ms previous previous_ttl_ms`: what `limits`' `get_sliding_window`
    /// reads, after the shift an access at now would make (0 for a counter that does not
    /// exist).
    fn inspect(state: Option<&Self>, stored: &Rule, now_us: u64, out: &mut Fields) {
        let t = now_us / 1000;
        let s = state.map_or(LimitsSlidingState::default(), |s| {
            s.clamped(stored, now_us).accessed(stored, t).0
        });
        out.push(("current", s.current));
        out.push(("current_ttl_ms", s.current_expire_ms.saturating_sub(t)));
        out.push(("previous", s.previous));
        out.push(("previous_ttl_ms", s.previous_expire_ms.saturating_sub(t)));
    }

    /// `current previous` (each up to the limit), which counters exist (1 bit: the current one
    /// alone, or both with the previous one expiring one window before the current one, as the
    /// shift leaves them; any other state stays on the heap), then the current counter's expiry
    /// (ms) as the anchor: keys alive together expire within two windows of each other.
    #[inline(always)]
    fn pack(&self, rule: &Rule, out: &mut Packer) -> bool {
        let e = window_ms(rule);
        let form = match (self.current_expire_ms, self.previous_expire_ms) {
            (0, _) => return false,
            (_, 0) if self.previous == 0 => FORM_CURRENT,
            (c, p) if c.checked_sub(e) == Some(p) => FORM_SHIFTED,
            _ => return false,
        };
        out.count(self.current, rule.limit())
            && out.count(self.previous, rule.limit())
            && out.uint(form, 1)
            && out.anchor(
                u128::from(self.current_expire_ms),
                bit_width(u128::from(e.saturating_mul(2))),
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
        let form = bits.uint(1)?;
        let current_expire_ms = u64::try_from(bits.anchor()?).ok()?;
        let previous_expire_ms = match form {
            FORM_CURRENT => 0,
            FORM_SHIFTED => current_expire_ms.checked_sub(window_ms(rule))?,
            _ => return None,
        };
        Some(LimitsSlidingState {
            current,
            current_expire_ms,
            previous,
            previous_expire_ms,
        })
    }
}

/// Packed forms (see `pack`): the current counter alone, or both a window apart.
const FORM_CURRENT: u64 = 0;
const FORM_SHIFTED: u64 = 1;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::panic)]
mod unit {
    use super::*;
    use crate::algo::Algorithm;

    fn rule(limit: u64, secs: u64) -> Rule {
        Rule::new(
            Algorithm::LimitsSlidingWindow,
            limit,
            secs * 1_000_000,
            None,
        )
        .unwrap()
    }

    #[test]
    fn retry_is_the_first_ms_that_admits() {
        let r = rule(10, 60);
        let (_, s) = LimitsSlidingState::decide_absent(&r, 10, 5_000_000);
        let s = s.unwrap();
        // Full: current 10 until 125 s; at 65 s it shifts (ttl 60 s = E: not yet, < E after).
        let d = s.peek(&r, &r, 1, 10_000_000);
        let RetryAfter::After(us) = d.retry_after else {
            panic!("{d:?}")
        };
        let at = 10_000_000 + us;
        assert!(s.peek(&r, &r, 1, at).allowed, "{at}");
        assert!(!s.peek(&r, &r, 1, at - 1_000).allowed, "{at}");
    }

    #[test]
    fn a_refusal_above_the_limit_writes_nothing() {
        let r = rule(3, 1);
        let (_, s) = LimitsSlidingState::decide_absent(&r, 3, 0);
        let mut s = s.unwrap();
        let before = s;
        let (d, c) = s.decide(&r, &r, 4, 1_500_000, &Bounds::DEFAULT);
        assert_eq!((d.retry_after, c), (RetryAfter::Never, Change::Unchanged));
        assert_eq!(s, before);
        // A denial that shifts stores the shift, as limits' script does.
        let (d, c) = s.decide(&r, &r, 3, 1_500_000, &Bounds::DEFAULT);
        assert!(!d.allowed);
        assert_eq!(c, Change::Updated);
        assert_eq!(s.counters(), ((0, 3_000), (3, 2_000)));
    }

    /// In the ms its counters expire the server still has the key (it removes keys once their
    /// expiry ms has passed), and limits' keys still count there: their TTL is 0, limits does
    /// not shift, and its acquire of 0 changes nothing (`INCRBY … 0` on the live key). Found by
    /// the Python differential test on a real server (the previous counter at TTL 0 still
    /// holding its count). Once that ms has passed, a stored key answers as an absent one: `COST
    /// 0` starts a current counter of 0 for `2E` (found by `scripts/fuzz` multi).
    #[test]
    fn counters_count_through_their_expiry_ms() {
        use crate::algo::{Limiter, Outcome, State};
        let r = rule(3, 10);
        let (_, s) = LimitsSlidingState::decide_absent(&r, 1, 1_700_467_670_335_000);
        let s = s.unwrap();
        assert_eq!(s.counters(), ((1, 1_700_467_690_335), (0, 0)));
        let l = Limiter {
            rule: r,
            state: State::LimitsSlidingWindow(s),
        };
        // In the expiry's ms: the counter still counts, COST 0 writes nothing.
        let now = 1_700_467_690_335_001;
        assert!(!l.is_over(now));
        let mut during = l.clone();
        let (d, outcome) = Limiter::decide(Some(&mut during), &r, 0, now).unwrap();
        assert_eq!((d.allowed, d.remaining, d.reset_after_us), (true, 2, 0));
        assert_eq!(outcome, Outcome::Unchanged);
        assert_eq!(during, l);
        let fields = l.inspect(now);
        assert!(fields.contains(&("current", 1)) && fields.contains(&("current_ttl_ms", 0)));
        let (d, _) = Limiter::decide(Some(&mut during), &r, 3, now).unwrap();
        assert!(!d.allowed, "1 + 3 > 3 while the counter counts");
        // The ms after: an absent key.
        let now = now + 1_000;
        assert!(l.is_over(now));
        let mut after = l.clone();
        let absent = Limiter::decide(None, &r, 0, now).unwrap();
        assert_eq!(Limiter::peek(Some(&after), &r, 0, now), Ok(absent.0));
        let got = Limiter::decide(Some(&mut after), &r, 0, now).unwrap();
        assert_eq!(got.0, absent.0);
        assert_eq!(absent.0.reset_after_us, 19_999_999);
        assert_eq!(got.1, Outcome::Updated);
        let Outcome::Created(fresh) = absent.1 else {
            panic!("{absent:?}")
        };
        assert_eq!(after, fresh);
    }

    /// Found by `scripts/fuzz` (algo): `RL.CHARGE` / `RL.REFUND` under a shorter window kept
    /// the counters' longer expiries, so the key lived past the reply's `reset_after` (which
    /// reads them capped under the new rule). Both now store what the new rule reads.
    #[test]
    fn settling_under_a_shorter_window_stores_what_it_reads() {
        use crate::algo::Limiter;
        let (hour, short) = (rule(2, 3_600), rule(82, 86));
        let now = 1_700_383_199_999_999;
        let b = Bounds::DEFAULT;
        for refund in [false, true] {
            let (_, s) = LimitsSlidingState::decide_absent(&hour, 2, now - 1_000_000_000);
            let mut l = Limiter {
                rule: hour,
                state: crate::algo::State::LimitsSlidingWindow(s.unwrap()),
            };
            Limiter::charge(Some(&mut l), &hour, 3, now - 1_000, &b).unwrap();
            let v = if refund {
                Limiter::refund(Some(&mut l), &short, 1, now, &b).unwrap()
            } else {
                Limiter::charge(Some(&mut l), &short, 56, now, &b).unwrap()
            };
            assert_eq!(v.outcome, crate::algo::Outcome::Updated);
            assert_eq!(
                l.expires_at_us(),
                now + v.decision.reset_after_us,
                "refund {refund}: {l:?}"
            );
            assert!(!l.is_ahead(now));
        }
    }
}
