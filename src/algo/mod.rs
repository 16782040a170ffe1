//! Pure rate-limiting algorithms: no Redis import, the clock is a parameter.
//!
//! Every algorithm answers the same question — "may a request of `cost` pass at `now_us`?" — with
//! the same [`Decision`], and says which state to store afterwards (if any). The Redis glue stores
//! a [`Limiter`] (rule + state) per key; [`Limiter::decide`] is the one dispatch point.
//!
//! Time is in microseconds since the Unix epoch (`u64`). Durations are microseconds too.

pub mod fixed_window;
pub mod gcra;
pub mod sliding_window;

pub use fixed_window::FixedWindowState;
pub use gcra::GcraState;
pub use sliding_window::SlidingWindowState;

/// Longest accepted window: 365 days, in microseconds.
pub const MAX_WINDOW_US: u64 = 365 * 24 * 3600 * 1_000_000;

/// Largest accepted `limit`, `BURST` or `COST` (fits a signed 64-bit reply).
pub const MAX_COUNT: u64 = i64::MAX as u64;

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
            let tolerance = u128::from(t) * u128::from(burst);
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
        self.window_us / self.limit
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
