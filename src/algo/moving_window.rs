//! Moving window: the exact sliding log (what `limits` calls the moving window).
//!
//! A request of cost `n` at `now` is admitted iff the costs admitted in `(now − W, now]` plus `n`
//! are at most `limit` (`W` = `rule.window_us()`): **no interval of length `W` ever holds more
//! than `limit`**, at microsecond resolution. The state is the log of admitted costs as *runs*
//! `(timestamp, count)`, oldest first: one hit is one run whatever its cost, hits in the same µs
//! share a run.
//!
//! * `remaining` = `limit − in-window sum` after the call (0 when over);
//! * `retry_after` (denied, `n ≤ limit`) = the earliest delay after which enough of the oldest
//!   in-window runs have left the window for `n` to pass: the run at `t` leaves at `t + W`;
//! * `reset_after` / expiry = `newest run + W`: when the last entry leaves the window.
//!
//! **Memory.** Runs before the newest are stored as LEB128 varints — the gap to the previous
//! run's timestamp, then the count — in one byte buffer, dropped from the front as they leave
//! the window (O(1) amortised per hit; the buffer grows by a quarter at a time and is compacted
//! when half of it is dead). 1,000 single hits spread over a minute take about 4 bytes each,
//! spread over an hour about 5. At most [`MAX_RUNS`] runs are kept:
//! one more merges the two oldest into the *later* timestamp, which keeps the older cost in the
//! window a little longer — stricter, never more permissive. Below the cap the log is exact.
//!
//! **Clock steps.** Runs after `now` (a clock that stepped back) are read as if made at `now`,
//! the latest they can have been made; a write stores them so. **Rule changes** keep the log
//! (entries are timestamps): what the old window had already dropped stays dropped (an entry
//! made at `t` is gone once `t + min(W_old, W_new) ≤ now`), the new limit and window count from
//! then on.
//!
//! Worked example: limit 3, `W` = 10 s. Hits at 0 s (cost 2) and 4 s (cost 1) fill it. At 6 s a
//! cost-2 request is denied: it needs the run at 0 s to leave, at 10 s, so `retry_after` = 4 s;
//! `reset_after` = 4 s + 10 s − 6 s = 8 s.
//!
//! ```
//! use redis_ratelimit::algo::moving_window::{decide, MovingWindowState};
//! use redis_ratelimit::algo::{Algorithm, RetryAfter, Rule};
//! const S: u64 = 1_000_000;
//! let rule = Rule::new(Algorithm::MovingWindow, 3, 10 * S, None).unwrap();
//! let mut log = MovingWindowState::new(0, 2);
//! log.commit(&rule, &rule, 4 * S, 1);
//! let d = decide(Some(&log), &rule, &rule, 2, 6 * S);
//! assert!(!d.allowed);
//! assert_eq!(d.retry_after, RetryAfter::After(4 * S));
//! assert_eq!(d.reset_after_us, 8 * S);
//! assert!(decide(Some(&log), &rule, &rule, 2, 10 * S).allowed);
//! ```

use super::{Decision, RetryAfter, Rule, MAX_COUNT, MAX_TIMESTAMP_US};
use crate::varint::{len_u64, put_u64, read_u64};

/// Most runs one key keeps; one more merges the two oldest (see the module docs).
pub const MAX_RUNS: usize = 100_000;

/// The log of one moving-window limiter. Never empty: a limiter that holds nothing is absent.
#[derive(Clone, Debug)]
pub struct MovingWindowState {
    /// Runs before the newest, from byte `head` on: varint gap to the previous run, varint count.
    /// The gap of the run at `head` is stale (its time is `head_ts`).
    buf: Vec<u8>,
    head: usize,
    head_ts: u64,
    encoded: usize,
    last_encoded_ts: u64,
    newest_ts: u64,
    newest_count: u64,
    total: u64,
}

impl PartialEq for MovingWindowState {
    /// Logical equality: the same runs, however the bytes are laid out.
    fn eq(&self, other: &Self) -> bool {
        self.total == other.total
            && self.run_count() == other.run_count()
            && self.runs().eq(other.runs())
    }
}

impl Eq for MovingWindowState {}

impl MovingWindowState {
    /// A log of one run.
    pub fn new(ts: u64, count: u64) -> MovingWindowState {
        MovingWindowState {
            buf: Vec::new(),
            head: 0,
            head_ts: 0,
            encoded: 0,
            last_encoded_ts: 0,
            newest_ts: ts,
            newest_count: count.min(MAX_COUNT),
            total: count.min(MAX_COUNT),
        }
    }

