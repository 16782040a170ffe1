//! Pure rate-limiting algorithms: no Redis import, the clock is a parameter.
//!
//! Every algorithm answers the same question — "may a request of `cost` pass at `now_us`?" — with
//! the same [`Decision`], and says which state to store afterwards (if any). The Redis glue stores
//! a [`Limiter`] (rule + state) per key; [`Limiter::decide`] is the one dispatch point.
//!
//! Time is in microseconds since the Unix epoch (`u64`). Durations are microseconds too.
//!
//! Semantics shared by every algorithm (see each module for its exact rule):
//!
//! * `cost == 0` is always allowed and never written: it reports the current `remaining` and
//!   `reset_after_us` (this is also what a peek with cost 0 returns).
//! * `cost > capacity` is denied with [`RetryAfter::Never`] and never written.
//! * An allowed request with `cost >= 1` is charged and returns the limiter to store; its
//!   [`Limiter::expires_at_us`] is exactly `now + reset_after_us`.
//! * A denied request (cost within capacity) returns the *exact* earliest delay after which the
//!   same request would pass if nothing else arrived: at `now + d - 1` it is still denied.
//! * A stored state past its expiry behaves exactly like an absent key.
//! * A clock that steps back a little never panics: counting happens as if at the stored window
//!   start, while durations are still measured from the real `now`.
//! * A request under a rule other than the stored one (same algorithm) first ages the stored
//!   state under its old rule, then carries the used amount over to the new rule
//!   ([`Limiter::carried_over`]) and decides against that. A denied request under a changed
//!   rule returns the carried-over limiter to store, so the new rule takes effect at once and
//!   the denial's `retry_after` / `reset_after_us` are exact too.
//!
//! Every computation is checked or saturating (products in `u128`), so any decoded state — even
//! one failing [`Limiter::is_valid`] — is handled without panicking; the exact guarantees above
//! hold for valid states and a clock well before `MAX_TIMESTAMP_US` (year 9999).
//!
//! ```
//! use redis_ratelimit::algo::{Algorithm, Limiter, RetryAfter, Rule};
//! // 2 requests per second, sliding window.
//! let rule = Rule::new(Algorithm::SlidingWindow, 2, 1_000_000, None).unwrap();
//! let t = 10_000_000; // an aligned window start
//! let (d, stored) = Limiter::decide(None, &rule, 2, t).unwrap();
//! assert!(d.allowed && d.remaining == 0);
//! let stored = stored.unwrap(); // allowed with cost >= 1: store it
//! assert_eq!(stored.expires_at_us(), t + d.reset_after_us);
//! let (d, write) = Limiter::decide(Some(&stored), &rule, 1, t).unwrap();
//! assert!(!d.allowed && write.is_none());
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
pub mod sliding_window;

pub use fixed_window::FixedWindowState;
pub use gcra::GcraState;
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

/// Longest accepted gcra burst tolerance (`BURST` × emission interval): 100 years in µs.
///
/// Keeps every `tat` computation far from `u64` overflow.
pub const MAX_GCRA_TOLERANCE_US: u64 = 100 * 365 * 24 * 3600 * 1_000_000;

/// Which algorithm a limiter runs. The names follow the Python `limits` library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Sliding window counter over epoch-aligned windows (the default).
    SlidingWindow,
    /// Fixed window counter; a window starts at the first request after the previous one ended.
    FixedWindow,
    /// Generic cell rate algorithm (a token bucket with µs precision).
    Gcra,
}

