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
//! **Cost.** The newest run is kept inline; older runs live in a [`RunLog`]: varint chunks with
//! a header each (first timestamp, running sum), so finding where the window starts, the sum
//! inside it, the run a denial must wait for, or the runs a clock step moved is a binary search
//! plus a scan of one chunk — O(log runs) whatever the log's length, the cost or the clock.
//!
//! **The cap and its bound.** A key keeps at most `max_runs` runs (`C`, [`Bounds`]; default
//! [`DEFAULT_MAX_RUNS`]). Below `h = ⌊(C − 1) / 2⌋` runs the log is exact. From `h` runs on, a
//! hit that falls in the same *bucket* of `g = ⌈W / h⌉` µs (`⌊t / g⌋`) as the newest run joins
//! it, and the run takes the hit's (later) timestamp. So an entry may stay counted **less than
//! `g` past its exact expiry** (it leaves when the newest hit of its bucket leaves), never
//! longer, and the limiter is never more permissive than the exact log. Under an unchanged rule
//! the log then never exceeds `C` runs: at most `h` runs were made below the threshold, and
//! above it at most one per bucket of the window, `⌊W / g⌋ + 1 ≤ h + 1`. Only states the rule
//! did not build (after a change of window, or loaded from a node with a larger cap) can reach
//! `C`; then a hit joins the newest run whatever its bucket. With `C` = 100,000, `g` is 21 µs
//! for `W` = 1 s, 1.2 ms for 1 min, 72 ms for 1 h.
//!
//! **Debt and refunds.** `RL.CHARGE` adds its cost as a run like any other, past the limit if
//! need be: the in-window sum then exceeds the limit (a *debt*) and requests wait until enough
//! runs have left the window — each within `W`, so a debt never outlives its window (the sum is
//! bounded by `MAX_COUNT`). `RL.REFUND` takes its amount back from the newest runs backwards
//! (a run given back entirely is dropped), in O(log runs) like everything else.
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
//! use redis_ratelimit::algo::{Algorithm, Bounds, RetryAfter, Rule};
//! const S: u64 = 1_000_000;
//! let rule = Rule::new(Algorithm::MovingWindow, 3, 10 * S, None).unwrap();
//! let mut log = MovingWindowState::new(0, 2);
//! log.commit(&rule, &rule, 4 * S, 1, &Bounds::DEFAULT);
//! let d = decide(Some(&log), &rule, &rule, 2, 6 * S);
//! assert!(!d.allowed);
//! assert_eq!(d.retry_after, RetryAfter::After(4 * S));
//! assert_eq!(d.reset_after_us, 8 * S);
//! assert!(decide(Some(&log), &rule, &rule, 2, 10 * S).allowed);
//! ```

use super::kind::{Bounds, Change, Fields, Hit, Kind, Replication};
use super::run_log::{Pos, RunLog};
use super::{Decision, RetryAfter, Rule, MAX_COUNT, MAX_TIMESTAMP_US};
use crate::bits::{bit_width, Packer, Unpacker};
use crate::varint::{put_u64, Reader, Sink};

/// The default most runs one key keeps (see the module docs).
pub const DEFAULT_MAX_RUNS: usize = 100_000;

/// Most runs a payload may hold, whatever a node's configured cap: a fixed format bound, so
/// nodes with different caps read each other's states.
pub const FORMAT_MAX_RUNS: usize = 1_000_000;

/// The cap the previous payload version's replay merged at (what a version-2 hit means).
const V2_REPLAY_CAP: usize = 100_000;

/// The log of one moving-window limiter. Never empty: a limiter that holds nothing is absent.
#[derive(Clone, Debug)]
pub struct MovingWindowState {
    newest_ts: u64,
    newest_count: u64,
    /// The runs before the newest; `None` when there are none.
    older: Option<Box<RunLog>>,
}

impl PartialEq for MovingWindowState {
    /// Logical equality: the same runs, however the bytes are laid out.
    fn eq(&self, other: &Self) -> bool {
        self.total() == other.total()
            && self.run_count() == other.run_count()
            && self.runs().eq(other.runs())
    }
}