    /// A log from runs, oldest first; `None` unless the timestamps strictly increase, every
    /// count is at least 1, and there are between 1 and [`MAX_RUNS`] runs summing to at most
    /// [`MAX_COUNT`] (what decoding accepts).
    pub fn from_runs(runs: impl IntoIterator<Item = (u64, u64)>) -> Option<MovingWindowState> {
        let mut runs = runs.into_iter();
        let (ts, count) = runs.next()?;
        if count == 0 || count > MAX_COUNT {
            return None;
        }
        let mut log = MovingWindowState::new(ts, count);
        let mut n = 1usize;
        for (ts, count) in runs {
            n = n.checked_add(1)?;
            let total = log.total.checked_add(count)?;
            if ts <= log.newest_ts || count == 0 || total > MAX_COUNT || n > MAX_RUNS {
                return None;
            }
            log.push(ts, count);
        }
        Some(log)
    }

    /// The runs `(timestamp, count)`, oldest first.
    pub fn runs(&self) -> Runs<'_> {
        Runs {
            log: self,
            pos: self.head,
            ts: self.head_ts,
            left: self.encoded,
            newest_done: false,
        }
    }

    /// How many runs are stored.
    pub fn run_count(&self) -> usize {
        self.encoded.saturating_add(1)
    }

    /// The sum of the stored counts.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The newest run's timestamp.
    pub fn newest_us(&self) -> u64 {
        self.newest_ts
    }

    /// The buffer's heap block, if it has one (for `MEMORY USAGE` and active defrag).
    pub fn heap_block(&self) -> Option<*const u8> {
        (self.buf.capacity() > 0).then_some(self.buf.as_ptr())
    }

    /// Moves the buffer to the block `relocate` returns for it (active defrag), or leaves it
    /// when `relocate` returns null.
    ///
    /// # Safety
    /// `relocate` receives the buffer's block; when it returns a non-null pointer, that must be
    /// a block of the same size class from the global allocator holding the same bytes, and the
    /// old block must have been freed (the server's `RM_DefragAlloc` does exactly this).
    pub unsafe fn relocate_buffer(&mut self, relocate: impl FnOnce(*mut u8) -> *mut u8) {
        if self.buf.capacity() == 0 {
            return;
        }
        let moved = relocate(self.buf.as_mut_ptr());
        if moved.is_null() {
            return;
        }
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        // SAFETY: the old block is gone (caller's contract); the new one has its bytes.
        let old = std::mem::take(&mut self.buf);
        std::mem::forget(old);
        self.buf = unsafe { Vec::from_raw_parts(moved, len, cap) };
    }

    /// Whether every invariant holds (timestamps, counts, totals, the cap).
    pub fn is_valid(&self) -> bool {
        let mut prev: Option<u64> = None;
        let mut sum: u64 = 0;
        for (ts, count) in self.runs() {
            if count == 0 || prev.is_some_and(|p| ts <= p) {
                return false;
            }
            let Some(s) = sum.checked_add(count) else {
                return false;
            };
            sum = s;
            prev = Some(ts);
        }
        sum == self.total
            && sum <= MAX_COUNT
            && self.newest_ts <= MAX_TIMESTAMP_US
            && self.run_count() <= MAX_RUNS
    }

    /// Absolute µs at which the newest entry leaves the window (the key's expiry).
    pub fn expires_at_us(&self, rule: &Rule) -> u64 {
        self.newest_ts.saturating_add(rule.window_us())
    }

    /// Whether runs lie after `now_us` (a clock step back).
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.newest_ts > now_us
    }

    /// Records a request admitted under `new` at `now_us` (`cost` 0: only converts): clamps runs
    /// after `now_us` to `now_us`, drops what left the window under `old` or `new`, appends, and
    /// merges the two oldest runs while over [`MAX_RUNS`]. The same function replays a master's
    /// hit on a replica, so both end with the same log. Returns `false` when nothing is left.
    pub fn commit(&mut self, old: &Rule, new: &Rule, now_us: u64, cost: u64) -> bool {
        self.commit_capped(old, new, now_us, cost, MAX_RUNS)
    }

    /// [`MovingWindowState::commit`] with another cap (for tests).
    pub fn commit_capped(
        &mut self,
        old: &Rule,
        new: &Rule,
        now_us: u64,
        cost: u64,
        cap: usize,
    ) -> bool {
        if self.is_ahead(now_us) {
            self.clamp(now_us);
        }
        let alive = self.trim(Horizon::new(old, new, now_us));
        if cost == 0 {
            return alive;
        }
        let cost = cost.min(MAX_COUNT.saturating_sub(if alive { self.total } else { 0 }));
        if !alive {
            *self = MovingWindowState::new(now_us, cost);
            return true;
        }
        if cost > 0 {
            self.push(now_us, cost);
        }
        while self.run_count() > cap.max(2) {
            self.merge_oldest();
        }
        true
    }

    /// Appends a run at `ts` ≥ the newest (coalescing equal timestamps).
    fn push(&mut self, ts: u64, count: u64) {
        self.total = self.total.saturating_add(count);
        if ts <= self.newest_ts {
            self.newest_count = self.newest_count.saturating_add(count);
            return;
        }
        // Room for one more run (two varints), grown by a quarter: amortised O(1) like doubling,
        // but at most 25 % of the buffer is slack.
        if self.buf.capacity().saturating_sub(self.buf.len()) < 20 {
            self.buf.reserve_exact((self.buf.len() / 4).max(32));
        }
        if self.encoded == 0 {
            self.buf.clear();
            self.head = 0;
            self.head_ts = self.newest_ts;
            put_u64(&mut self.buf, 0);
        } else {
            put_u64(
                &mut self.buf,
                self.newest_ts.saturating_sub(self.last_encoded_ts),
            );
        }
        put_u64(&mut self.buf, self.newest_count);
        self.encoded = self.encoded.saturating_add(1);
        self.last_encoded_ts = self.newest_ts;
        self.newest_ts = ts;
        self.newest_count = count;
    }

    /// The encoded run at byte `pos`: (gap, count, position after it).
    fn read_run(&self, pos: usize) -> Option<(u64, u64, usize)> {
        let (gap, pos) = read_u64(&self.buf, pos)?;
        let (count, pos) = read_u64(&self.buf, pos)?;
        Some((gap, count, pos))
    }

    /// Drops every run that left the window; `false` when nothing is left.
    fn trim(&mut self, horizon: Horizon) -> bool {
        while self.encoded > 0 && horizon.left(self.head_ts) {
            self.pop_head();
        }
        if self.encoded == 0 && horizon.left(self.newest_ts) {
            self.total = 0;
            return false;
        }
        true
    }

    /// Drops the oldest encoded run. Returns its count.
    fn pop_head(&mut self) -> u64 {
        let Some((_, count, next)) = self.read_run(self.head) else {
            // Unreachable for a log built by this module; fail safe: forget the encoded runs.
            self.forget_encoded();
            return 0;
        };
        self.total = self.total.saturating_sub(count);
        self.encoded = self.encoded.saturating_sub(1);
        self.head = next;
        if self.encoded == 0 {
            self.buf.clear();
            self.head = 0;
        } else {
            let gap = read_u64(&self.buf, next).map_or(0, |(gap, _)| gap);
            self.head_ts = self.head_ts.saturating_add(gap);
            self.compact();
        }
        count
    }

    fn forget_encoded(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.encoded = 0;
        self.total = self.newest_count;
    }

    /// Reclaims the dead front of the buffer once it is half of it.
    fn compact(&mut self) {
        let len = self.buf.len();
        if self.head >= 64 && self.head.saturating_mul(2) >= len {
            self.buf.drain(..self.head);
            self.head = 0;
            if self.buf.capacity() > self.buf.len().saturating_mul(4).max(64) {
                self.buf.shrink_to(self.buf.len().saturating_mul(2));
            }
        }
    }

    /// Merges the two oldest runs into the later timestamp.
    fn merge_oldest(&mut self) {
        if self.encoded == 0 {
            return;
        }
        let first = self.head;
        let Some((_, c1, second)) = self.read_run(first) else {
            self.forget_encoded();
            return;
        };
        if self.encoded == 1 {
            // The second run is the newest.
            self.newest_count = self.newest_count.saturating_add(c1);
            self.buf.clear();
            self.head = 0;
            self.encoded = 0;
            return;
        }
        let Some((gap2, c2, end)) = self.read_run(second) else {
            self.forget_encoded();
            return;
        };
        // Rewrite the second run with both counts so that it ends where it ended; the bytes of
        // the first run make room (a head's gap is never read, so it is written as 0).
        let merged = c1.saturating_add(c2);
        let size = len_u64(0).saturating_add(len_u64(merged));
        let start = end.saturating_sub(size);
        if start < first {
            return; // cannot happen: two runs take at least size bytes
        }
        let mut bytes = Vec::with_capacity(size);
        put_u64(&mut bytes, 0);
        put_u64(&mut bytes, merged);
        if let Some(slot) = self.buf.get_mut(start..end) {
            slot.copy_from_slice(&bytes);
        }
        self.head = start;
        self.head_ts = self.head_ts.saturating_add(gap2);
        self.encoded = self.encoded.saturating_sub(1);
        self.compact();
    }

    /// Rebuilds the log with every timestamp after `now_us` moved to `now_us`.
    fn clamp(&mut self, now_us: u64) {
        let runs: Vec<(u64, u64)> = self.runs().map(|(t, c)| (t.min(now_us), c)).collect();
        let mut iter = runs.into_iter();
        let Some((ts, count)) = iter.next() else {
            return;
        };
        let mut log = MovingWindowState::new(ts, count);
        for (ts, count) in iter {
            log.push(ts, count);
        }
        *self = log;
    }
}

