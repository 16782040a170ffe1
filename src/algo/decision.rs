//! The answer to one request, identical in shape for every algorithm.

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
///
/// ```
/// use redis_ratelimit::algo::{Decision, RetryAfter};
/// let denied = Decision::over_capacity(10, 3, 5_000);
/// assert_eq!((denied.allowed, denied.retry_after), (false, RetryAfter::Never));
/// let peek = Decision::look(10, 3, 5_000);
/// assert_eq!((peek.allowed, peek.remaining), (true, 3));
/// ```
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

impl Decision {
    /// A cost-0 request: allowed, charges nothing, reports the limiter as it stands.
    pub fn look(capacity: u64, remaining: u64, reset_after_us: u64) -> Decision {
        Decision {
            allowed: true,
            capacity,
            remaining,
            retry_after: RetryAfter::Now,
            reset_after_us,
        }
    }

    /// A cost above the capacity: denied for ever, charges nothing.
    pub fn over_capacity(capacity: u64, remaining: u64, reset_after_us: u64) -> Decision {
        Decision {
            allowed: false,
            retry_after: RetryAfter::Never,
            ..Decision::look(capacity, remaining, reset_after_us)
        }
    }
}
