//! The drop-in GCRA command shapes other tools already send, mapped onto the module's own gcra
//! limiter: parsing into a [`Request`] and the five-integer reply. Pure code (no Redis import).
//!
//! * redis-cell's `CL.THROTTLE key max_burst count_per_period period [quantity]` (also
//!   `RL.THROTTLE`), period in the window syntax (`60`, `500ms`, `1m`);
//! * Redis 8.8's pulled `GCRA key max_burst tokens_per_period period [TOKENS n]`, period a
//!   number of seconds (`60`, `0.5`, `1e-3`).
//!
//! Both become the rule `ALGO gcra`, `limit` = the count per period, `window` = the period,
//! `BURST` = `max_burst + 1`, so a key answers the same through `RL.ALLOW … ALGO gcra`,
//! `RL.PEEK` and `RL.INSPECT`. Both reply `[limited, max_burst + 1, remaining, retry_after_s,
//! reset_after_s]`:
//!
//! * `limited`: 1 if denied, else 0 (the inverse of `RL.ALLOW`'s first field);
//! * `retry_after_s`: -1 when admitted or when the request can never pass (cost above the
//!   capacity); when denied, the exact wait rounded **up** to whole seconds, so a client that
//!   waits exactly that long is admitted (redis-cell 0.5 rounds fractions below 1 ms down);
//! * `reset_after_s`: the time until the bucket is full again, rounded up to whole seconds.
//!
//! Worked example, the one in redis-cell's README: `CL.THROTTLE user123 15 30 60 1` is 30 per
//! minute (one per 2 s) with a burst of 16 at once. The first call answers `0 16 15 -1 2`, the
//! 16th `0 16 0 -1 32`; the 17th is denied with `1 16 0 2 32`: one more passes in 2 s, and the
//! bucket is full again in 32 s.
//!
//! ```
//! use redis_ratelimit::algo::{Limiter, Outcome};
//! use redis_ratelimit::compat::{parse_throttle, throttle_reply};
//! let req = parse_throttle([&b"15"[..], b"30", b"60", b"1"]).unwrap();
//! let (d, Outcome::Created(mut stored)) = Limiter::decide(None, &req.rule, req.cost, 0).unwrap()
//! else { unreachable!() };
//! assert_eq!(throttle_reply(&d), [0, 16, 15, -1, 2]);
//! for _ in 1..16 {
//!     Limiter::decide(Some(&mut stored), &req.rule, req.cost, 0).unwrap();
//! }
//! let (d, _) = Limiter::decide(Some(&mut stored), &req.rule, req.cost, 0).unwrap();
//! assert_eq!(throttle_reply(&d), [1, 16, 0, 2, 32]);
//! ```

use crate::algo::{Algorithm, Decision, RetryAfter, Rule, RuleError, MAX_COUNT, MAX_WINDOW_US};
use crate::args::{echo, parse_count, parse_window, Request};

/// Why compat arguments were refused. [`CompatError::message`] gives the reply text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompatError {
    /// `max_burst` is not an integer from 0 to `MAX_COUNT - 1`.
    MaxBurst,
    /// `count_per_period` (CL.THROTTLE) is not an integer in range.
    CountPerPeriod,
    /// `tokens_per_period` (GCRA) is not an integer in range.
    TokensPerPeriod,
    /// CL.THROTTLE's period is not a window.
    Window,
    /// GCRA's period is not a number of seconds in range.
    Seconds,
    /// CL.THROTTLE's `quantity` is not an integer in range.
    Quantity,
    /// GCRA's `TOKENS` value is not an integer in range.
    Tokens,
    /// GCRA: `TOKENS` without a value.
    TokensMissing,
    /// GCRA: something other than `TOKENS` after the period.
    UnknownOption(Vec<u8>),
    /// `(max_burst + 1) × period / count` is longer than 100 years.
    Tolerance,
}