impl Algorithm {
    /// The name used in commands, replies and errors (`sliding-window`, `fixed-window`, `gcra`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::SlidingWindow => "sliding-window",
            Algorithm::FixedWindow => "fixed-window",
            Algorithm::Gcra => "gcra",
        }
    }

    /// Parses a command-line name, case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<Algorithm> {
        [
            Algorithm::SlidingWindow,
            Algorithm::FixedWindow,
            Algorithm::Gcra,
        ]
        .into_iter()
        .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A validated rule: `limit` requests per `window_us`, `burst` capacity (gcra only; equals
/// `limit` for the counters).
///
/// Invariants (established by [`Rule::new`]): `1 <= limit <= MAX_COUNT`,
/// `1 <= window_us <= MAX_WINDOW_US`, `1 <= burst <= MAX_COUNT`, `burst == limit` unless gcra,
/// and for gcra an emission interval of at least 1 µs and a tolerance of at most
/// `MAX_GCRA_TOLERANCE_US`.
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
    /// gcra: `window / limit` is below 1 µs.
    EmissionInterval,
    /// gcra: `burst` × emission interval exceeds `MAX_GCRA_TOLERANCE_US`.
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
        let rule = Rule {
            algorithm,
            limit,
            window_us,
            burst,
        };
        if algorithm == Algorithm::Gcra {
            let t = rule.emission_interval_us();
            if t == 0 {
                return Err(RuleError::EmissionInterval);
            }
            let tolerance = u128::from(t).saturating_mul(u128::from(burst));
            if tolerance > u128::from(MAX_GCRA_TOLERANCE_US) {
                return Err(RuleError::Tolerance);
            }
        }
        Ok(rule)
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
    /// gcra emission interval `window / limit` in whole µs, rounded down (0 means invalid for
    /// gcra; a validated gcra rule always has at least 1).
    pub fn emission_interval_us(&self) -> u64 {
        self.window_us.checked_div(self.limit).unwrap_or(0)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// See [`sliding_window`].
    SlidingWindow(SlidingWindowState),
    /// See [`fixed_window`].
    FixedWindow(FixedWindowState),
    /// See [`gcra`].
    Gcra(GcraState),
}

/// What one key stores: the rule last applied and the algorithm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limiter {
    /// The rule the state was last written under.
    pub rule: Rule,
    /// The algorithm's state (its variant always matches `rule.algorithm()`).
    pub state: State,
}

impl State {
    /// The algorithm this state belongs to.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            State::SlidingWindow(_) => Algorithm::SlidingWindow,
            State::FixedWindow(_) => Algorithm::FixedWindow,
            State::Gcra(_) => Algorithm::Gcra,
        }
    }
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