/// Iterator over a log's runs, oldest first.
#[derive(Debug)]
pub struct Runs<'a> {
    log: &'a MovingWindowState,
    pos: usize,
    ts: u64,
    left: usize,
    newest_done: bool,
}

impl Iterator for Runs<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.left > 0 {
            let (gap, count, next) = self.log.read_run(self.pos)?;
            if self.pos != self.log.head {
                self.ts = self.ts.saturating_add(gap);
            }
            self.pos = next;
            self.left = self.left.saturating_sub(1);
            return Some((self.ts, count));
        }
        if self.newest_done {
            return None;
        }
        self.newest_done = true;
        Some((self.log.newest_ts, self.log.newest_count))
    }
}

/// Which runs no longer count at `now_us` under `new` (after `old`): those made at `t` with
/// `t + min(W_old, W_new) ≤ now` (compared this way round so that nothing underflows near 0).
#[derive(Clone, Copy)]
struct Horizon {
    window_us: u64,
    now_us: u64,
}

impl Horizon {
    fn new(old: &Rule, new: &Rule, now_us: u64) -> Horizon {
        Horizon {
            window_us: old.window_us().min(new.window_us()),
            now_us,
        }
    }

    /// Whether a run made at `t` has left the window.
    fn left(&self, t: u64) -> bool {
        t.saturating_add(self.window_us) <= self.now_us
    }
}