impl Eq for MovingWindowState {}

/// The threshold `h` of run count from which hits coalesce by bucket, for a cap.
fn threshold(max_runs: usize) -> usize {
    (max_runs.saturating_sub(1) / 2).max(1)
}

/// The bucket width `g = ⌈W / h⌉` in µs.
pub fn bucket_us(window_us: u64, max_runs: usize) -> u64 {
    let h = u64::try_from(threshold(max_runs)).unwrap_or(u64::MAX);
    window_us.div_ceil(h).max(1)
}

impl MovingWindowState {
    /// A log of one run.
    pub fn new(ts: u64, count: u64) -> MovingWindowState {
        MovingWindowState {
            newest_ts: ts,
            newest_count: count.min(MAX_COUNT),
            older: None,
        }
    }

    /// A log from runs, oldest first; `None` unless the timestamps strictly increase, every
    /// count is at least 1, and there are between 1 and [`FORMAT_MAX_RUNS`] runs summing to at
    /// most [`MAX_COUNT`] (what decoding accepts).
    pub fn from_runs(runs: impl IntoIterator<Item = (u64, u64)>) -> Option<MovingWindowState> {
        let mut runs = runs.into_iter();
        let (ts, count) = runs.next()?;
        if count == 0 || count > MAX_COUNT {
            return None;
        }
        let mut log = MovingWindowState::new(ts, count);
        let mut total = count;
        let mut n = 1usize;
        for (ts, count) in runs {
            n = n.checked_add(1)?;
            total = total.checked_add(count)?;
            if ts <= log.newest_ts || count == 0 || total > MAX_COUNT || n > FORMAT_MAX_RUNS {
                return None;
            }
            log.append(ts, count);
        }
        Some(log)
    }