impl CompatError {
    /// The error reply, with its `ERR` prefix.
    ///
    /// ```
    /// use redis_ratelimit::compat::{parse_gcra, CompatError};
    /// let err = parse_gcra([&b"1"[..], b"10", b"0"]).unwrap_err();
    /// assert_eq!(err, CompatError::Seconds);
    /// assert!(err.message().starts_with("ERR period must be"));
    /// ```
    pub fn message(&self) -> String {
        let max = MAX_COUNT;
        let max_burst = MAX_COUNT.saturating_sub(1);
        match self {
            CompatError::MaxBurst => {
                format!("ERR max_burst must be an integer from 0 to {max_burst}")
            }
            CompatError::CountPerPeriod => {
                format!("ERR count_per_period must be an integer from 1 to {max}")
            }
            CompatError::TokensPerPeriod => {
                format!("ERR tokens_per_period must be an integer from 1 to {max}")
            }
            CompatError::Window => "ERR period must be a duration from 1 microsecond to 365d: \
                 whole seconds (60) or a number with a unit ms, s, m, h or d (500ms, 1.5s, 1m)"
                .to_string(),
            CompatError::Seconds => "ERR period must be a number of seconds from 0.000001 \
                 to 31536000 (365 days), such as 60, 0.5 or 1e-3"
                .to_string(),
            CompatError::Quantity => format!("ERR quantity must be an integer from 0 to {max}"),
            CompatError::Tokens => format!("ERR TOKENS must be an integer from 1 to {max}"),
            CompatError::TokensMissing => "ERR TOKENS needs a value".to_string(),
            CompatError::UnknownOption(name) => {
                format!("ERR unknown option '{}': expected TOKENS", echo(name))
            }
            CompatError::Tolerance => "ERR (max_burst + 1) * period / count must not exceed \
                 100 years"
                .to_string(),
        }
    }
}

/// The gcra rule of `max_burst`, `count` per `period_us`.
fn gcra_rule(max_burst: u64, count: u64, period_us: u64) -> Result<Rule, CompatError> {
    let burst = max_burst.checked_add(1).ok_or(CompatError::MaxBurst)?;
    Rule::new(Algorithm::Gcra, count, period_us, Some(burst)).map_err(|e| match e {
        RuleError::Tolerance => CompatError::Tolerance,
        RuleError::Burst => CompatError::MaxBurst,
        RuleError::Window => CompatError::Window,
        RuleError::Limit | RuleError::BurstNotGcra => CompatError::CountPerPeriod,
    })
}

fn parse_max_burst(arg: Option<&[u8]>) -> Result<u64, CompatError> {
    arg.and_then(parse_count)
        .filter(|&m| m < MAX_COUNT)
        .ok_or(CompatError::MaxBurst)
}

/// Parses what follows the key of `CL.THROTTLE` / `RL.THROTTLE`:
/// `max_burst count_per_period period [quantity]`. The caller checks the argument count.
///
/// ```
/// use redis_ratelimit::compat::parse_throttle;
/// let req = parse_throttle([&b"15"[..], b"30", b"60"]).unwrap();
/// assert_eq!((req.rule.limit(), req.rule.window_us(), req.rule.burst()), (30, 60_000_000, 16));
/// assert_eq!(req.cost, 1);
/// assert_eq!(parse_throttle([&b"0"[..], b"10", b"500ms", b"0"]).unwrap().cost, 0);
/// ```
pub fn parse_throttle<'a, I>(args: I) -> Result<Request, CompatError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut args = args.into_iter();
    let max_burst = parse_max_burst(args.next())?;
    let count = args
        .next()
        .and_then(parse_count)
        .filter(|&c| c >= 1)
        .ok_or(CompatError::CountPerPeriod)?;
    let period_us = args
        .next()
        .and_then(parse_window)
        .ok_or(CompatError::Window)?;
    let cost = match args.next() {
        Some(q) => parse_count(q).ok_or(CompatError::Quantity)?,
        None => 1,
    };
    Ok(Request {
        rule: gcra_rule(max_burst, count, period_us)?,
        cost,
    })
}

/// Parses what follows the key of `GCRA`: `max_burst tokens_per_period period [TOKENS n]`.
/// The caller checks the argument count.
///
/// ```
/// use redis_ratelimit::compat::parse_gcra;
/// let req = parse_gcra([&b"4"[..], b"3", b"0.5", b"tokens", b"2"]).unwrap();
/// assert_eq!((req.rule.limit(), req.rule.window_us(), req.rule.burst()), (3, 500_000, 5));
/// assert_eq!(req.cost, 2);
/// ```
pub fn parse_gcra<'a, I>(args: I) -> Result<Request, CompatError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut args = args.into_iter();
    let max_burst = parse_max_burst(args.next())?;
    let count = args
        .next()
        .and_then(parse_count)
        .filter(|&c| c >= 1)
        .ok_or(CompatError::TokensPerPeriod)?;
    let period_us = args
        .next()
        .and_then(parse_seconds)
        .ok_or(CompatError::Seconds)?;
    let cost = match args.next() {
        None => 1,
        Some(opt) if opt.eq_ignore_ascii_case(b"TOKENS") => {
            let value = args.next().ok_or(CompatError::TokensMissing)?;
            parse_count(value)
                .filter(|&n| n >= 1)
                .ok_or(CompatError::Tokens)?
        }
        Some(other) => return Err(CompatError::UnknownOption(other.to_vec())),
    };
    Ok(Request {
        rule: gcra_rule(max_burst, count, period_us)?,
        cost,
    })
}

