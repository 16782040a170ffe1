//! Pure rate-limiting algorithms: no Redis import, the clock is a parameter.
//!
//! Every algorithm answers the same question — "may a request of `cost` pass at `now_us`?" — with
//! the same [`Decision`]. The Redis glue stores a [`Limiter`] (rule + state) per key and calls
//! [`Limiter::decide`] (charge) or [`Limiter::peek`] (look only); those are the dispatch points.
//!
//! Time is in microseconds since the Unix epoch (`u64`). Durations are microseconds too.
//!
//! Semantics shared by every algorithm (see each module for its exact rule):
//!
//! * `cost == 0` is always allowed and never written: it reports the current `remaining` and
//!   `reset_after_us` (this is also what a peek with cost 0 returns).
//! * `cost > capacity` is denied with [`RetryAfter::Never`] and never written.
//! * An allowed request with `cost >= 1` is charged and stored; the stored limiter's
//!   [`Limiter::expires_at_us`] is exactly `now + reset_after_us`.
//! * A denied request (cost within capacity) returns the *exact* earliest delay after which the
//!   same request would pass if nothing else arrived: at `now + d - 1` it is still denied.
//! * A stored state past its expiry behaves exactly like an absent key.
//! * **Clock steps.** A state can never legitimately be ahead of `now` by more than its rule
//!   allows (a window that has not started yet, a gcra `tat` beyond `now + burst × T`, a log
//!   entry in the future). Such a state — left by a clock that stepped back, or by a promoted
//!   replica whose clock is behind the old master's — is read as the *most restrictive state
//!   possible at `now`* (see each algorithm's `clamped`), so a step back of a day costs at most
//!   one window of waiting, never a day.
//! * A request under a rule other than the stored one (same algorithm) first ages the stored
//!   state under its old rule, then carries the used amount over to the new rule and decides
//!   against that.
//! * When the stored state had to be converted (rule change) or clamped (clock step), a denied
//!   `RL.ALLOW` still stores the converted state ([`Outcome::Updated`]), so that the key's TTL
//!   and every later reply follow from what the reply said.
//!
//! Every computation is checked or saturating (products in `u128`), so any decoded state — even
//! one failing [`Limiter::is_valid`] — is handled without panicking; the exact guarantees above
//! hold for valid states and a clock well before `MAX_TIMESTAMP_US` (year 9999).
//!
//! ```
//! use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, RetryAfter, Rule};
//! // 2 requests per second, sliding window.
//! let rule = Rule::new(Algorithm::SlidingWindow, 2, 1_000_000, None).unwrap();
//! let t = 10_000_000; // an aligned window start
//! let (d, outcome) = Limiter::decide(None, &rule, 2, t).unwrap();
//! assert!(d.allowed && d.remaining == 0);
//! let Outcome::Created(mut stored) = outcome else { unreachable!() };
//! assert_eq!(stored.expires_at_us(), t + d.reset_after_us);
//! let (d, outcome) = Limiter::decide(Some(&mut stored), &rule, 1, t).unwrap();
//! assert!(!d.allowed && outcome == Outcome::Unchanged);
//! // Half-way through the next window the 2 earlier requests weigh 2 × 0.5 = 1.
//! assert_eq!(d.retry_after, RetryAfter::After(1_500_000));
//! ```

// Pure code reachable from Redis callbacks: no panics, no unchecked arithmetic or indexing.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod fixed_window;
pub mod gcra;
pub mod moving_window;
pub mod sliding_window;

pub use fixed_window::FixedWindowState;
pub use gcra::GcraState;
pub use moving_window::MovingWindowState;
pub use sliding_window::SlidingWindowState;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

/// Longest accepted window: 365 days, in microseconds.
pub const MAX_WINDOW_US: u64 = 365 * 24 * 3600 * 1_000_000;

/// Largest accepted `limit`, `BURST` or `COST` (fits a signed 64-bit reply).
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// Latest timestamp a decoded state may hold (9999-12-31T23:59:59.999999Z in µs).
pub const MAX_TIMESTAMP_US: u64 = 253_402_300_799_999_999;

/// Longest accepted gcra burst tolerance (`BURST × window / limit`): 100 years in µs.
///
/// Keeps every `tat` computation far from overflow.
pub const MAX_GCRA_TOLERANCE_US: u64 = 100 * 365 * 24 * 3600 * 1_000_000;