    /// The runs `(timestamp, count)`, oldest first.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.older
            .iter()
            .flat_map(|l| l.iter())
            .chain(std::iter::once((self.newest_ts, self.newest_count)))
    }

    /// How many runs are stored.
    pub fn run_count(&self) -> usize {
        self.older
            .as_ref()
            .map_or(0, |l| l.runs())
            .saturating_add(1)
    }

    /// The sum of the stored counts.
    pub fn total(&self) -> u64 {
        self.older
            .as_ref()
            .map_or(0, |l| l.total())
            .saturating_add(self.newest_count)
    }

    /// The newest run's timestamp.
    pub fn newest_us(&self) -> u64 {
        self.newest_ts
    }

    /// The older runs' log, if any (its heap blocks are what `MEMORY USAGE` and defrag see).
    pub fn older(&self) -> Option<&RunLog> {
        self.older.as_deref()
    }

    /// The older runs' log, to relocate its blocks (active defrag).
    pub fn older_mut(&mut self) -> Option<&mut Box<RunLog>> {
        self.older.as_mut()
    }

    /// Whether every invariant holds (timestamps, counts, totals, the format's bound). O(runs):
    /// for decoded states.
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
        sum == self.total()
            && sum <= MAX_COUNT
            && self.newest_ts <= MAX_TIMESTAMP_US
            && self.run_count() <= FORMAT_MAX_RUNS
    }

    /// Appends a run after the newest.
    fn append(&mut self, ts: u64, count: u64) {
        match self.older.as_mut() {
            Some(log) => log.push(self.newest_ts, self.newest_count),
            None => self.older = Some(Box::new(RunLog::new(self.newest_ts, self.newest_count))),
        }
        self.newest_ts = ts;
        self.newest_count = count;
    }

    /// Moves every run after `now_us` to `now_us` (a clock step back): they merge into one.
    fn clamp(&mut self, now_us: u64) -> bool {
        if self.newest_ts <= now_us {
            return false;
        }
        if let Some(log) = self.older.as_mut() {
            let moved = match log.first_from_time(|t| t >= now_us) {
                Some(p) if p == log.head() => {
                    let all = log.total();
                    log.clear();
                    all
                }
                Some(p) => log.truncate_at(&p),
                None => 0,
            };
            self.newest_count = self.newest_count.saturating_add(moved);
        }
        self.newest_ts = now_us;
        true
    }

    /// Drops every run that left the window; `false` when nothing is left. `found` is the first
    /// older run still counted when the caller searched for it already (on this very log).
    fn trim(&mut self, horizon: Horizon, found: Option<Option<Pos>>) -> bool {
        let everything = horizon.left(self.newest_ts);
        if let Some(log) = self.older.as_mut() {
            let first = match found {
                _ if everything => None,
                Some(first) => first,
                None => log.first_from_time(|t| !horizon.left(t)),
            };
            match first {
                Some(p) => log.drop_before(&p),
                None => log.clear(),
            }
        }
        !everything
    }

    /// Records a request admitted under `new` at `now_us` (`cost` 0: only converts): clamps runs
    /// after `now_us` to `now_us`, drops what left the window under `old` or `new`, and adds
    /// the hit — its own run, or the newest run's when coalescing (see the module docs). The
    /// same function replays a master's hit on a replica, so both end with the same log.
    /// Returns `false` when nothing is left. O(log runs).
    pub fn commit(
        &mut self,
        old: &Rule,
        new: &Rule,
        now_us: u64,
        cost: u64,
        bounds: &Bounds,
    ) -> bool {
        self.commit_counted(None, old, new, now_us, cost, bounds)
    }

    /// [`MovingWindowState::commit`] after [`decide`] counted this log under the same rules at
    /// the same time: the first counted run it found is where the trim cuts (no second search).
    fn commit_counted(
        &mut self,
        counted: Option<Option<Pos>>,
        old: &Rule,
        new: &Rule,
        now_us: u64,
        cost: u64,
        bounds: &Bounds,
    ) -> bool {
        self.commit_with(old, new, now_us, cost, counted, |log, now_us, cost| {
            log.add(now_us, cost, new.window_us(), bounds.max_runs)
        })
    }

    /// [`MovingWindowState::commit`] as the previous payload version replays a hit: always a
    /// run of its own, then the two oldest runs merged (into the later timestamp) while over
    /// 100,000 runs. What a version-2 `RL.APPLY` from an older master means.
    pub fn commit_v2(&mut self, old: &Rule, new: &Rule, now_us: u64, cost: u64) -> bool {
        self.commit_with(old, new, now_us, cost, None, |log, now_us, cost| {
            log.add_exact(now_us, cost);
            while log.run_count() > V2_REPLAY_CAP {
                log.merge_oldest();
            }
        })
    }

    fn commit_with(
        &mut self,
        old: &Rule,
        new: &Rule,
        now_us: u64,
        cost: u64,
        found: Option<Option<Pos>>,
        add: impl FnOnce(&mut Self, u64, u64),
    ) -> bool {
        // A clamp changes the log: a position found before it means nothing after it.
        let clamped = self.clamp(now_us);
        let found = found.filter(|_| !clamped);
        let alive = self.trim(Horizon::new(old, new, now_us), found);
        if cost == 0 {
            self.free_dropped();
            return alive;
        }
        if alive {
            let cost = cost.min(MAX_COUNT.saturating_sub(self.total()));
            if cost > 0 {
                add(self, now_us, cost);
            }
        } else {
            // The older runs (all gone) keep their buffers to retire a few at a time.
            self.newest_ts = now_us;
            self.newest_count = cost.min(MAX_COUNT);
        }
        self.free_dropped();
        true
    }

    /// Gives back up to `amount` ≥ 1 at `now_us` under `new` (after `old`): clamps and trims as
    /// [`MovingWindowState::commit`] does, then takes the amount from the newest run backwards.
    /// Returns `false` when nothing is left. O(log runs): the run where the kept sum ends is
    /// found by the older log's running sums, and everything after it is cut at once.
    pub fn refund(&mut self, old: &Rule, new: &Rule, now_us: u64, amount: u64) -> bool {
        self.clamp(now_us);
        let alive = self.trim(Horizon::new(old, new, now_us), None);
        let alive = alive && self.take_back(amount);
        self.free_dropped();
        alive
    }

    /// Removes `amount` from the newest runs backwards; `false` when nothing is left.
    fn take_back(&mut self, amount: u64) -> bool {
        if self.newest_count > amount {
            self.newest_count = self.newest_count.saturating_sub(amount);
            return true;
        }
        let left = amount.saturating_sub(self.newest_count);
        let Some(log) = self.older.as_mut() else {
            return false;
        };
        let older_total = log.total();
        if log.is_empty() || left >= older_total {
            log.clear();
            return false;
        }
        // Keep the oldest `keep` ≥ 1 of the older runs: up to the first run where their sum
        // reaches it, that run cut down to what is kept of it.
        let keep = older_total.saturating_sub(left);
        let head = log.head();
        let Some(last) = log.first_reaching(&head, keep) else {
            log.clear();
            return false;
        };
        let kept_of_last = keep.saturating_sub(log.sum_before(&last));
        if let Some(after) = log.next(&last) {
            log.truncate_at(&after);
        }
        // The last kept run becomes the newest.
        if last == log.head() {
            log.clear();
        } else {
            log.truncate_at(&last);
        }
        self.newest_ts = last.ts;
        self.newest_count = kept_of_last;
        true
    }

    /// Frees a bounded number of dropped chunks' buffers; drops the older log once it holds
    /// neither runs nor buffers.
    fn free_dropped(&mut self) {
        if let Some(log) = self.older.as_mut() {
            if log.free_dropped() && log.is_empty() {
                self.older = None;
            }
        }
    }

    /// Adds a hit at `now_us` ≥ the newest run, coalescing into the newest run from the
    /// threshold on when both lie in one bucket (or at the cap).
    fn add(&mut self, now_us: u64, cost: u64, window_us: u64, max_runs: usize) {
        let runs = self.run_count();
        let g = bucket_us(window_us, max_runs);
        let same_bucket = self.newest_ts.checked_div(g) == now_us.checked_div(g);
        if now_us <= self.newest_ts
            || runs >= threshold(max_runs) && same_bucket
            || runs >= max_runs.max(1)
        {
            self.newest_ts = self.newest_ts.max(now_us);
            self.newest_count = self.newest_count.saturating_add(cost);
        } else {
            self.append(now_us, cost);
        }
    }

    /// Adds a hit at `now_us` ≥ the newest run as a run of its own (or into a run of the same µs).
    fn add_exact(&mut self, now_us: u64, cost: u64) {
        if now_us <= self.newest_ts {
            self.newest_count = self.newest_count.saturating_add(cost);
        } else {
            self.append(now_us, cost);
        }
    }

    /// Merges the oldest run into the next one (which keeps its timestamp).
    fn merge_oldest(&mut self) {
        if let Some(log) = self.older.as_mut().filter(|l| !l.is_empty()) {
            if let Some(merged) = log.merge_head() {
                self.newest_count = self.newest_count.saturating_add(merged);
                log.clear();
            }
        }
    }

    /// Absolute µs at which the newest entry leaves the window (the key's expiry).
    pub fn expires_at_us(&self, rule: &Rule) -> u64 {
        self.newest_ts.saturating_add(rule.window_us())
    }

    /// Whether runs lie after `now_us` (a clock step back).
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.newest_ts > now_us
    }

    /// The runs still counted at `now_us` under `new` (after `old`): their sum, and where they
    /// start in the older log (`None` when only the newest run counts).
    fn counted(&self, old: &Rule, new: &Rule, now_us: u64) -> Option<Counted> {
        let horizon = Horizon::new(old, new, now_us);
        if horizon.left(self.newest_ts) {
            return None;
        }
        let from = self
            .older
            .as_ref()
            .and_then(|l| l.first_from_time(|t| !horizon.left(t)).map(|p| (l, p)));
        let older_sum = from.map_or(0, |(l, p)| l.total().saturating_sub(l.sum_before(&p)));
        Some(Counted {
            sum: older_sum.saturating_add(self.newest_count),
            older_sum,
            from: from.map(|(_, p)| p),
        })
    }
}