impl Limiter {
    /// Decide a request of `cost` at `now_us` under `rule` against the key's stored limiter
    /// (`None` = absent key).
    ///
    /// Returns the decision and the limiter to store (its rule = `rule`), if any: after an
    /// allowed request with `cost > 0`, and after a denied one (`cost` ≤ capacity) under a rule
    /// other than the stored one. When `rule` differs from the stored rule, the stored state is
    /// first aged under its old rule, then carried over to `rule` (see each algorithm's module);
    /// storing that even on a denial makes the new rule take effect at once, so the denial's
    /// `retry_after` and `reset_after` (= the key's TTL) are exact. Peeking = calling this and
    /// ignoring the second value.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, RetryAfter, Rule};
    /// let rule = Rule::new(Algorithm::FixedWindow, 1, 1_000, None).unwrap();
    /// let (d, stored) = Limiter::decide(None, &rule, 1, 5_000).unwrap();
    /// assert!(d.allowed);
    /// let stored = stored.unwrap();
    /// let (d, write) = Limiter::decide(Some(&stored), &rule, 1, 5_400).unwrap();
    /// assert_eq!((d.allowed, d.retry_after, write), (false, RetryAfter::After(600), None));
    /// let gcra = Rule::new(Algorithm::Gcra, 1, 1_000, None).unwrap();
    /// assert!(Limiter::decide(Some(&stored), &gcra, 1, 5_400).is_err());
    /// ```
    pub fn decide(
        stored: Option<&Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> Result<(Decision, Option<Limiter>), AlgorithmMismatch> {
        let (state, converted) = match stored {
            None => (None, false),
            Some(l) if l.rule == *rule => (Some(l.state), false),
            Some(l) => (l.carried_over(rule, now_us)?.map(|l| l.state), true),
        };
        let (decision, written) = match (rule.algorithm(), state) {
            (Algorithm::SlidingWindow, Some(State::SlidingWindow(s))) => wrap(
                sliding_window::decide(Some(&s), rule, cost, now_us),
                State::SlidingWindow,
            ),
            (Algorithm::SlidingWindow, _) => wrap(
                sliding_window::decide(None, rule, cost, now_us),
                State::SlidingWindow,
            ),
            (Algorithm::FixedWindow, Some(State::FixedWindow(s))) => wrap(
                fixed_window::decide(Some(&s), rule, cost, now_us),
                State::FixedWindow,
            ),
            (Algorithm::FixedWindow, _) => wrap(
                fixed_window::decide(None, rule, cost, now_us),
                State::FixedWindow,
            ),
            (Algorithm::Gcra, Some(State::Gcra(s))) => {
                wrap(gcra::decide(Some(&s), rule, cost, now_us), State::Gcra)
            }
            (Algorithm::Gcra, _) => wrap(gcra::decide(None, rule, cost, now_us), State::Gcra),
        };
        let to_store = match (written, decision.retry_after) {
            (Some(w), _) => Some(w),
            (None, RetryAfter::After(_)) if converted => state,
            (None, _) => None,
        };
        Ok((
            decision,
            to_store.map(|state| Limiter { rule: *rule, state }),
        ))
    }

    /// This limiter as `rule` sees it at `now_us`: aged under its own rule, then adapted to
    /// `rule` (see each algorithm's module); `Ok(None)` when nothing is left (as absent).
    ///
    /// [`Limiter::decide`] does this itself on every request under a changed rule and returns
    /// the result to store (charged when allowed, as is when denied).
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, FixedWindowState, Limiter, Rule, State};
    /// let old = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    /// let new = Rule::new(Algorithm::FixedWindow, 5, 300, None).unwrap();
    /// let state = State::FixedWindow(FixedWindowState { window_start_us: 10_000, count: 5 });
    /// let l = Limiter { rule: old, state };
    /// assert_eq!(l.carried_over(&new, 10_299).unwrap(), Some(Limiter { rule: new, state }));
    /// assert_eq!(l.carried_over(&new, 10_300).unwrap(), None); // its new window is over
    /// ```
    pub fn carried_over(
        &self,
        rule: &Rule,
        now_us: u64,
    ) -> Result<Option<Limiter>, AlgorithmMismatch> {
        if self.state.algorithm() != rule.algorithm() {
            return Err(AlgorithmMismatch {
                stored: self.state.algorithm(),
                requested: rule.algorithm(),
            });
        }
        let state = match &self.state {
            State::SlidingWindow(s) => s
                .carried_over(&self.rule, rule, now_us)
                .and_then(|s| s.at(rule, now_us))
                .map(State::SlidingWindow),
            State::FixedWindow(s) => s
                .carried_over(&self.rule, now_us)
                .and_then(|s| s.at(rule, now_us))
                .map(State::FixedWindow),
            State::Gcra(s) => s
                .carried_over(&self.rule, rule, now_us)
                .and_then(|s| s.at(now_us))
                .map(State::Gcra),
        };
        Ok(state.map(|state| Limiter { rule: *rule, state }))
    }

    /// Absolute µs at which this limiter becomes equivalent to an absent key (the key's expiry).
    /// For a written state this is > now; 0 for a state that holds nothing.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
    /// let (_, stored) = Limiter::decide(None, &rule, 3, 7).unwrap();
    /// assert_eq!(stored.unwrap().expires_at_us(), 7 + 3 * 100_000);
    /// ```
    pub fn expires_at_us(&self) -> u64 {
        match &self.state {
            State::SlidingWindow(s) => s.expires_at_us(&self.rule),
            State::FixedWindow(s) => s.expires_at_us(&self.rule),
            State::Gcra(s) => s.expires_at_us(),
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
            (Algorithm::Gcra, State::Gcra(s)) => s.is_valid(),
            _ => false,
        }
    }
}

fn wrap<S>(
    (decision, state): (Decision, Option<S>),
    f: impl FnOnce(S) -> State,
) -> (Decision, Option<State>) {
    (decision, state.map(f))
}

/// `a * b` without overflow.
fn mul(a: u64, b: u64) -> u128 {
    u128::from(a).saturating_mul(u128::from(b))
}

/// A `u128` duration or instant clamped into `u64`.
fn clamp_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}