/// A number of seconds as GCRA takes it — decimal digits with an optional fraction and an
/// optional exponent (`60`, `0.5`, `.5`, `1.`, `2.5e-3`, `+1`) — in µs, rounded to the nearest
/// µs (halves up), exactly (no floating point). `None` unless in `1..=MAX_WINDOW_US`.
///
/// ```
/// use redis_ratelimit::compat::parse_seconds;
/// assert_eq!(parse_seconds(b"60"), Some(60_000_000));
/// assert_eq!(parse_seconds(b"0.1"), Some(100_000));
/// assert_eq!(parse_seconds(b"1e-3"), Some(1_000));
/// assert_eq!(parse_seconds(b"0.0000005"), Some(1)); // half a µs rounds up
/// assert_eq!(parse_seconds(b"0.0000004"), None); // rounds to 0
/// assert_eq!(parse_seconds(b"inf"), None);
/// ```
pub fn parse_seconds(s: &[u8]) -> Option<u64> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (mantissa, exponent) = match s.iter().position(|&c| c == b'e' || c == b'E') {
        Some(at) => (s.get(..at)?, parse_exponent(s.get(at.checked_add(1)?..)?)?),
        None => (s, 0),
    };
    let (int_part, frac_part) = match mantissa.iter().position(|&c| c == b'.') {
        Some(dot) => (mantissa.get(..dot)?, mantissa.get(dot.checked_add(1)?..)?),
        None => (mantissa, &b""[..]),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.iter().chain(frac_part).all(u8::is_ascii_digit)
    {
        return None;
    }
    // value in µs = digits × 10^scale, digits = int_part ‖ frac_part.
    let digits: Vec<u8> = int_part
        .iter()
        .chain(frac_part)
        .copied()
        .skip_while(|&c| c == b'0')
        .collect();
    let frac_len = i64::try_from(frac_part.len()).ok()?;
    let scale = exponent.checked_add(6)?.checked_sub(frac_len)?;
    let us = if scale >= 0 {
        let mut v = parse_digits(&digits)?;
        for _ in 0..scale {
            if v == 0 {
                break;
            }
            v = v.checked_mul(10)?;
        }
        v
    } else {
        let dropped = usize::try_from(scale.unsigned_abs()).ok()?;
        match digits.len().checked_sub(dropped) {
            // Fewer digits than dropped: below 0.1 µs, rounds to 0.
            None => 0,
            Some(kept) => {
                let v = parse_digits(digits.get(..kept)?)?;
                let round_up = digits.get(kept).is_some_and(|&d| d >= b'5');
                v.checked_add(u64::from(round_up))?
            }
        }
    };
    (1..=MAX_WINDOW_US).contains(&us).then_some(us)
}

/// An exponent `[+-]digits`; a very large magnitude saturates (the value is then out of range
/// either way).
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |acc, &d| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(d.wrapping_sub(b'0')))
            .min(1_000_000)
    });
    Some(if negative {
        magnitude.saturating_neg()
    } else {
        magnitude
    })
}

/// Decimal digits (no leading zeros needed) as a u64; `None` on overflow.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    })
}

/// µs → whole seconds, rounded up.
fn ceil_seconds(us: u64) -> i64 {
    i64::try_from(us.div_ceil(1_000_000)).unwrap_or(i64::MAX)
}

/// The reply of `CL.THROTTLE`, `RL.THROTTLE` and `GCRA`:
/// `[limited, max_burst + 1, remaining, retry_after_s, reset_after_s]` (see the module doc).
///
/// ```
/// use redis_ratelimit::algo::{Decision, RetryAfter};
/// use redis_ratelimit::compat::throttle_reply;
/// let denied = Decision {
///     allowed: false,
///     capacity: 16,
///     remaining: 0,
///     retry_after: RetryAfter::After(1_000_001),
///     reset_after_us: 31_000_001,
/// };
/// assert_eq!(throttle_reply(&denied), [1, 16, 0, 2, 32]);
/// ```
pub fn throttle_reply(d: &Decision) -> [i64; 5] {
    let retry = match d.retry_after {
        RetryAfter::After(us) if !d.allowed => ceil_seconds(us).max(1),
        RetryAfter::Now | RetryAfter::After(_) | RetryAfter::Never => -1,
    };
    [
        i64::from(!d.allowed),
        i64::try_from(d.capacity).unwrap_or(i64::MAX),
        i64::try_from(d.remaining).unwrap_or(i64::MAX),
        retry,
        ceil_seconds(d.reset_after_us),
    ]
}

#[cfg(test)]
mod tests;