/// What counts of a log at some time.
struct Counted {
    /// In-window sum.
    sum: u64,
    /// Of which in the older log.
    older_sum: u64,
    /// The first counted older run.
    from: Option<Pos>,
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

/// What counts of `log` at `now_us` under `new` (stored under `old`): the in-window sum and the
/// oldest and newest counted runs' times (clamped to `now_us`). O(log runs).
pub fn window_sum(
    log: &MovingWindowState,
    old: &Rule,
    new: &Rule,
    now_us: u64,
) -> (u64, Option<u64>, Option<u64>) {
    match log.counted(old, new, now_us) {
        None => (0, None, None),
        Some(c) => {
            let newest = log.newest_ts.min(now_us);
            let oldest = c.from.map_or(newest, |p| p.ts.min(now_us));
            (c.sum, Some(oldest), Some(newest))
        }
    }
}

/// Decides a request of `cost` at `now_us` under `new` against `log` (stored under `old`;
/// `None` = absent). Pure: [`MovingWindowState::commit`] records an admission. O(log runs).
pub fn decide(
    log: Option<&MovingWindowState>,
    old: &Rule,
    new: &Rule,
    cost: u64,
    now_us: u64,
) -> Decision {
    decide_counted(log, old, new, cost, now_us).0
}

/// [`decide`], and where the counted runs start in the older log: `Some(None)` when no older
/// run counts, `None` when nothing counts (or there is no log).
fn decide_counted(
    log: Option<&MovingWindowState>,
    old: &Rule,
    new: &Rule,
    cost: u64,
    now_us: u64,
) -> (Decision, Option<Option<Pos>>) {
    let limit = new.limit();
    let w = new.window_us();
    let counted = log.and_then(|l| l.counted(old, new, now_us).map(|c| (l, c)));
    let sum = counted.as_ref().map_or(0, |(_, c)| c.sum);
    let reset_after = counted.as_ref().map_or(0, |(l, _)| {
        l.newest_ts
            .min(now_us)
            .saturating_add(w)
            .saturating_sub(now_us)
    });
    let remaining = limit.saturating_sub(sum);
    let found = counted.as_ref().map(|(_, c)| c.from);
    if cost == 0 {
        return (Decision::look(limit, remaining, reset_after), found);
    }
    if cost > limit {
        return (
            Decision::over_capacity(limit, remaining, reset_after),
            found,
        );
    }
    let decision = match sum.checked_add(cost) {
        Some(charged) if charged <= limit => Decision {
            allowed: true,
            capacity: limit,
            remaining: limit.saturating_sub(charged),
            retry_after: RetryAfter::Now,
            reset_after_us: w,
        },
        _ => {
            // The oldest counted runs must leave until the sum has room for `cost`: the run
            // where the counted sum reaches the excess (≤ sum, as cost ≤ limit).
            let excess = sum.saturating_add(cost).saturating_sub(limit);
            let leaves_at = counted.as_ref().map_or(now_us, |(l, c)| {
                let older = l.older.as_ref().zip(c.from.as_ref());
                let t = match older {
                    Some((log, from)) if c.older_sum >= excess => log
                        .first_reaching(from, excess)
                        .map_or(l.newest_ts, |p| p.ts),
                    _ => l.newest_ts,
                };
                t.min(now_us).saturating_add(w)
            });
            Decision {
                allowed: false,
                capacity: limit,
                remaining,
                retry_after: RetryAfter::After(leaves_at.saturating_sub(now_us).max(1)),
                reset_after_us: reset_after,
            }
        }
    };
    (decision, found)
}

impl Kind for MovingWindowState {
    const REPLICATION: Replication = Replication::Hits;

