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
//!
//! Debts (`RL.CHARGE`, [`Model::force`]) and refunds ([`Model::give_back`]) follow the issue's
//! definitions per algorithm; a penalty block is a predicate on time laid over any model
//! ([`decide_blocked`], [`settled`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;

use super::{Decision, RetryAfter, Rule, MAX_COUNT};

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
    /// Charges `cost` at `t` whatever the limit says (a debt), within the debt's bound.
    fn force(&mut self, rule: &Rule, t: u64, cost: u64);
    /// Gives back up to `amount` at `t`, never below empty.
    fn give_back(&mut self, rule: &Rule, t: u64, amount: u64);
}

/// Whether the model holds nothing at `t` (its full capacity would pass).
pub fn is_empty<M: Model>(m: &M, rule: &Rule, t: u64) -> bool {
    m.admits(rule, t, rule.capacity())
}

/// The reference decision under a block that ends at `until` (as seen at `now`, `> now`): a
/// request passes at `t` iff `t ≥ until` and the model admits it then; `remaining` 0 now.
pub fn decide_blocked<M: Model>(m: &M, rule: &Rule, cost: u64, now: u64, until: u64) -> Decision {
    let m = &m.at(rule, now);
    let cap = rule.capacity();
    let passes = |t: u64, c: u64| t >= until && m.admits(rule, t, c);
    let reset_after_us = first_delay(now, 0, |t| passes(t, cap));
    let (allowed, retry_after) = if cost == 0 {
        (true, RetryAfter::Now)
    } else if cost > cap {
        (false, RetryAfter::Never)
    } else {
        (
            false,
            RetryAfter::After(first_delay(now, 1, |t| passes(t, cost))),
        )
    };
    Decision {
        allowed,
        capacity: cap,
        remaining: 0,
        retry_after,
        reset_after_us,
    }
}

/// What `RL.CHARGE` / `RL.REFUND` reply about a key (`until`: a block's end, 0 for none):
/// whether a cost-1 request passes now, how many would, when one will, when it is full again.
pub fn settled<M: Model>(m: &M, rule: &Rule, now: u64, until: u64) -> Decision {
    let m = &m.at(rule, now);
    let cap = rule.capacity();
    let passes = |t: u64, c: u64| t >= until && m.admits(rule, t, c);
    let remaining = if passes(now, cap) {
        cap
    } else if !passes(now, 1) {
        0
    } else {
        first_true(0, cap, |k| !passes(now, k + 1))
    };
    let one = first_delay(now, 0, |t| passes(t, 1));
    Decision {
        allowed: one == 0,
        capacity: cap,
        remaining,
        retry_after: if one == 0 {
            RetryAfter::Now
        } else {
            RetryAfter::After(one)
        },
        reset_after_us: first_delay(now, 0, |t| passes(t, cap)),
    }
}