/// Which algorithm a limiter runs. The names follow the Python `limits` library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Sliding window counter over epoch-aligned windows (the default).
    SlidingWindow,
    /// Fixed window counter; a window starts at the first request after the previous one ended.
    FixedWindow,
    /// Generic cell rate algorithm (a token bucket, exact to the microsecond).
    Gcra,
    /// The exact sliding log: no window of length `window` ever holds more than `limit`.
    MovingWindow,
}

impl Algorithm {
    /// Every algorithm, in tag order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::Gcra,
        Algorithm::MovingWindow,
    ];

    /// The name used in commands, replies and errors (`sliding-window`, `fixed-window`,
    /// `gcra`, `moving-window`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::SlidingWindow => "sliding-window",
            Algorithm::FixedWindow => "fixed-window",
            Algorithm::Gcra => "gcra",
            Algorithm::MovingWindow => "moving-window",
        }
    }

    /// Parses a command-line name, case-insensitively.
    ///
    /// ```
    /// use redis_ratelimit::algo::Algorithm;
    /// assert_eq!(Algorithm::from_name(b"GCRA"), Some(Algorithm::Gcra));
    /// assert_eq!(Algorithm::from_name(b"token-bucket"), None);
    /// ```
    pub fn from_name(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A validated rule: `limit` requests per `window_us`, `burst` capacity (gcra only; equals
/// `limit` for the counters).
///
/// Invariants (established by [`Rule::new`]): `1 <= limit <= MAX_COUNT`,
/// `1 <= window_us <= MAX_WINDOW_US`, `1 <= burst <= MAX_COUNT`, `burst == limit` unless gcra,
/// and for gcra a tolerance `burst × window / limit` of at most `MAX_GCRA_TOLERANCE_US`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    algorithm: Algorithm,
    limit: u64,
    window_us: u64,
    burst: u64,
}

/// Why a rule is not acceptable; the glue turns this into an `ERR` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    /// `limit` outside `1..=MAX_COUNT`.
    Limit,
    /// `window` outside `1..=MAX_WINDOW_US`.
    Window,
    /// `burst` outside `1..=MAX_COUNT`.
    Burst,
    /// A burst other than the limit for a counter algorithm.
    BurstNotGcra,
    /// gcra: `burst × window / limit` exceeds `MAX_GCRA_TOLERANCE_US`.
    Tolerance,
}

impl Rule {
    /// Validates and builds a rule. `burst` is `None` for "same as limit".
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Rule};
    /// let r = Rule::new(Algorithm::Gcra, 10, 1_000_000, Some(20)).unwrap();
    /// assert_eq!(r.capacity(), 20);
    /// assert!(Rule::new(Algorithm::FixedWindow, 10, 1_000_000, Some(20)).is_err());
    /// // More than one request per microsecond is fine: gcra is exact.
    /// assert!(Rule::new(Algorithm::Gcra, 3_000_000, 1_000_000, None).is_ok());
    /// ```
    pub fn new(
        algorithm: Algorithm,
        limit: u64,
        window_us: u64,
        burst: Option<u64>,
    ) -> Result<Rule, RuleError> {
        if !(1..=MAX_COUNT).contains(&limit) {
            return Err(RuleError::Limit);
        }
        if !(1..=MAX_WINDOW_US).contains(&window_us) {
            return Err(RuleError::Window);
        }
        let burst = match (algorithm, burst) {
            (_, None) => limit,
            (Algorithm::Gcra, Some(b)) if (1..=MAX_COUNT).contains(&b) => b,
            (Algorithm::Gcra, Some(_)) => return Err(RuleError::Burst),
            (_, Some(_)) => return Err(RuleError::BurstNotGcra),
        };
        if algorithm == Algorithm::Gcra {
            // burst × window / limit ≤ MAX, compared without division.
            if mul(burst, window_us) > mul(MAX_GCRA_TOLERANCE_US, limit) {
                return Err(RuleError::Tolerance);
            }
        }
        Ok(Rule {
            algorithm,
            limit,
            window_us,
            burst,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// Requests per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }
    /// Window length in µs.
    pub fn window_us(&self) -> u64 {
        self.window_us
    }
    /// Burst (gcra); equals `limit` for the counters.
    pub fn burst(&self) -> u64 {
        self.burst
    }
    /// The most that can pass at once: `burst` for gcra, `limit` otherwise.
    pub fn capacity(&self) -> u64 {
        self.burst
    }
}

/// When a denied request could pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Allowed now (reply 0).
    Now,
    /// Denied; would pass after this many µs (≥ 1) if nothing else arrives.
    After(u64),
    /// Denied; can never pass (cost > capacity). Reply -1.
    Never,
}

/// The answer to one request, identical in shape for every algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The request was admitted (and, unless peeking or cost 0, charged).
    pub allowed: bool,
    /// The most that can pass at once (`limit`, or `burst` for gcra).
    pub capacity: u64,
    /// How many further cost-1 requests would be admitted right now, after this one.
    pub remaining: u64,
    /// When a denied request would pass.
    pub retry_after: RetryAfter,
    /// µs until the limiter is back at full capacity if nothing else arrives (0 = already full).
    pub reset_after_us: u64,
}

