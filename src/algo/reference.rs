//! Reference models (test only): the most obviously correct form of each algorithm.
//!
//! Each model only answers "would a request of cost `n` pass at `t`?" and "charge it"; every
//! reported quantity is then found by brute-force search over that predicate (which is
//! monotone: in `n` for a fixed `t`, and in `t` when nothing else arrives):
//! `remaining` = the largest cost that would pass now, `retry_after` = the first later µs at
//! which the request would pass, `reset_after` = the first µs at which the full capacity would.
//!
//! Clock steps follow the definition "a state ahead of `t` is read as the most restrictive state
//! possible at `t`": every model has [`Model::at`], which re-anchors it at `t`, and every
//! question is asked of `m.at(t)`.
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
    /// The model as seen at `t`: nothing in it lies after `t`.
    fn at(&self, rule: &Rule, t: u64) -> Self;
    /// Whether something in the model lies after `t` (what [`Model::at`] changes).
    fn is_ahead(&self, rule: &Rule, t: u64) -> bool;
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
    let m = &m.at(rule, now);
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
    fn at(&self, rule: &Rule, t: u64) -> Self {
        let mut m = self.clone();
        if m.is_ahead(rule, t) {
            m.start = t; // the latest start possible
        }
        m
    }
    fn is_ahead(&self, _rule: &Rule, t: u64) -> bool {
        !self.admitted.is_empty() && self.start > t
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        self.at(rule, t).count(rule, t) + u128::from(cost) <= u128::from(rule.limit())
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        *self = self.at(rule, t);
        if !self.active(rule, t) {
            self.start = t;
            self.admitted.clear();
        }
        self.admitted.push((t, cost));
    }
    fn carry_over(&self, old: &Rule, _new: &Rule, t: u64) -> Self {
        let m = self.at(old, t);
        if m.active(old, t) {
            m
        } else {
            Self::empty()
        }
    }
}

/// Sliding window counter: admitted cost per aligned window index, weighted exactly.
#[derive(Clone, Debug)]
pub struct SlidingRef {
    counts: BTreeMap<i128, u128>,
    /// Index of the latest window the model was written in.
    latest: Option<i128>,
}