/// Removes up to `amount` from the newest entries backwards.
fn take_newest(entries: &mut Vec<(u64, u64)>, mut amount: u64) {
    while amount > 0 {
        let Some(last) = entries.last_mut() else {
            return;
        };
        if last.1 > amount {
            last.1 -= amount;
            return;
        }
        amount -= last.1;
        entries.pop();
    }
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
        if !m.active(rule, t) {
            // A window that is over is gone (a later step back of the clock does not bring it
            // back).
            m.admitted.clear();
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
    /// The count may pass the limit (up to `MAX_COUNT`) until the window ends.
    fn force(&mut self, rule: &Rule, t: u64, cost: u64) {
        *self = self.at(rule, t);
        if !self.active(rule, t) {
            self.start = t;
            self.admitted.clear();
        }
        let room = u128::from(MAX_COUNT) - self.count(rule, t);
        self.admitted.push((t, cost.min(room as u64)));
    }
    /// `count − n`, never below 0.
    fn give_back(&mut self, rule: &Rule, t: u64, amount: u64) {
        *self = self.at(rule, t);
        if self.active(rule, t) {
            take_newest(&mut self.admitted, amount);
            self.admitted.retain(|&(_, c)| c > 0);
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
            // As written at t (a write that changes no count, e.g. a block's start, still
            // makes t's window the latest written).
            Some(_) => SlidingRef {
                counts: self.counts.clone(),
                latest: Some(idx),
            },
            None => self.clone(),
        }
    }
    fn is_ahead(&self, rule: &Rule, t: u64) -> bool {
        // Counts written in a window after t's (counts of 0 are nothing ahead).
        self.latest.is_some_and(|l| {
            l > Self::index(rule.window_us(), t) && (self.count(l) > 0 || self.count(l - 1) > 0)
        })
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
    /// The current window's count may pass the limit (up to `MAX_COUNT`).
    fn force(&mut self, rule: &Rule, t: u64, cost: u64) {
        *self = self.at(rule, t);
        let idx = Self::index(rule.window_us(), t);
        let c = self.counts.entry(idx).or_insert(0);
        *c = (*c + u128::from(cost)).min(u128::from(MAX_COUNT));
        self.latest = Some(idx);
    }
    /// From the current window's count first, then the previous one's.
    fn give_back(&mut self, rule: &Rule, t: u64, amount: u64) {
        *self = self.at(rule, t);
        let idx = Self::index(rule.window_us(), t);
        if self.count(idx) == 0 && self.count(idx - 1) == 0 {
            return;
        }
        let mut left = u128::from(amount);
        for i in [idx, idx - 1] {
            let c = self.counts.entry(i).or_insert(0);
            let taken = left.min(*c);
            *c -= taken;
            left -= taken;
        }
        self.latest = Some(idx);
    }
}

/// Token bucket by its definition, in exact integers: `burst` tokens, refilled at `limit`
/// tokens per `window`. Scaled by `window`: one token is `window` units, the bucket holds
/// `burst × window` units and gains `limit` units per µs. `None` = full.
///
/// A debt is a negative level, at most one window's refill deep (`−limit × window` units); the
/// model remembers whether its last change left one (`debt`), and only then may the level be
/// below 0 — below that floor it is a clock step.
#[derive(Clone, Debug)]
pub struct BucketRef {
    /// (level in units, at time) of the last change.
    level_at: Option<(i128, i128)>,
    /// The last change left a debt.
    debt: bool,
}

impl BucketRef {
    fn cap(rule: &Rule) -> i128 {
        i128::from(rule.burst()) * i128::from(rule.window_us())
    }
    /// How far below empty a debt may go: one window of refill.
    fn deepest(rule: &Rule) -> i128 {
        -i128::from(rule.limit()) * i128::from(rule.window_us())
    }
    fn floor(&self, rule: &Rule) -> i128 {
        if self.debt {
            Self::deepest(rule)
        } else {
            0
        }
    }
    /// The level at `t`, never above full nor below the floor.
    fn level(&self, rule: &Rule, t: u64) -> i128 {
        self.raw_level(rule, t)
            .clamp(self.floor(rule), Self::cap(rule))
    }
    /// Sets the level at `t` after a change; the debt flag says whether it is below empty.
    fn set(&mut self, level: i128, t: u64) {
        self.level_at = Some((level, i128::from(t)));
        self.debt = level < 0;
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
        BucketRef {
            level_at: None,
            debt: false,
        }
    }
    fn at(&self, rule: &Rule, t: u64) -> Self {
        match self.level_at {
            None => self.clone(),
            Some(_) => {
                let mut m = Self::empty();
                m.set(self.level(rule, t), t);
                m
            }
        }
    }
    fn is_ahead(&self, rule: &Rule, t: u64) -> bool {
        self.raw_level(rule, t) < self.floor(rule)
    }
    fn admits(&self, rule: &Rule, t: u64, cost: u64) -> bool {
        self.level(rule, t) >= i128::from(cost) * i128::from(rule.window_us())
    }
    fn charge(&mut self, rule: &Rule, t: u64, cost: u64) {
        let level = self.level(rule, t) - i128::from(cost) * i128::from(rule.window_us());
        self.set(level, t);
    }
    fn carry_over(&self, old: &Rule, new: &Rule, t: u64) -> Self {
        let used = Self::cap(old) - self.level(old, t);
        if used <= 0 {
            return Self::empty();
        }
        // The same number of tokens used (rounded up to a whole unit of the new rule), never
        // more than the new bucket holds — or, after a debt, than one window more.
        let (w_old, w_new) = (i128::from(old.window_us()), i128::from(new.window_us()));
        // used × w_new / w_old, rounded up; split so that the product fits in i128.
        let used_new = used / w_old * w_new + ((used % w_old) * w_new + w_old - 1) / w_old;
        let floor = if self.debt { Self::deepest(new) } else { 0 };
        let mut m = Self::empty();
        m.set((Self::cap(new) - used_new).max(floor), t);
        m
    }
    /// A debt: the level goes below empty, at most one window's refill deep.
    fn force(&mut self, rule: &Rule, t: u64, cost: u64) {
        let level = self.level(rule, t) - i128::from(cost) * i128::from(rule.window_us());
        self.set(level.max(Self::deepest(rule)), t);
    }
    /// Tokens back, never above full (which is as absent).
    fn give_back(&mut self, rule: &Rule, t: u64, amount: u64) {
        if self.level_at.is_none() {
            return;
        }
        let level = self.level(rule, t) + i128::from(amount) * i128::from(rule.window_us());
        if level >= Self::cap(rule) {
            *self = Self::empty();
        } else {
            self.set(level, t);
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
    /// An entry like any other, past the limit if need be (the stored sum at most `MAX_COUNT`).
    fn force(&mut self, rule: &Rule, t: u64, cost: u64) {
        *self = self.at(rule, t);
        let stored: u64 = self.entries.iter().map(|&(_, c)| c).sum();
        let cost = cost.min(MAX_COUNT - stored);
        if cost > 0 {
            self.entries.push((t, cost));
        }
    }
    /// From the newest entries backwards.
    fn give_back(&mut self, rule: &Rule, t: u64, amount: u64) {
        *self = self.at(rule, t);
        take_newest(&mut self.entries, amount);
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
    /// A key exists through its expiry ms: the server removes it once `now > expiry`.
    fn live(k: Option<(u64, u64)>, t: u64) -> Option<(u64, u64)> {
        k.filter(|&(_, e)| e >= t)
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

    /// `RL.CHARGE` on these keys: the shift, then `INCRBY` (or a new key of `amount` for
    /// `2 × expiry`) without the limit's check.
    pub fn charge(&mut self, expiry_ms: u64, amount: u64, t: u64) {
        self.shift(expiry_ms, t);
        match Self::live(self.current, t) {
            Some((v, e)) => self.current = Some((v + amount, e)),
            None => self.current = Some((amount, t + expiry_ms * 2)),
        }
    }

    /// `RL.REFUND` on these keys: the shift, then `DECRBY` on the current key and the rest on
    /// the previous one, never below 0; both keys deleted when both are then 0. Nothing when both
    /// already hold 0.
    pub fn refund(&mut self, expiry_ms: u64, amount: u64, t: u64) {
        self.shift(expiry_ms, t);
        let (c, p) = (self.read(t).2, self.read(t).0);
        if c == 0 && p == 0 {
            return;
        }
        let from_current = amount.min(c);
        let from_previous = (amount - from_current).min(p);
        if c - from_current == 0 && p - from_previous == 0 {
            self.current = None;
            self.previous = None;
            return;
        }
        if let Some((v, e)) = Self::live(self.current, t) {
            self.current = Some((v - from_current, e));
        }
        if let Some((v, e)) = Self::live(self.previous, t) {
            self.previous = Some((v - from_previous, e));
        }
    }

    /// `sliding_window.lua` at `t`, as limits' storage reads it: (previous count, previous ttl
    /// ms, current count, current ttl ms), missing keys as 0.
    pub fn get(&mut self, expiry_ms: u64, t: u64) -> (u64, u64, u64, u64) {
        self.shift(expiry_ms, t);
        self.read(t)
    }

    /// The latest expiry (ms) of its keys (0: none): a limits-sliding key lives exactly as long.
    pub fn last_expire_ms(&self) -> u64 {
        [self.current, self.previous]
            .iter()
            .flatten()
            .map(|k| k.1)
            .max()
            .unwrap_or(0)
    }

    /// limits' weighted count of a window read by [`LimitsLua::get`]:
    /// `⌊previous × previous_ttl / E + current⌋`, in its Lua floating point.
    pub fn weighted((pc, pt, cc, _): (u64, u64, u64, u64), expiry_ms: u64) -> u64 {
        (pc as f64 * pt as f64 / expiry_ms as f64 + cc as f64).floor() as u64
    }

    /// The same four values as a limits-sliding key's `RL.INSPECT` fields show them
    /// (`previous previous_ttl_ms current current_ttl_ms`; zeros without a key).
    pub fn window_of(fields: &[(&str, u64)]) -> (u64, u64, u64, u64) {
        let field = |n: &str| fields.iter().find(|f| f.0 == n).map_or(0, |f| f.1);
        (
            field("previous"),
            field("previous_ttl_ms"),
            field("current"),
            field("current_ttl_ms"),
        )
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
