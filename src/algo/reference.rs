//! Reference models (test only): the most obviously correct form of each algorithm.
//!
//! Each model only answers "would a request of cost `n` pass at `t`?" and "charge it"; every
//! reported quantity is then found by brute-force search over that predicate (which is
//! monotone: in `n` for a fixed `t`, and in `t` when nothing else arrives):
//! `remaining` = the largest cost that would pass now, `retry_after` = the first later µs at
//! which the request would pass, `reset_after` = the first µs at which the full capacity would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;

use super::{Decision, RetryAfter, Rule};

/// A model of one key under one rule.
pub trait Model: Clone {
    /// The absent key.
    fn empty() -> Self;
    /// Whether a request of `cost` would pass at `t` (no side effect).
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool;
    /// Records an admitted request.
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64);
    /// The key as the new rule sees it after a rule change at `t`.
    fn carry_over(&self, old: &Rule, new: &Rule, t: u64) -> Self;
}

/// Smallest `x` in `[lo, hi]` with `pred(x)`, for a monotone `pred` with `pred(hi)`.
fn first_true(mut lo: u64, mut hi: u64, pred: impl Fn(u64) -> bool) -> u64 {
    assert!(pred(hi), "search bound too low");
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Smallest `d >= from` with `pred(now + d)`, growing the bound exponentially.
fn first_delay(now: u64, from: u64, pred: impl Fn(u64) -> bool) -> u64 {
    let mut hi = from.max(1);
    while !pred(now + hi) {
        hi = hi.checked_mul(2).expect("no admission in sight");
    }
    first_true(from, hi, |d| pred(now + d))
}

fn remaining<M: Model>(m: &M, rule: &Rule, now: u64) -> u64 {
    // Largest k in [0, capacity] that passes (0 when even 1 does not).
    let cap = rule.capacity();
    if m.admits(rule, now, cap) {
        return cap;
    }
    first_true(0, cap, |k| !m.admits(rule, now, k + 1))
}

fn reset_after<M: Model>(m: &M, rule: &Rule, now: u64) -> u64 {
    first_delay(now, 0, |t| m.admits(rule, t, rule.capacity()))
}

/// The reference decision for `m` (already under `rule`), and the model to store if written.
pub fn decide<M: Model>(m: &M, rule: &Rule, cost: u64, now: u64) -> (Decision, Option<M>) {
    let cap = rule.capacity();
    let peek = |allowed, retry_after| Decision {
        allowed,
        capacity: cap,
        remaining: remaining(m, rule, now),
        retry_after,
        reset_after_us: reset_after(m, rule, now),
    };
    if cost == 0 {
        return (peek(true, RetryAfter::Now), None);
    }
    if cost > cap {
        return (peek(false, RetryAfter::Never), None);
    }
    if m.admits(rule, now, cost) {
        let mut m2 = m.clone();
        m2.charge(rule, now, cost);
        let d = Decision {
            allowed: true,
            capacity: cap,
            remaining: remaining(&m2, rule, now),
            retry_after: RetryAfter::Now,
            reset_after_us: reset_after(&m2, rule, now),
        };
        return (d, Some(m2));
    }
    let retry = first_delay(now, 1, |t| m.admits(rule, t, cost));
    (peek(false, RetryAfter::After(retry)), None)
}

/// Fixed window: the window start and the list of admitted (time, cost).
#[derive(Clone, Debug)]
pub struct FixedRef {
    start: u64,
    admitted: Vec<(u64, u64)>,
}

impl FixedRef {
    fn active(&self, rule: &Rule, t: u64) -> bool {
        !self.admitted.is_empty() && t < self.start + rule.window_us()
    }
    fn count(&self, rule: &Rule, t: u64) -> u128 {
        if self.active(rule, t) {
            self.admitted.iter().map(|&(_, c)| u128::from(c)).sum()
        } else {
            0
        }
    }
}

impl Model for FixedRef {
    fn empty() -> Self {
        FixedRef {
            start: 0,
            admitted: Vec::new(),
        }
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        self.count(rule, t) + u128::from(cost) <= u128::from(rule.limit())
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        if !self.active(rule, t) {
            self.start = t;
            self.admitted.clear();
        }
        self.admitted.push((t, cost));
    }
    fn carry_over(&self, old: &Rule, _new: &Rule, t: u64) -> Self {
        if self.active(old, t) {
            self.clone()
        } else {
            Self::empty()
        }
    }
}

/// Sliding window counter: admitted cost per aligned window index, weighted exactly.
#[derive(Clone, Debug)]
pub struct SlidingRef {
    counts: BTreeMap<i128, u128>,
    /// Index of the latest window charged (a clock step back counts there).
    latest: Option<i128>,
}

impl SlidingRef {
    /// (effective time, window index) for a request at `t`.
    fn locate(&self, w: u64, t: u64) -> (u128, i128) {
        let w = i128::from(w);
        let mut idx = i128::from(t) / w;
        let mut te = i128::from(t);
        if let Some(latest) = self.latest {
            if latest > idx {
                idx = latest;
                te = latest * w;
            }
        }
        (te as u128, idx)
    }
    fn count(&self, idx: i128) -> u128 {
        self.counts.get(&idx).copied().unwrap_or(0)
    }
}

impl Model for SlidingRef {
    fn empty() -> Self {
        SlidingRef {
            counts: BTreeMap::new(),
            latest: None,
        }
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        let w = u128::from(rule.window_us());
        let (te, idx) = self.locate(rule.window_us(), t);
        let elapsed = te % w;
        // previous × (W − e)/W + current + cost ≤ limit, both sides × W.
        let lhs = self.count(idx - 1) * (w - elapsed) + (self.count(idx) + u128::from(cost)) * w;
        lhs <= u128::from(rule.limit()) * w
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        let (_, idx) = self.locate(rule.window_us(), t);
        *self.counts.entry(idx).or_insert(0) += u128::from(cost);
        self.latest = Some(idx);
    }
    fn carry_over(&self, old: &Rule, new: &Rule, t: u64) -> Self {
        if old.window_us() == new.window_us() {
            return self.clone();
        }
        let (_, idx) = self.locate(old.window_us(), t);
        let (current, previous) = (self.count(idx), self.count(idx - 1));
        let new_idx = i128::from(t / new.window_us());
        SlidingRef {
            counts: BTreeMap::from([(new_idx, current), (new_idx - 1, previous)]),
            latest: Some(new_idx),
        }
    }
}

/// Token bucket in exact integer units: one token = `T` µs of credit; refills 1 unit per µs up
/// to `burst × T`. `None` = full.
#[derive(Clone, Debug)]
pub struct BucketRef {
    /// (level in units, at time) of the last change.
    level_at: Option<(i128, i128)>,
}

impl BucketRef {
    fn level(&self, rule: &Rule, t: u64) -> i128 {
        let cap = i128::from(rule.burst()) * i128::from(rule.emission_interval_us());
        match self.level_at {
            None => cap,
            // Before `at` (clock step back) the bucket "unrefills" at the same rate.
            Some((level, at)) => cap.min(level + (i128::from(t) - at)),
        }
    }
}

impl Model for BucketRef {
    fn empty() -> Self {
        BucketRef { level_at: None }
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        self.level(rule, t) >= i128::from(cost) * i128::from(rule.emission_interval_us())
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        let level =
            self.level(rule, t) - i128::from(cost) * i128::from(rule.emission_interval_us());
        self.level_at = Some((level, i128::from(t)));
    }
    fn carry_over(&self, old: &Rule, new: &Rule, t: u64) -> Self {
        let old_cap = i128::from(old.burst()) * i128::from(old.emission_interval_us());
        let used = old_cap - self.level(old, t);
        if used <= 0 {
            return Self::empty();
        }
        // Same number of cells used, each now T_new long (rounded up).
        let t_new = i128::from(new.emission_interval_us());
        let t_old = i128::from(old.emission_interval_us());
        // ... but never past year 9999 (the real code keeps states storable).
        let until_max = i128::from(super::MAX_TIMESTAMP_US) - i128::from(t);
        let used_new = ((used * t_new + t_old - 1) / t_old).min(until_max);
        let new_cap = i128::from(new.burst()) * t_new;
        BucketRef {
            level_at: Some((new_cap - used_new, i128::from(t))),
        }
    }
}