impl SlidingRef {
    fn index(w: u64, t: u64) -> i128 {
        i128::from(t / w)
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
    fn at(&self, rule: &Rule, t: u64) -> Self {
        let idx = Self::index(rule.window_us(), t);
        match self.latest {
            // Windows in the future: the latest one becomes the one containing t.
            Some(latest) if latest > idx => SlidingRef {
                counts: self
                    .counts
                    .iter()
                    .map(|(&k, &v)| (k - latest + idx, v))
                    .collect(),
                latest: Some(idx),
            },
            _ => self.clone(),
        }
    }
    fn is_ahead(&self, rule: &Rule, t: u64) -> bool {
        self.latest
            .is_some_and(|l| l > Self::index(rule.window_us(), t))
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        let m = self.at(rule, t);
        let w = u128::from(rule.window_us());
        let idx = Self::index(rule.window_us(), t);
        let elapsed = u128::from(t) % w;
        // previous × (W − e)/W + current + cost ≤ limit, both sides × W.
        let lhs = m.count(idx - 1) * (w - elapsed) + (m.count(idx) + u128::from(cost)) * w;
        lhs <= u128::from(rule.limit()) * w
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        *self = self.at(rule, t);
        let idx = Self::index(rule.window_us(), t);
        *self.counts.entry(idx).or_insert(0) += u128::from(cost);
        self.latest = Some(idx);
    }
    fn carry_over(&self, old: &Rule, new: &Rule, t: u64) -> Self {
        let m = self.at(old, t);
        let idx = Self::index(old.window_us(), t);
        let (current, previous) = (m.count(idx), m.count(idx - 1));
        if current == 0 && previous == 0 {
            return Self::empty();
        }
        // The model as written at t: its latest window is t's (also on the new grid).
        let new_idx = Self::index(new.window_us(), t);
        SlidingRef {
            counts: BTreeMap::from([(new_idx, current), (new_idx - 1, previous)]),
            latest: Some(new_idx),
        }
    }
}

/// Token bucket by its definition, in exact integers: `burst` tokens, refilled at `limit`
/// tokens per `window`. Scaled by `window`: one token is `window` units, the bucket holds
/// `burst × window` units and gains `limit` units per µs. `None` = full.
#[derive(Clone, Debug)]
pub struct BucketRef {
    /// (level in units, at time) of the last change.
    level_at: Option<(i128, i128)>,
}

impl BucketRef {
    fn cap(rule: &Rule) -> i128 {
        i128::from(rule.burst()) * i128::from(rule.window_us())
    }
    /// The level at `t`, never above full nor below empty.
    fn level(&self, rule: &Rule, t: u64) -> i128 {
        self.raw_level(rule, t).clamp(0, Self::cap(rule))
    }
    /// Before the last change (a clock step back) the level is lower by the refill it missed.
    fn raw_level(&self, rule: &Rule, t: u64) -> i128 {
        match self.level_at {
            None => Self::cap(rule),
            Some((level, at)) => {
                (level + (i128::from(t) - at) * i128::from(rule.limit())).min(Self::cap(rule))
            }
        }
    }
}

impl Model for BucketRef {
    fn empty() -> Self {
        BucketRef { level_at: None }
    }
    fn at(&self, rule: &Rule, t: u64) -> Self {
        match self.level_at {
            None => self.clone(),
            Some(_) => BucketRef {
                level_at: Some((self.level(rule, t), i128::from(t))),
            },
        }
    }
    fn is_ahead(&self, rule: &Rule, t: u64) -> bool {
        self.raw_level(rule, t) < 0
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        self.level(rule, t) >= i128::from(cost) * i128::from(rule.window_us())
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        let level = self.level(rule, t) - i128::from(cost) * i128::from(rule.window_us());
        self.level_at = Some((level, i128::from(t)));
    }
    fn carry_over(&self, old: &Rule, new: &Rule, t: u64) -> Self {
        let used = Self::cap(old) - self.level(old, t);
        if used <= 0 {
            return Self::empty();
        }
        // The same number of tokens used (rounded up to a whole unit of the new rule), never
        // more than the new bucket holds.
        let (w_old, w_new) = (i128::from(old.window_us()), i128::from(new.window_us()));
        // used × w_new / w_old, rounded up; split so that the product fits in i128.
        let used_new = used / w_old * w_new + ((used % w_old) * w_new + w_old - 1) / w_old;
        BucketRef {
            level_at: Some(((Self::cap(new) - used_new).max(0), i128::from(t))),
        }
    }
}

/// Moving window by its definition: every admitted request `(time, cost)`; a request passes iff
/// the costs with `time > t − window`, plus its own, are at most `limit`. Entries that have left
/// the window are gone for good (a write drops them, so a later step back of the clock does not
/// bring them back).
#[derive(Clone, Debug)]
pub struct LogRef {
    entries: Vec<(u64, u64)>,
}

impl LogRef {
    fn sum(&self, rule: &Rule, t: u64) -> u128 {
        self.entries
            .iter()
            .filter(|&&(at, _)| at + rule.window_us() > t)
            .map(|&(_, c)| u128::from(c))
            .sum()
    }
}

impl Model for LogRef {
    fn empty() -> Self {
        LogRef {
            entries: Vec::new(),
        }
    }
    fn at(&self, rule: &Rule, t: u64) -> Self {
        // Entries after t are read as made at t, the latest they can have been made; those
        // that left the window are dropped.
        LogRef {
            entries: self
                .entries
                .iter()
                .map(|&(at, c)| (at.min(t), c))
                .filter(|&(at, _)| at + rule.window_us() > t)
                .collect(),
        }
    }
    fn is_ahead(&self, _rule: &Rule, t: u64) -> bool {
        self.entries.iter().any(|&(at, _)| at > t)
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        self.at(rule, t).sum(rule, t) + u128::from(cost) <= u128::from(rule.limit())
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        *self = self.at(rule, t);
        self.entries.push((t, cost));
    }
    fn carry_over(&self, old: &Rule, _new: &Rule, t: u64) -> Self {
        // What the old window already dropped stays dropped; the rest are timestamps.
        let m = self.at(old, t);
        LogRef {
            entries: m
                .entries
                .into_iter()
                .filter(|&(at, _)| at + old.window_us() > t)
                .collect(),
        }
    }
}

/// `limits`' sliding window counter as its Lua scripts (`acquire_sliding_window.lua`,
/// `sliding_window.lua`) run it on Redis: two keys with a value and an absolute expiry in ms,
/// `PTTL` answering -2 for a missing (or expired) key, Lua's floating-point weighting. A line-by-
/// line transliteration, not derived from the module's code.
#[derive(Clone, Debug, Default)]
pub struct LimitsLua {
    /// The current window's key: (value, expires at ms).
    pub current: Option<(u64, u64)>,
    /// The previous window's key.
    pub previous: Option<(u64, u64)>,
}

impl LimitsLua {
    fn live(k: Option<(u64, u64)>, t: u64) -> Option<(u64, u64)> {
        k.filter(|&(_, e)| e > t)
    }

    fn pttl(k: Option<(u64, u64)>, t: u64) -> i64 {
        Self::live(k, t).map_or(-2, |(_, e)| (e - t) as i64)
    }

    /// The shift both scripts start with.
    fn shift(&mut self, expiry_ms: u64, t: u64) {
        let current_ttl = Self::pttl(self.current, t);
        if current_ttl > 0 && (current_ttl as u64) < expiry_ms {
            // rename current → previous; set current 0 PX current_ttl + expiry
            self.previous = self.current;
            self.current = Some((0, t + current_ttl as u64 + expiry_ms));
        }
    }

    /// `acquire_sliding_window.lua` at `t` ms.
    pub fn acquire(&mut self, limit: u64, expiry_ms: u64, amount: u64, t: u64) -> bool {
        if amount > limit {
            return false;
        }
        self.shift(expiry_ms, t);
        let (previous_count, previous_ttl, current_count, _) = self.read(t);
        let weighted = (previous_count as f64 * previous_ttl as f64 / expiry_ms as f64).floor()
            as u64
            + current_count;
        if weighted + amount > limit {
            return false;
        }
        match Self::live(self.current, t) {
            Some((v, e)) => self.current = Some((v + amount, e)),
            None => self.current = Some((amount, t + expiry_ms * 2)),
        }
        true
    }

    /// `sliding_window.lua` at `t`, as limits' storage reads it: (previous count, previous ttl
    /// ms, current count, current ttl ms), missing keys as 0.
    pub fn get(&mut self, expiry_ms: u64, t: u64) -> (u64, u64, u64, u64) {
        self.shift(expiry_ms, t);
        self.read(t)
    }

    fn read(&self, t: u64) -> (u64, u64, u64, u64) {
        let count = |k: Option<(u64, u64)>| Self::live(k, t).map_or(0, |(v, _)| v);
        let ttl = |k: Option<(u64, u64)>| Self::pttl(k, t).max(0) as u64;
        (
            count(self.previous),
            ttl(self.previous),
            count(self.current),
            ttl(self.current),
        )
    }
}