/// The per-algorithm state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// See [`sliding_window`].
    SlidingWindow(SlidingWindowState),
    /// See [`fixed_window`].
    FixedWindow(FixedWindowState),
    /// See [`gcra`].
    Gcra(GcraState),
    /// See [`moving_window`] (boxed: a log is larger than the counters' states).
    MovingWindow(Box<MovingWindowState>),
}

impl State {
    /// The algorithm this state belongs to.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            State::SlidingWindow(_) => Algorithm::SlidingWindow,
            State::FixedWindow(_) => Algorithm::FixedWindow,
            State::Gcra(_) => Algorithm::Gcra,
            State::MovingWindow(_) => Algorithm::MovingWindow,
        }
    }
}

/// What one key stores: the rule last applied and the algorithm's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limiter {
    /// The rule the state was last written under.
    pub rule: Rule,
    /// The algorithm's state (its variant always matches `rule.algorithm()`).
    pub state: State,
}

/// A request named an algorithm other than the one stored at the key (the glue replies with an
/// error and leaves the key alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmMismatch {
    /// The algorithm of the stored state.
    pub stored: Algorithm,
    /// The algorithm the request asked for.
    pub requested: Algorithm,
}

/// What [`Limiter::decide`] (or [`Limiter::replay`]) did to the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to store (denied, peek-like, or cost 0).
    Unchanged,
    /// The stored limiter was changed in place: store it (expiry, replication).
    Updated,
    /// The key was absent and this limiter must be created.
    Created(Limiter),
    /// The stored limiter holds nothing any more: delete the key ([`Limiter::replay`] only).
    Emptied,
}

/// The counter algorithms' states (small, `Copy`): how `Limiter` treats all three alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counter {
    Sliding(SlidingWindowState),
    Fixed(FixedWindowState),
    Gcra(GcraState),
}

impl Counter {
    fn of(state: &State) -> Option<Counter> {
        match state {
            State::SlidingWindow(s) => Some(Counter::Sliding(*s)),
            State::FixedWindow(s) => Some(Counter::Fixed(*s)),
            State::Gcra(s) => Some(Counter::Gcra(*s)),
            State::MovingWindow(_) => None,
        }
    }

    fn into_state(self) -> State {
        match self {
            Counter::Sliding(s) => State::SlidingWindow(s),
            Counter::Fixed(s) => State::FixedWindow(s),
            Counter::Gcra(s) => State::Gcra(s),
        }
    }

    /// Whether the state is ahead of anything possible at `now_us` under `rule`.
    fn is_ahead(&self, rule: &Rule, now_us: u64) -> bool {
        match self {
            Counter::Sliding(s) => s.is_ahead(now_us),
            Counter::Fixed(s) => s.is_ahead(now_us),
            Counter::Gcra(s) => s.is_ahead(rule, now_us),
        }
    }

    /// The state as `rule` sees it at `now_us`: clamped under `old`, aged under `old`, then
    /// carried over to `rule`. `None` = as absent.
    fn view(&self, old: &Rule, rule: &Rule, now_us: u64) -> Option<Counter> {
        match self {
            Counter::Sliding(s) => s
                .clamped(old, now_us)
                .carried_over(old, rule, now_us)
                .and_then(|s| s.at(rule, now_us))
                .map(Counter::Sliding),
            Counter::Fixed(s) => s
                .clamped(now_us)
                .at(old, now_us)
                .and_then(|s| s.at(rule, now_us))
                .map(Counter::Fixed),
            Counter::Gcra(s) => s
                .clamped(old, now_us)
                .carried_over(old, rule, now_us)
                .map(Counter::Gcra),
        }
    }