    fn decide_absent(rule: &Rule, cost: u64, now_us: u64) -> (Decision, Option<Self>) {
        let d = decide(None, rule, rule, cost, now_us);
        let created = (d.allowed && cost > 0).then(|| MovingWindowState::new(now_us, cost));
        (d, created)
    }

    fn decide(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> (Decision, Change) {
        let converted = stored != rule || self.is_ahead(now_us);
        let (d, found) = decide_counted(Some(self), stored, rule, cost, now_us);
        let charge = d.allowed && cost > 0;
        let store_conversion = converted && matches!(d.retry_after, RetryAfter::After(_));
        if !charge && !store_conversion {
            return (d, Change::Unchanged);
        }
        // A denial leaves the runs it counted, so the log is never emptied here.
        let cost = if charge { cost } else { 0 };
        self.commit_counted(found, stored, rule, now_us, cost, bounds);
        (d, Change::Updated)
    }

    fn peek(&self, stored: &Rule, rule: &Rule, cost: u64, now_us: u64) -> Decision {
        decide(Some(self), stored, rule, cost, now_us)
    }

    fn carried_over(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self> {
        let mut log = self.clone();
        log.commit(stored, rule, now_us, 0, &Bounds::DEFAULT)
            .then_some(log)
    }

    fn is_ahead(&self, _rule: &Rule, now_us: u64) -> bool {
        MovingWindowState::is_ahead(self, now_us)
    }

    fn expires_at_us(&self, rule: &Rule) -> u64 {
        MovingWindowState::expires_at_us(self, rule)
    }

    fn is_valid(&self, _rule: &Rule) -> bool {
        MovingWindowState::is_valid(self)
    }

    /// The number of runs, then each run's timestamp (the first absolute, then the gap to the
    /// previous one) and count.
    fn encode(&self, out: &mut impl Sink) {
        put_u64(out, u64::try_from(self.run_count()).unwrap_or(u64::MAX));
        let mut previous = 0;
        for (ts, count) in self.runs() {
            put_u64(out, ts.saturating_sub(previous));
            put_u64(out, count);
            previous = ts;
        }
    }

    /// Built run by run as the bytes are read: nothing is reserved from the declared count.
    fn decode(bytes: &mut Reader<'_>, _rule: &Rule) -> Option<Self> {
        let n = usize::try_from(bytes.u64()?).ok()?;
        if n == 0 || n > FORMAT_MAX_RUNS {
            return None;
        }
        let mut ts: u64 = 0;
        let mut runs_left = n;
        let mut next = move |bytes: &mut Reader<'_>| -> Option<(u64, u64)> {
            ts = ts.checked_add(bytes.u64()?)?;
            Some((ts, bytes.u64()?))
        };
        let (t0, c0) = next(bytes)?;
        let mut log = MovingWindowState::from_runs([(t0, c0)])?;
        let mut total = log.total();
        runs_left = runs_left.saturating_sub(1);
        while runs_left > 0 {
            let (t, c) = next(bytes)?;
            total = total.checked_add(c)?;
            if t <= log.newest_ts || c == 0 || total > MAX_COUNT {
                return None;
            }
            log.append(t, c);
            runs_left = runs_left.saturating_sub(1);
        }
        Some(log)
    }

    /// `count oldest_us newest_us runs`: the in-window sum, the oldest and newest in-window
    /// entries' times (0 when none), and the runs stored.
    fn inspect(state: Option<&Self>, stored: &Rule, now_us: u64, out: &mut Fields) {
        let (count, oldest, newest) =
            state.map_or((0, None, None), |l| window_sum(l, stored, stored, now_us));
        out.push(("count", count));
        out.push(("oldest_us", oldest.unwrap_or(0)));
        out.push(("newest_us", newest.unwrap_or(0)));
        let runs = state.map_or(0, |l| u64::try_from(l.run_count()).unwrap_or(u64::MAX));
        out.push(("runs", runs));
    }

    fn charge(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> Change {
        self.commit(stored, rule, now_us, cost, bounds);
        Change::Updated
    }

    fn charge_absent(_rule: &Rule, cost: u64, now_us: u64) -> Self {
        MovingWindowState::new(now_us, cost)
    }

    fn refund(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        amount: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        if self.counted(stored, rule, now_us).is_none() {
            return Change::Unchanged;
        }
        if self.refund(stored, rule, now_us, amount) {
            Change::Updated
        } else {
            Change::Emptied
        }
    }

    /// One run at the epoch, long out of any window (the clock is always past 1971, one
    /// 365-day window after the epoch) and never ahead of any clock.
    fn nothing(_rule: &Rule, _now_us: u64) -> Self {
        MovingWindowState::new(0, 1)
    }

    fn replay(&mut self, stored: &Rule, hit: &Hit) -> Option<Change> {
        if hit.refund {
            return Some(Kind::refund(
                self,
                stored,
                &hit.rule,
                hit.cost,
                hit.now_us,
                &hit.bounds,
            ));
        }
        let alive = if hit.needs_current_replay {
            self.commit(stored, &hit.rule, hit.now_us, hit.cost, &hit.bounds)
        } else {
            self.commit_v2(stored, &hit.rule, hit.now_us, hit.cost)
        };
        Some(if alive {
            Change::Updated
        } else {
            Change::Emptied
        })
    }

    /// A log of one run only: its count (up to the limit), then its time as the anchor (the
    /// newest runs of keys alive together are less than one window apart). Longer logs stay on
    /// the heap.
    #[inline(always)]
    fn pack(&self, rule: &Rule, out: &mut Packer) -> bool {
        self.older.is_none()
            && out.count(self.newest_count, rule.limit())
            && out.anchor(
                u128::from(self.newest_ts),
                bit_width(u128::from(rule.window_us())),
            )
    }

    /// A log of one run only.
    #[inline(always)]
    fn may_pack(&self) -> bool {
        self.older.is_none()
    }

    #[inline(always)]
    fn unpack(rule: &Rule, bits: &mut Unpacker) -> Option<Self> {
        let count = bits.count(rule.limit())?;
        let ts = u64::try_from(bits.anchor()?).ok()?;
        Some(MovingWindowState::new(ts, count))
    }

    fn replay_absent(hit: &Hit) -> Option<Self> {
        (hit.cost > 0).then(|| MovingWindowState::new(hit.now_us, hit.cost))
    }

    /// A write replicates as its hit. A reader of the previous payload version replays a hit
    /// exactly while the log stays below the coalescing threshold under the default cap: only
    /// then may the hit be written in that version.
    fn hit(&self, rule: &Rule, now_us: u64, cost: u64, bounds: &Bounds) -> Option<Hit> {
        let runs = self.run_count();
        Some(Hit {
            rule: *rule,
            now_us,
            cost,
            bounds: *bounds,
            after: Some((u64::try_from(runs).unwrap_or(u64::MAX), self.total())),
            needs_current_replay: *bounds != Bounds::DEFAULT || runs >= threshold(bounds.max_runs),
            refund: false,
            block: None,
        })
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

    fn capped(max_runs: usize) -> Bounds {
        Bounds { max_runs }
    }

    #[test]
    fn runs_round_trip_through_the_log() {
        let r = rule(1_000_000, 1_000);
        let b = Bounds::DEFAULT;
        let mut log = MovingWindowState::new(10, 1);
        for (i, t) in [10u64, 11, 300, 301, 70_000, 70_000].iter().enumerate() {
            log.commit(&r, &r, *t, i as u64 + 1, &b);
        }
        let runs: Vec<_> = log.runs().collect();
        // 10: 1 + 1 (coalesced), 11, 300 and 301 left the window at 70 000.
        assert_eq!(runs, [(70_000, 11)]);
        let mut log = MovingWindowState::new(10, 1);
        for t in [10u64, 11, 300, 301, 900] {
            log.commit(&r, &r, t, 2, &b);
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
        log.commit(&r, &r, 1_010, 1, &b);
        assert_eq!(log.runs().next(), Some((11, 2)));
        assert_eq!(log.total(), 9);
    }

    #[test]
    fn one_million_cost_is_one_run() {
        let r = rule(1_000_000, 60_000_000);
        let log = MovingWindowState::new(5, 1_000_000);
        assert_eq!(log.run_count(), 1);
        assert!(log.older().is_none());
        let d = decide(Some(&log), &r, &r, 1, 6);
        assert_eq!(d.retry_after, RetryAfter::After(60_000_000 - 1));
    }

    #[test]
    fn from_the_threshold_on_hits_join_their_bucket() {
        // Cap 9: threshold 4, bucket ⌈1000 / 4⌉ = 250 µs.
        let r = rule(1_000, 1_000);
        let b = capped(9);
        assert_eq!(bucket_us(1_000, 9), 250);
        let mut log = MovingWindowState::new(1, 1);
        for t in [2, 3, 4] {
            log.commit(&r, &r, t, 1, &b);
        }
        assert_eq!(log.run_count(), 4); // exact below the threshold
        log.commit(&r, &r, 5, 1, &b); // bucket 0 = the newest's: joins it, at 5
        assert_eq!(
            log.runs().collect::<Vec<_>>(),
            [(1, 1), (2, 1), (3, 1), (5, 2)]
        );
        log.commit(&r, &r, 250, 1, &b); // bucket 1: a run of its own
        log.commit(&r, &r, 499, 3, &b); // joins it
        assert_eq!(log.runs().last(), Some((499, 4)));
        assert_eq!(log.run_count(), 5);
        assert!(log.is_valid());
    }

    #[test]
    fn the_cap_holds_under_any_rate_with_an_unchanged_rule() {
        for cap in [3usize, 4, 5, 9, 100] {
            let r = rule(1 << 40, 1_000);
            let b = capped(cap);
            let mut log = MovingWindowState::new(0, 1);
            let mut t = 0;
            for i in 0..20_000u64 {
                t += 1 + (i * 7919) % 13;
                log.commit(&r, &r, t, 1, &b);
                assert!(
                    log.run_count() <= cap,
                    "cap {cap}: {} runs",
                    log.run_count()
                );
            }
        }
    }

    #[test]
    fn compaction_keeps_memory_bounded() {
        let r = rule(1_000, 1_000);
        let mut log = MovingWindowState::new(0, 1);
        for t in 1..200_000u64 {
            log.commit(&r, &r, t * 7, 1, &Bounds::DEFAULT);
        }
        // About 143 runs in the window, 2 bytes each, in one chunk.
        assert!(log.run_count() <= 144, "{}", log.run_count());
        let older = log.older().unwrap();
        assert!(older.heap_blocks().count() <= 3);
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
        stored.commit(&r, &r, 100, 0, &Bounds::DEFAULT);
        assert_eq!(stored.runs().collect::<Vec<_>>(), [(100, 3)]);
        // Only the runs after now move.
        let log = MovingWindowState::from_runs([(50, 1), (99, 1), (100, 4), (day, 2)]).unwrap();
        let mut stored = log.clone();
        stored.commit(&r, &r, 100, 0, &Bounds::DEFAULT);
        assert_eq!(
            stored.runs().collect::<Vec<_>>(),
            [(50, 1), (99, 1), (100, 6)]
        );
    }

    #[test]
    fn version_2_replay_merges_the_oldest_at_its_cap() {
        let r = rule(1 << 40, 1 << 40);
        let mut log = MovingWindowState::new(1, 1);
        for t in 2..=(V2_REPLAY_CAP as u64 + 3) {
            log.commit_v2(&r, &r, t, 1);
        }
        assert_eq!(log.run_count(), V2_REPLAY_CAP);
        let runs: Vec<_> = log.runs().take(2).collect();
        assert_eq!(runs, [(4, 4), (5, 1)]);
        assert_eq!(log.total(), V2_REPLAY_CAP as u64 + 3);
        assert!(log.is_valid());
    }
}