/// The runs that count at `now_us`: after the cutoff, clamped to `now_us`.
fn counted<'a>(
    log: &'a MovingWindowState,
    old: &Rule,
    new: &Rule,
    now_us: u64,
) -> impl Iterator<Item = (u64, u64)> + 'a {
    let horizon = Horizon::new(old, new, now_us);
    log.runs()
        .map(move |(t, c)| (t.min(now_us), c))
        .filter(move |&(t, _)| !horizon.left(t))
}

/// What counts of `log` at `now_us`: (in-window sum, oldest and newest counted run times).
///
/// O(runs that left the window since the last write): the stored total minus the expired
/// prefix. (A log ahead of the clock, which is rare, is walked whole.)
pub fn window_sum(
    log: &MovingWindowState,
    old: &Rule,
    new: &Rule,
    now_us: u64,
) -> (u64, Option<u64>, Option<u64>) {
    if log.is_ahead(now_us) {
        let mut sum: u64 = 0;
        let (mut oldest, mut newest) = (None, None);
        for (t, c) in counted(log, old, new, now_us) {
            sum = sum.saturating_add(c);
            oldest = oldest.or(Some(t));
            newest = Some(t);
        }
        return (sum, oldest, newest);
    }
    let horizon = Horizon::new(old, new, now_us);
    let mut sum = log.total;
    for (t, c) in log.runs() {
        if !horizon.left(t) {
            return (sum, Some(t), Some(log.newest_ts));
        }
        sum = sum.saturating_sub(c);
    }
    (0, None, None)
}