    /// Decides against `state` (already under `rule`, `None` = absent). `rule` is a counter's.
    fn decide(
        state: Option<Counter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> (Decision, Option<Counter>) {
        match rule.algorithm() {
            Algorithm::SlidingWindow => run_counter(
                state.and_then(|c| match c {
                    Counter::Sliding(s) => Some(s),
                    _ => None,
                }),
                sliding_window::decide,
                Counter::Sliding,
                (rule, cost, now_us),
            ),
            Algorithm::FixedWindow => run_counter(
                state.and_then(|c| match c {
                    Counter::Fixed(s) => Some(s),
                    _ => None,
                }),
                fixed_window::decide,
                Counter::Fixed,
                (rule, cost, now_us),
            ),
            Algorithm::Gcra => run_counter(
                state.and_then(|c| match c {
                    Counter::Gcra(s) => Some(s),
                    _ => None,
                }),
                gcra::decide,
                Counter::Gcra,
                (rule, cost, now_us),
            ),
            // Not a counter: answered as an absent log (callers route logs elsewhere).
            Algorithm::MovingWindow => {
                (moving_window::decide(None, rule, rule, cost, now_us), None)
            }
        }
    }
}

/// The signature every counter algorithm's `decide` has.
type CounterDecide<S> = fn(Option<&S>, &Rule, u64, u64) -> (Decision, Option<S>);

/// Runs one counter algorithm on its state and wraps what it writes back into a [`Counter`].
fn run_counter<S>(
    state: Option<S>,
    decide: CounterDecide<S>,
    wrap: fn(S) -> Counter,
    (rule, cost, now_us): (&Rule, u64, u64),
) -> (Decision, Option<Counter>) {
    let (d, written) = decide(state.as_ref(), rule, cost, now_us);
    (d, written.map(wrap))
}

/// The decision for an absent key, and the limiter to create if any.
fn decide_absent(rule: &Rule, cost: u64, now_us: u64) -> (Decision, Outcome) {
    let created = |state| Outcome::Created(Limiter { rule: *rule, state });
    if rule.algorithm() == Algorithm::MovingWindow {
        let d = moving_window::decide(None, rule, rule, cost, now_us);
        let outcome = if d.allowed && cost > 0 {
            created(State::MovingWindow(Box::new(MovingWindowState::new(
                now_us, cost,
            ))))
        } else {
            Outcome::Unchanged
        };
        return (d, outcome);
    }
    let (d, written) = Counter::decide(None, rule, cost, now_us);
    let outcome = match written {
        Some(c) => created(c.into_state()),
        None => Outcome::Unchanged,
    };
    (d, outcome)
}

impl Limiter {
    /// Decides a request of `cost` at `now_us` under `rule` against the key's stored limiter
    /// (`None` = absent key), and updates it in place when something must be stored.
    ///
    /// Stores after an allowed request with `cost > 0`, and after a denied one (`cost` ≤
    /// capacity) whose stored state had to be converted to a new rule or clamped after a clock
    /// step: then the new rule (or the clamp) takes effect at once and the denial's
    /// `retry_after` and `reset_after` (= the key's TTL) are exact.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, RetryAfter, Rule};
    /// let rule = Rule::new(Algorithm::FixedWindow, 1, 1_000, None).unwrap();
    /// let (d, outcome) = Limiter::decide(None, &rule, 1, 5_000).unwrap();
    /// let Outcome::Created(mut stored) = outcome else { unreachable!() };
    /// let (d, outcome) = Limiter::decide(Some(&mut stored), &rule, 1, 5_400).unwrap();
    /// assert_eq!((d.allowed, d.retry_after, outcome), (false, RetryAfter::After(600), Outcome::Unchanged));
    /// let gcra = Rule::new(Algorithm::Gcra, 1, 1_000, None).unwrap();
    /// assert!(Limiter::decide(Some(&mut stored), &gcra, 1, 5_400).is_err());
    /// ```
    pub fn decide(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> Result<(Decision, Outcome), AlgorithmMismatch> {
        let Some(stored) = stored else {
            return Ok(decide_absent(rule, cost, now_us));
        };
        stored.check_algorithm(rule)?;
        let converted = stored.rule != *rule || stored.is_ahead(now_us);
        let old = stored.rule;
        let counter = match &mut stored.state {
            State::MovingWindow(log) => {
                let d = moving_window::decide(Some(log), &old, rule, cost, now_us);
                let charge = d.allowed && cost > 0;
                let store_conversion = converted && matches!(d.retry_after, RetryAfter::After(_));
                if !charge && !store_conversion {
                    return Ok((d, Outcome::Unchanged));
                }
                // A denial leaves the runs it counted, so the log is never emptied here.
                log.commit(&old, rule, now_us, if charge { cost } else { 0 });
                stored.rule = *rule;
                return Ok((d, Outcome::Updated));
            }
            other => Counter::of(other),
        };
        let Some(counter) = counter else {
            return Ok((decide_absent(rule, cost, now_us).0, Outcome::Unchanged));
        };
        let view = counter.view(&old, rule, now_us);
        let (d, written) = Counter::decide(view, rule, cost, now_us);
        let to_store = match (written, d.retry_after) {
            (Some(w), _) => Some(w),
            (None, RetryAfter::After(_)) if converted => view,
            (None, _) => None,
        };
        Ok(match to_store {
            Some(c) => {
                *stored = Limiter {
                    rule: *rule,
                    state: c.into_state(),
                };
                (d, Outcome::Updated)
            }
            None => (d, Outcome::Unchanged),
        })
    }

    /// The reply [`Limiter::decide`] would give, without changing anything.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
    /// let (_, Outcome::Created(stored)) = Limiter::decide(None, &rule, 4, 0).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(Limiter::peek(Some(&stored), &rule, 1, 0).unwrap().remaining, 5);
    /// assert_eq!(Limiter::peek(None, &rule, 1, 0).unwrap().remaining, 9);
    /// ```
    pub fn peek(
        stored: Option<&Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> Result<Decision, AlgorithmMismatch> {
        let Some(l) = stored else {
            return Ok(decide_absent(rule, cost, now_us).0);
        };
        l.check_algorithm(rule)?;
        if let State::MovingWindow(log) = &l.state {
            return Ok(moving_window::decide(
                Some(log),
                &l.rule,
                rule,
                cost,
                now_us,
            ));
        }
        let view = Counter::of(&l.state).and_then(|c| c.view(&l.rule, rule, now_us));
        Ok(Counter::decide(view, rule, cost, now_us).0)
    }

    /// Records a request the master admitted (`cost` ≥ 1) or converted (`cost` 0) at `now_us`
    /// under `rule` — what a replica or an AOF replay does with `RL.APPLY`. No limit is checked:
    /// the master decided. Moving-window only (the other algorithms replicate their whole state).
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::MovingWindow, 2, 1_000, None).unwrap();
    /// let (d, Outcome::Created(mut master)) = Limiter::decide(None, &rule, 2, 10).unwrap() else {
    ///     unreachable!()
    /// };
    /// let Outcome::Created(replica) = Limiter::replay(None, &rule, 2, 10).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(master, replica);
    /// ```
    pub fn replay(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> Result<Outcome, AlgorithmMismatch> {
        let mismatch = |stored: Algorithm| AlgorithmMismatch {
            stored,
            requested: rule.algorithm(),
        };
        if rule.algorithm() != Algorithm::MovingWindow {
            return Err(mismatch(Algorithm::MovingWindow));
        }
        let Some(stored) = stored else {
            return Ok(if cost > 0 {
                Outcome::Created(Limiter {
                    rule: *rule,
                    state: State::MovingWindow(Box::new(MovingWindowState::new(now_us, cost))),
                })
            } else {
                Outcome::Unchanged
            });
        };
        let old = stored.rule;
        let State::MovingWindow(log) = &mut stored.state else {
            return Err(mismatch(stored.state.algorithm()));
        };
        let alive = log.commit(&old, rule, now_us, cost);
        stored.rule = *rule;
        Ok(if alive {
            Outcome::Updated
        } else {
            Outcome::Emptied
        })
    }

    /// This limiter as `rule` sees it at `now_us`: clamped and aged under its own rule, then
    /// carried over to `rule`; `Ok(None)` when nothing is left (as absent).
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, FixedWindowState, Limiter, Rule, State};
    /// let old = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    /// let new = Rule::new(Algorithm::FixedWindow, 5, 300, None).unwrap();
    /// let state = State::FixedWindow(FixedWindowState { window_start_us: 10_000, count: 5 });
    /// let l = Limiter { rule: old, state: state.clone() };
    /// assert_eq!(l.carried_over(&new, 10_299).unwrap(), Some(Limiter { rule: new, state }));
    /// assert_eq!(l.carried_over(&new, 10_300).unwrap(), None); // its new window is over
    /// ```
    pub fn carried_over(
        &self,
        rule: &Rule,
        now_us: u64,
    ) -> Result<Option<Limiter>, AlgorithmMismatch> {
        self.check_algorithm(rule)?;
        if let State::MovingWindow(log) = &self.state {
            let mut log = log.clone();
            let alive = log.commit(&self.rule, rule, now_us, 0);
            return Ok(alive.then_some(Limiter {
                rule: *rule,
                state: State::MovingWindow(log),
            }));
        }
        Ok(Counter::of(&self.state)
            .and_then(|c| c.view(&self.rule, rule, now_us))
            .map(|c| Limiter {
                rule: *rule,
                state: c.into_state(),
            }))
    }

    /// Whether the state is ahead of anything possible at `now_us` (left by a clock that stepped
    /// back): such a state is read as the most restrictive state possible at `now_us`.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, FixedWindowState, Limiter, Rule, State};
    /// let rule = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    /// let state = State::FixedWindow(FixedWindowState { window_start_us: 10_000, count: 5 });
    /// let l = Limiter { rule, state };
    /// assert!(l.is_ahead(9_999) && !l.is_ahead(10_000));
    /// ```
    pub fn is_ahead(&self, now_us: u64) -> bool {
        match &self.state {
            State::MovingWindow(log) => log.is_ahead(now_us),
            other => Counter::of(other).is_some_and(|c| c.is_ahead(&self.rule, now_us)),
        }
    }

    fn check_algorithm(&self, rule: &Rule) -> Result<(), AlgorithmMismatch> {
        if self.state.algorithm() == rule.algorithm() {
            Ok(())
        } else {
            Err(AlgorithmMismatch {
                stored: self.state.algorithm(),
                requested: rule.algorithm(),
            })
        }
    }

    /// Absolute µs at which this limiter becomes equivalent to an absent key (the key's expiry).
    /// For a written state this is > now; 0 for a state that holds nothing.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
    /// let (_, Outcome::Created(stored)) = Limiter::decide(None, &rule, 3, 7).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(stored.expires_at_us(), 7 + 3 * 100_000);
    /// ```
    pub fn expires_at_us(&self) -> u64 {
        match &self.state {
            State::SlidingWindow(s) => s.expires_at_us(&self.rule),
            State::FixedWindow(s) => s.expires_at_us(&self.rule),
            State::Gcra(s) => s.expires_at_us(&self.rule),
            State::MovingWindow(log) => log.expires_at_us(&self.rule),
        }
    }

    /// Whether a decoded limiter (from RDB / a replicated payload) satisfies every invariant:
    /// the state variant matches `rule.algorithm()`, counts are at most `MAX_COUNT`, timestamps
    /// at most `MAX_TIMESTAMP_US`, and a sliding `window_start_us` is a multiple of the window.
    ///
    /// Zero counts are accepted (such a state behaves as an absent key).
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Rule, SlidingWindowState, State};
    /// let rule = Rule::new(Algorithm::SlidingWindow, 10, 1_000, None).unwrap();
    /// let ok = SlidingWindowState { window_start_us: 5_000, current: 3, previous: 9 };
    /// assert!(Limiter { rule, state: State::SlidingWindow(ok) }.is_valid());
    /// let unaligned = SlidingWindowState { window_start_us: 5_001, ..ok };
    /// assert!(!Limiter { rule, state: State::SlidingWindow(unaligned) }.is_valid());
    /// ```
    pub fn is_valid(&self) -> bool {
        match (self.rule.algorithm(), &self.state) {
            (Algorithm::SlidingWindow, State::SlidingWindow(s)) => s.is_valid(&self.rule),
            (Algorithm::FixedWindow, State::FixedWindow(s)) => s.is_valid(),
            (Algorithm::Gcra, State::Gcra(s)) => s.is_valid(&self.rule),
            (Algorithm::MovingWindow, State::MovingWindow(log)) => log.is_valid(),
            _ => false,
        }
    }
}

/// `a * b` without overflow.
fn mul(a: u64, b: u64) -> u128 {
    u128::from(a).saturating_mul(u128::from(b))
}

/// A `u128` duration or instant clamped into `u64`.
fn clamp_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `ceil(a / b)`; `None` when `b == 0`.
fn div_ceil(a: u128, b: u128) -> Option<u128> {
    let q = a.checked_div(b)?;
    let r = a.checked_rem(b)?;
    Some(if r > 0 { q.saturating_add(1) } else { q })
}
