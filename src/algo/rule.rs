//! A validated rule: which algorithm, how many per how long, and the burst.

use super::math::mul;
use super::{Algorithm, MAX_COUNT, MAX_GCRA_TOLERANCE_US, MAX_WINDOW_US};

/// A validated rule: `limit` requests per `window_us`, `burst` capacity (for algorithms that take
/// a burst, see [`Algorithm::takes_burst`]; equals `limit` for the others).
///
/// Invariants (established by [`Rule::new`]): `1 <= limit <= MAX_COUNT`,
/// `1 <= window_us <= MAX_WINDOW_US`, `1 <= burst <= MAX_COUNT`, `burst == limit` unless the
/// algorithm takes a burst, and for gcra a tolerance `burst × window / limit` of at most
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
    /// A burst other than the limit for an algorithm without one.
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
        let burst = match (algorithm.takes_burst(), burst) {
            (_, None) => limit,
            (true, Some(b)) if (1..=MAX_COUNT).contains(&b) => b,
            (true, Some(_)) => return Err(RuleError::Burst),
            (false, Some(_)) => return Err(RuleError::BurstNotGcra),
        };
        // burst × window / limit ≤ MAX (the bucket's depth in time), compared without division.
        if algorithm.takes_burst() && mul(burst, window_us) > mul(MAX_GCRA_TOLERANCE_US, limit) {
            return Err(RuleError::Tolerance);
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
    /// Burst (gcra); equals `limit` for the others.
    pub fn burst(&self) -> u64 {
        self.burst
    }
    /// The most that can pass at once: `burst` for gcra, `limit` otherwise.
    pub fn capacity(&self) -> u64 {
        self.burst
    }
}