/// Decides a request of `cost` at `now_us` under `new` against `log` (stored under `old`;
/// `None` = absent). Pure: [`MovingWindowState::commit`] records an admission.
pub fn decide(
    log: Option<&MovingWindowState>,
    old: &Rule,
    new: &Rule,
    cost: u64,
    now_us: u64,
) -> Decision {
    let limit = new.limit();
    let w = new.window_us();
    let (sum, _, newest) = log.map_or((0, None, None), |l| window_sum(l, old, new, now_us));
    let reset_after =
        |newest: Option<u64>| newest.map_or(0, |t| t.saturating_add(w).saturating_sub(now_us));
    let mut decision = Decision {
        allowed: cost == 0,
        capacity: limit,
        remaining: limit.saturating_sub(sum),
        retry_after: RetryAfter::Now,
        reset_after_us: reset_after(newest),
    };
    if cost == 0 {
        return decision;
    }
    if cost > limit {
        decision.retry_after = RetryAfter::Never;
        return decision;
    }
    match sum.checked_add(cost) {
        Some(charged) if charged <= limit => Decision {
            allowed: true,
            capacity: limit,
            remaining: limit.saturating_sub(charged),
            retry_after: RetryAfter::Now,
            reset_after_us: w,
        },
        _ => {
            // The oldest counted runs must leave until the sum has room for `cost`.
            let excess = u128::from(sum)
                .saturating_add(u128::from(cost))
                .saturating_sub(u128::from(limit));
            let mut dropped: u128 = 0;
            let mut at = now_us;
            if let Some(l) = log {
                for (t, c) in counted(l, old, new, now_us) {
                    dropped = dropped.saturating_add(u128::from(c));
                    at = t.saturating_add(w);
                    if dropped >= excess {
                        break;
                    }
                }
            }
            decision.retry_after = RetryAfter::After(at.saturating_sub(now_us).max(1));
            decision
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]
mod unit {
    use super::*;
    use crate::algo::Algorithm;

    fn rule(limit: u64, w: u64) -> Rule {
        Rule::new(Algorithm::MovingWindow, limit, w, None).unwrap()
    }

    #[test]
    fn runs_round_trip_through_the_buffer() {
        let r = rule(1_000_000, 1_000);
        let mut log = MovingWindowState::new(10, 1);
        for (i, t) in [10u64, 11, 300, 301, 70_000, 70_000].iter().enumerate() {
            log.commit(&r, &r, *t, i as u64 + 1);
        }
        let runs: Vec<_> = log.runs().collect();
        // 10: 1 + 1 (coalesced), 11, 300 and 301 left the window at 70 000.
        assert_eq!(runs, [(70_000, 11)]);
        let mut log = MovingWindowState::new(10, 1);
        for t in [10u64, 11, 300, 301, 900] {
            log.commit(&r, &r, t, 2);
        }
        let runs: Vec<_> = log.runs().collect();
        assert_eq!(runs, [(10, 3), (11, 2), (300, 2), (301, 2), (900, 2)]);
        assert_eq!(log.total(), 11);
        assert!(log.is_valid());
        assert_eq!(
            MovingWindowState::from_runs(runs.clone()),
            Some(log.clone())
        );
        // 1,010 drops everything up to 10.
        log.commit(&r, &r, 1_010, 1);
        assert_eq!(log.runs().next(), Some((11, 2)));
        assert_eq!(log.total(), 9);
    }

    #[test]
    fn one_million_cost_is_one_run() {
        let r = rule(1_000_000, 60_000_000);
        let log = MovingWindowState::new(5, 1_000_000);
        assert_eq!(log.run_count(), 1);
        assert_eq!(log.heap_block(), None);
        let d = decide(Some(&log), &r, &r, 1, 6);
        assert_eq!(d.retry_after, RetryAfter::After(60_000_000 - 1));
    }

    #[test]
    fn the_cap_merges_into_the_later_timestamp() {
        let r = rule(100, 1_000_000);
        let mut log = MovingWindowState::new(1, 1);
        for t in 2..=6 {
            log.commit_capped(&r, &r, t, 1, 3);
        }
        assert_eq!(log.run_count(), 3);
        let runs: Vec<_> = log.runs().collect();
        assert_eq!(runs, [(4, 4), (5, 1), (6, 1)]);
        assert_eq!(log.total(), 6);
        assert!(log.is_valid());
    }

    #[test]
    fn compaction_keeps_memory_bounded() {
        let r = rule(1_000, 1_000);
        let mut log = MovingWindowState::new(0, 1);
        for t in 1..200_000u64 {
            log.commit(&r, &r, t * 7, 1);
        }
        // About 143 runs in the window, 2 bytes each.
        assert!(log.run_count() <= 144, "{}", log.run_count());
        assert!(log.buf.capacity() <= 4 * 1024, "{}", log.buf.capacity());
    }

    #[test]
    fn a_log_from_the_future_is_clamped_to_now() {
        let r = rule(3, 1_000);
        let day = 86_400_000_000u64;
        let log = MovingWindowState::from_runs([(day, 1), (day + 5, 2)]).unwrap();
        assert!(log.is_ahead(100));
        let d = decide(Some(&log), &r, &r, 1, 100);
        assert_eq!(d.retry_after, RetryAfter::After(1_000));
        assert_eq!(d.reset_after_us, 1_000);
        let mut stored = log.clone();
        stored.commit(&r, &r, 100, 0);
        assert_eq!(stored.runs().collect::<Vec<_>>(), [(100, 3)]);
    }
}
