//! Command arguments → typed values: a [`Request`] / [`Group`] (`limit window [COST n]
//! [ALGO a] [BURST n] [BLOCK d]`), the groups of `RL.ALLOWALL`, the settle of `RL.CHARGE` /
//! `RL.REFUND` (`limit window n [ALGO a] [BURST n]`).
//!
//! Pure code (no Redis import): arguments arrive as byte slices; errors carry the exact reply
//! text, which is part of the public API (README "Errors").

use crate::algo::leases::{Acquire, LeaseError, LeaseId, MAX_ID_LEN, MAX_LEASES};
use crate::algo::multi::Group;
use crate::algo::{Algorithm, Rule, RuleError, MAX_BLOCK_US, MAX_COUNT, MAX_WINDOW_US};

/// A parsed `RL.ALLOW` / `RL.PEEK` request (everything after the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The validated rule.
    pub rule: Rule,
    /// How much this request consumes (default 1; 0 = only look).
    pub cost: u64,
}

/// The optional arguments, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// `COST n`
    Cost,
    /// `ALGO name`
    Algo,
    /// `BURST n`
    Burst,
    /// `BLOCK duration`
    Block,
}

impl Opt {
    fn name(self) -> &'static str {
        match self {
            Opt::Cost => "COST",
            Opt::Algo => "ALGO",
            Opt::Burst => "BURST",
            Opt::Block => "BLOCK",
        }
    }

    fn from_name(name: &[u8]) -> Option<Opt> {
        [Opt::Cost, Opt::Algo, Opt::Burst, Opt::Block]
            .into_iter()
            .find(|o| o.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// The options of `RL.ALLOW`, `RL.PEEK` and each `RL.ALLOWALL` group.
const LIMIT_OPTIONS: &[Opt] = &[Opt::Cost, Opt::Algo, Opt::Burst, Opt::Block];
/// The options of `RL.CHARGE` and `RL.REFUND`.
const SETTLE_OPTIONS: &[Opt] = &[Opt::Algo, Opt::Burst];

/// The options a command takes, as an error lists them: `A, B or C`.
fn option_names(allowed: &[Opt]) -> String {
    let names: Vec<&str> = allowed.iter().map(|o| o.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    }
}

/// Why arguments were refused. [`ArgError::message`] gives the reply text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// `limit` is not an integer in range.
    Limit,
    /// `window` is not a valid duration.
    Window,
    /// `COST` is not an integer in range.
    Cost,
    /// `BURST` is not an integer in range.
    Burst,
    /// `BURST` given with a counter algorithm.
    BurstNotGcra,
    /// `ALGO` names no algorithm.
    UnknownAlgo(Vec<u8>),
    /// `ALGO` names a kind that is not a rate limit (leases).
    NotARateLimit(Algorithm),
    /// An option at the end with no value.
    MissingValue(Opt),
    /// The same option twice.
    Repeated(Opt),
    /// Something that is not an option (and the options the command takes).
    UnknownOption(Vec<u8>, &'static [Opt]),
    /// gcra: `BURST × window / limit` too long.
    Tolerance,
    /// `BLOCK` is not a valid duration.
    Block,
    /// `RL.CHARGE` / `RL.REFUND`: the amount is not an integer in range.
    Amount,
    /// `RL.ALLOWALL`: `numkeys` is not an integer in range.
    NumKeys,
    /// A window or BLOCK longer than `ratelimit.max-window-ms` (which one).
    TooLong(&'static str),
    /// `RL.ALLOWALL`: not one rule group per key.
    GroupCount {
        /// Keys named.
        keys: usize,
        /// Groups found.
        groups: usize,
    },
    /// `RL.ALLOWALL`: an error in one group (1-based).
    InGroup(usize, Box<ArgError>),
}

impl ArgError {
    /// The error reply, with its `ERR` prefix.
    ///
    /// ```
    /// use redis_ratelimit::args::{parse_request, ArgError};
    /// let err = parse_request([&b"0"[..], b"1s"]).unwrap_err();
    /// assert_eq!(err, ArgError::Limit);
    /// assert!(err.message().starts_with("ERR limit must be"));
    /// ```
    pub fn message(&self) -> String {
        match self {
            ArgError::Limit => format!("ERR limit must be an integer from 1 to {MAX_COUNT}"),
            ArgError::Window => "ERR window must be a duration from 1 microsecond to 365d: \
                 whole seconds (60) or a number with a unit ms, s, m, h or d (500ms, 1.5s, 1m)"
                .to_string(),
            ArgError::Cost => format!("ERR COST must be an integer from 0 to {MAX_COUNT}"),
            ArgError::Burst => format!("ERR BURST must be an integer from 1 to {MAX_COUNT}"),
            ArgError::BurstNotGcra => "ERR BURST applies only to ALGO gcra".to_string(),
            ArgError::UnknownAlgo(name) => {
                format!(
                    "ERR unknown ALGO '{}': use {}",
                    echo(name),
                    algorithm_names()
                )
            }
            ArgError::NotARateLimit(a) => format!(
                "ERR ALGO {} is not a rate limit: leases are taken with RL.ACQUIRE and given \
                 back with RL.RELEASE",
                a.name()
            ),
            ArgError::MissingValue(opt) => format!("ERR {} needs a value", opt.name()),
            ArgError::Repeated(opt) => format!("ERR {} given more than once", opt.name()),
            ArgError::UnknownOption(name, allowed) => format!(
                "ERR unknown option '{}': expected {}",
                echo(name),
                option_names(allowed)
            ),
            ArgError::Tolerance => {
                "ERR gcra BURST * window / limit must not exceed 100 years".to_string()
            }
            ArgError::Block => "ERR BLOCK must be a duration from 1 microsecond to 365d: \
                 whole seconds (60) or a number with a unit ms, s, m, h or d (500ms, 1.5s, 1m)"
                .to_string(),
            ArgError::Amount => {
                format!("ERR the amount must be an integer from 0 to {MAX_COUNT}")
            }
            ArgError::NumKeys => format!(
                "ERR numkeys must be an integer from 1 to {} (ratelimit.max-keys)",
                crate::config::max_keys()
            ),
            ArgError::TooLong(what) => crate::config::too_long(what),
            ArgError::GroupCount { keys, groups } => format!(
                "ERR {keys} keys need {keys} rule groups (limit window [options] each), got {groups}"
            ),
            ArgError::InGroup(i, e) => {
                let inner = e.message();
                format!(
                    "ERR group {i}: {}",
                    inner.strip_prefix("ERR ").unwrap_or(&inner)
                )
            }
        }
    }
}

impl From<RuleError> for ArgError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::Limit => ArgError::Limit,
            RuleError::Window => ArgError::Window,
            RuleError::Burst => ArgError::Burst,
            RuleError::BurstNotGcra => ArgError::BurstNotGcra,
            RuleError::Tolerance => ArgError::Tolerance,
        }
    }
}

/// The algorithm names, as an error lists them: `a, b, c or d` (from the table of kinds).
fn algorithm_names() -> String {
    let names: Vec<&str> = Algorithm::rate_limits().map(|a| a.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    }
}

/// Longest part of a user's argument quoted back in an error reply.
pub const ECHO_MAX: usize = 32;

/// An argument as quoted in an error: printable ASCII kept, other bytes as `\xNN`, cut after
/// [`ECHO_MAX`] bytes with `...` (error replies must stay short and on one line).
///
/// ```
/// use redis_ratelimit::args::echo;
/// assert_eq!(echo(b"nope"), "nope");
/// assert_eq!(echo(b"a\r\n\xff'"), "a\\x0d\\x0a\\xff\\x27");
/// assert_eq!(echo(&[b'x'; 100]).len(), 32 + 3);
/// ```
pub fn echo(arg: &[u8]) -> String {
    let mut out = String::new();
    for &b in arg.iter().take(ECHO_MAX) {
        if b.is_ascii_graphic() && b != b'\'' && b != b'\\' || b == b' ' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if arg.len() > ECHO_MAX {
        out.push_str("...");
    }
    out
}

/// Parses `limit window [COST n] [ALGO a] [BURST n]` (options in any order, case-insensitive,
/// each at most once).
///
/// ```
/// use redis_ratelimit::args::parse_request;
/// let req = parse_request([&b"10"[..], b"1m", b"cost", b"2"]).unwrap();
/// assert_eq!((req.rule.limit(), req.rule.window_us(), req.cost), (10, 60_000_000, 2));
/// ```
pub fn parse_request<'a, I>(args: I) -> Result<Request, ArgError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let g = parse_group(args)?;
    Ok(Request {
        rule: g.rule,
        cost: g.cost,
    })
}

/// Parses `limit window [COST n] [ALGO a] [BURST n] [BLOCK d]` (`RL.ALLOW`, `RL.PEEK`): options
/// in any order, case-insensitive, each at most once; `BLOCK` takes the window syntax.
///
/// ```
/// use redis_ratelimit::args::parse_group;
/// let g = parse_group([&b"5"[..], b"1m", b"block", b"15m"]).unwrap();
/// assert_eq!((g.rule.limit(), g.cost, g.block_us), (5, 1, 900_000_000));
/// ```
pub fn parse_group<'a, I>(args: I) -> Result<Group, ArgError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut args = args.into_iter().peekable();
    Ok(group_at(&mut args, LIMIT_OPTIONS, false)?.0)
}

/// Parses the rule groups of `RL.ALLOWALL` (everything after the keys): one per key, each
/// `limit window [options]`; a group ends at the first token that is not an option keyword.
///
/// ```
/// use redis_ratelimit::args::parse_groups;
/// let args: Vec<&[u8]> = vec![b"60", b"1m", b"100000", b"1m", b"COST", b"1500"];
/// let g = parse_groups(&args, 2).unwrap();
/// assert_eq!((g[0].cost, g[1].rule.limit(), g[1].cost), (1, 100_000, 1_500));
/// ```
pub fn parse_groups(args: &[&[u8]], keys: usize) -> Result<Vec<Group>, ArgError> {
    let mut groups = Vec::with_capacity(keys);
    let mut args = args.iter().copied().peekable();
    while args.peek().is_some() {
        let index = groups.len().saturating_add(1);
        let (g, _) = group_at(&mut args, LIMIT_OPTIONS, true)
            .map_err(|e| ArgError::InGroup(index, Box::new(e)))?;
        groups.push(g);
        if groups.len() > keys {
            break;
        }
    }
    if groups.len() != keys {
        return Err(ArgError::GroupCount {
            keys,
            groups: groups.len(),
        });
    }
    Ok(groups)
}

/// Parses `limit window n [ALGO a] [BURST n]` (`RL.CHARGE`, `RL.REFUND`): the rule and the
/// amount.
///
/// ```
/// use redis_ratelimit::args::parse_settle;
/// let (rule, n) = parse_settle([&b"100000"[..], b"1m", b"48500"]).unwrap();
/// assert_eq!((rule.limit(), n), (100_000, 48_500));
/// ```
pub fn parse_settle<'a, I>(args: I) -> Result<(Rule, u64), ArgError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut args = args.into_iter().peekable();
    let (g, amount) = group_at(&mut args, SETTLE_OPTIONS, false)?;
    Ok((g.rule, amount.unwrap_or(0)))
}

/// Reads one `limit window [amount] [options]` from `args`. `in_list`: stop at the first
/// token that is not an option keyword (the next group's limit) instead of refusing it. The
/// amount (`RL.CHARGE` / `RL.REFUND`) is read when `allowed` has no `COST`.
// Errors are made lazily: `ArgError` owns heap data in some variants, so an eager `ok_or`
// builds and drops one (an out-of-line drop call) on every argument that parses.
#[allow(clippy::unnecessary_lazy_evaluations)]
fn group_at<'a, I: Iterator<Item = &'a [u8]>>(
    args: &mut std::iter::Peekable<I>,
    allowed: &'static [Opt],
    in_list: bool,
) -> Result<(Group, Option<u64>), ArgError> {
    let limit = args
        .next()
        .and_then(parse_count)
        .filter(|&l| l >= 1)
        .ok_or_else(|| ArgError::Limit)?;
    let window_us = args
        .next()
        .and_then(parse_window)
        .ok_or_else(|| ArgError::Window)?;
    if !crate::config::duration_allowed(window_us) {
        return Err(ArgError::TooLong("window"));
    }
    let amount = if allowed.contains(&Opt::Cost) {
        None
    } else {
        Some(
            args.next()
                .and_then(parse_count)
                .ok_or_else(|| ArgError::Amount)?,
        )
    };

    let mut cost = None;
    let mut algo = None;
    let mut burst = None;
    let mut block = None;
    while let Some(&name) = args.peek() {
        let opt = match Opt::from_name(name).filter(|o| allowed.contains(o)) {
            Some(opt) => opt,
            // The next group's limit.
            None if in_list && parse_count(name).is_some() => break,
            None => return Err(ArgError::UnknownOption(name.to_vec(), allowed)),
        };
        args.next();
        let value = args.next().ok_or_else(|| ArgError::MissingValue(opt))?;
        let repeated = match opt {
            Opt::Cost => cost
                .replace(parse_count(value).ok_or_else(|| ArgError::Cost)?)
                .is_some(),
            Opt::Algo => algo
                .replace(
                    Algorithm::from_name(value)
                        .ok_or_else(|| ArgError::UnknownAlgo(value.to_vec()))
                        .and_then(|a| {
                            if a.is_rate_limit() {
                                Ok(a)
                            } else {
                                Err(ArgError::NotARateLimit(a))
                            }
                        })?,
                )
                .is_some(),
            Opt::Burst => burst
                .replace(
                    parse_count(value)
                        .filter(|&b| b >= 1)
                        .ok_or_else(|| ArgError::Burst)?,
                )
                .is_some(),
            Opt::Block => block
                .replace(
                    parse_window(value)
                        .filter(|&d| d <= MAX_BLOCK_US)
                        .ok_or_else(|| ArgError::Block)
                        .and_then(|d| {
                            if crate::config::duration_allowed(d) {
                                Ok(d)
                            } else {
                                Err(ArgError::TooLong("BLOCK"))
                            }
                        })?,
                )
                .is_some(),
        };
        if repeated {
            return Err(ArgError::Repeated(opt));
        }
    }
    let algorithm = algo.unwrap_or(Algorithm::SlidingWindow);
    let rule = Rule::new(algorithm, limit, window_us, burst)?;
    let group = Group {
        rule,
        cost: cost.unwrap_or(1),
        block_us: block.unwrap_or(0),
    };
    Ok((group, amount))
}

/// Why `RL.ACQUIRE` / `RL.RELEASE` arguments were refused. [`LeaseArgError::message`] gives
/// the reply text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseArgError {
    /// `limit` is not an integer from 1 to `ratelimit.max-leases` (at most [`MAX_LEASES`]).
    Limit,
    /// A lease longer than `ratelimit.max-window-ms`.
    TooLong,
    /// `lease` is not a valid duration.
    Lease,
    /// An id that is empty or longer than [`MAX_ID_LEN`] bytes.
    Id,
    /// `ID` at the end with no value.
    MissingId,
    /// `ID` twice.
    RepeatedId,
    /// Something that is not an option.
    UnknownOption(Vec<u8>),
}

impl LeaseArgError {
    /// The error reply, with its `ERR` prefix.
    ///
    /// ```
    /// use redis_ratelimit::args::{parse_acquire, LeaseArgError};
    /// let err = parse_acquire([&b"10001"[..], b"30s"]).unwrap_err();
    /// assert_eq!(err, LeaseArgError::Limit);
    /// assert_eq!(
    ///     err.message(),
    ///     "ERR limit must be an integer from 1 to 10000 (the most leases one key holds: \
    ///      ratelimit.max-leases)"
    /// );
    /// ```
    pub fn message(&self) -> String {
        match self {
            LeaseArgError::Limit => format!(
                "ERR limit must be an integer from 1 to {} (the most leases one key holds: \
                 ratelimit.max-leases)",
                crate::config::max_leases()
            ),
            LeaseArgError::TooLong => crate::config::too_long("lease"),
            LeaseArgError::Lease => "ERR lease must be a duration from 1 microsecond to 365d: \
                 whole seconds (30) or a number with a unit ms, s, m, h or d (500ms, 1.5s, 1m)"
                .to_string(),
            LeaseArgError::Id => format!("ERR id must be 1 to {MAX_ID_LEN} bytes"),
            LeaseArgError::MissingId => "ERR ID needs a value".to_string(),
            LeaseArgError::RepeatedId => "ERR ID given more than once".to_string(),
            LeaseArgError::UnknownOption(name) => {
                format!("ERR unknown option '{}': expected ID", echo(name))
            }
        }
    }
}

/// Parses `RL.ACQUIRE`'s `limit lease [ID id]` (`ID` case-insensitive, at most once).
///
/// ```
/// use redis_ratelimit::algo::leases::LeaseId;
/// use redis_ratelimit::args::parse_acquire;
/// let req = parse_acquire([&b"10"[..], b"30s", b"id", b"worker-1"]).unwrap();
/// assert_eq!((req.rule.limit(), req.rule.window_us()), (10, 30_000_000));
/// assert_eq!(req.id, LeaseId::parse(b"worker-1"));
/// ```
pub fn parse_acquire<'a, I>(args: I) -> Result<Acquire, LeaseArgError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut args = args.into_iter();
    let limit = args
        .next()
        .and_then(parse_count)
        .filter(|l| (1..=crate::config::max_leases().min(MAX_LEASES)).contains(l))
        .ok_or(LeaseArgError::Limit)?;
    let lease_us = args
        .next()
        .and_then(parse_window)
        .ok_or(LeaseArgError::Lease)?;
    if !crate::config::duration_allowed(lease_us) {
        return Err(LeaseArgError::TooLong);
    }
    let mut id = None;
    while let Some(name) = args.next() {
        if !name.eq_ignore_ascii_case(b"ID") {
            return Err(LeaseArgError::UnknownOption(name.to_vec()));
        }
        let value = args.next().ok_or(LeaseArgError::MissingId)?;
        if id.replace(parse_lease_id(value)?).is_some() {
            return Err(LeaseArgError::RepeatedId);
        }
    }
    Acquire::new(limit, lease_us, id).map_err(|e| match e {
        LeaseError::Limit => LeaseArgError::Limit,
        _ => LeaseArgError::Lease,
    })
}

/// A lease id: 1 to [`MAX_ID_LEN`] bytes.
pub fn parse_lease_id(arg: &[u8]) -> Result<LeaseId, LeaseArgError> {
    LeaseId::parse(arg).ok_or(LeaseArgError::Id)
}

/// A non-negative decimal integer up to [`MAX_COUNT`]: ASCII digits only (no sign, no spaces);
/// leading zeros are allowed, at any length.
///
/// ```
/// use redis_ratelimit::args::parse_count;
/// assert_eq!(parse_count(b"0000000000000000000001"), Some(1));
/// assert_eq!(parse_count(b"+1"), None);
/// ```
pub fn parse_count(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let significant = s.get(s.iter().position(|&c| c != b'0').unwrap_or(s.len())..)?;
    if significant.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in significant {
        n = n
            .checked_mul(10)?
            .checked_add(u64::from(c.wrapping_sub(b'0')))?;
    }
    (n <= MAX_COUNT).then_some(n)
}

/// A window in µs: whole seconds (`60`), or a number with a unit `ms|s|m|h|d` that may have a
/// fraction (`1.5s`), rounded to the nearest µs (halves up). Digits may come at any length
/// (leading zeros, long fractions); the result must be in `1..=MAX_WINDOW_US`.
///
/// ```
/// use redis_ratelimit::args::parse_window;
/// assert_eq!(parse_window(b"500ms"), Some(500_000));
/// assert_eq!(parse_window(b"1.5s"), Some(1_500_000));
/// assert_eq!(parse_window(b"1.0000000000000000000s"), Some(1_000_000));
/// assert_eq!(parse_window(b"1.5"), None); // a bare decimal is ambiguous
/// ```
pub fn parse_window(s: &[u8]) -> Option<u64> {
    if let Some(us) = whole_window(s) {
        return Some(us);
    }
    let unit_start = s
        .iter()
        .position(|c| c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(unit_start);
    let unit_us: u64 = match unit {
        b"" | b"s" => 1_000_000,
        b"ms" => 1_000,
        b"m" => 60_000_000,
        b"h" => 3_600_000_000,
        b"d" => 86_400_000_000,
        _ => return None,
    };
    let (int_part, frac_part) = match number.iter().position(|&c| c == b'.') {
        Some(dot) if !unit.is_empty() => {
            let (i, f) = number.split_at(dot);
            (i, f.get(1..)?)
        }
        Some(_) => return None,
        None => (number, &b""[..]),
    };
    if number.last() == Some(&b'.') {
        return None;
    }
    let int_us = u128::from(parse_count(int_part)?).checked_mul(u128::from(unit_us))?;
    let total = int_us.checked_add(u128::from(round_fraction(frac_part, unit_us)?))?;
    u64::try_from(total)
        .ok()
        .filter(|us| (1..=MAX_WINDOW_US).contains(us))
}

/// [`parse_window`] of what nearly every caller sends — up to 12 digits and a unit, no
/// fraction (`1h`, `60`, `500ms`) — in 64-bit arithmetic (the general path spends ~130
/// instructions on `1h`, on every command); `None` for anything else, which the general path
/// then reads (equal results where both answer: a unit test checks).
#[inline]
fn whole_window(s: &[u8]) -> Option<u64> {
    let (digits, unit_us): (&[u8], u64) = match s {
        [d @ .., b'm', b's'] => (d, 1_000),
        [d @ .., b's'] => (d, 1_000_000),
        [d @ .., b'm'] => (d, 60_000_000),
        [d @ .., b'h'] => (d, 3_600_000_000),
        [d @ .., b'd'] => (d, 86_400_000_000),
        d => (d, 1_000_000),
    };
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        // At most 12 digits: below 10^12, nothing wraps.
        n = n
            .wrapping_mul(10)
            .wrapping_add(u64::from(c.wrapping_sub(b'0')));
    }
    n.checked_mul(unit_us)
        .filter(|us| (1..=MAX_WINDOW_US).contains(us))
}

/// `0.<digits> × unit` rounded to the nearest integer (halves up), exactly, for any number of
/// digits: the digit string is multiplied by `unit` from its last digit on; what carries out
/// of the first digit is the integer part, and the product's first fraction digit rounds it.
fn round_fraction(digits: &[u8], unit: u64) -> Option<u64> {
    let mut carry: u128 = 0;
    let mut first_fraction_digit: u128 = 0;
    for &c in digits.iter().rev() {
        if !c.is_ascii_digit() {
            return None;
        }
        let product = u128::from(c.wrapping_sub(b'0'))
            .checked_mul(u128::from(unit))?
            .checked_add(carry)?;
        first_fraction_digit = product.checked_rem(10)?;
        carry = product.checked_div(10)?;
    }
    let rounded = if first_fraction_digit >= 5 {
        carry.checked_add(1)?
    } else {
        carry
    };
    u64::try_from(rounded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-number fast path of `parse_window` answers as the general path does.
    #[test]
    fn whole_windows_parse_as_the_general_path_does() {
        fn general(s: &[u8]) -> Option<u64> {
            let unit_start = s
                .iter()
                .position(|c| c.is_ascii_alphabetic())
                .unwrap_or(s.len());
            let (number, unit) = s.split_at(unit_start);
            let unit_us: u64 = match unit {
                b"" | b"s" => 1_000_000,
                b"ms" => 1_000,
                b"m" => 60_000_000,
                b"h" => 3_600_000_000,
                b"d" => 86_400_000_000,
                _ => return None,
            };
            if number.contains(&b'.') {
                return None;
            }
            let us = u128::from(parse_count(number)?).checked_mul(u128::from(unit_us))?;
            u64::try_from(us)
                .ok()
                .filter(|us| (1..=MAX_WINDOW_US).contains(us))
        }
        let units = ["", "s", "ms", "m", "h", "d", "H", "mss", "sm", "x", "."];
        let numbers = [
            "",
            "0",
            "1",
            "00",
            "007",
            "10",
            "59",
            "60",
            "999",
            "1000",
            "86400",
            "525600",
            "8760",
            "365",
            "366",
            "31536000",
            "31536001",
            "999999999999",
            "1000000000000",
            "0000000000001",
            "1.5",
            "1.",
            ".5",
            "-1",
            "+1",
            " 1",
            "1 ",
            "a1",
        ];
        for n in numbers {
            for u in units {
                let s = format!("{n}{u}");
                let fast = whole_window(s.as_bytes());
                if fast.is_some() {
                    assert_eq!(fast, general(s.as_bytes()), "{s:?}");
                }
                if !s.contains('.') {
                    assert_eq!(parse_window(s.as_bytes()), general(s.as_bytes()), "{s:?}");
                }
            }
        }
        assert_eq!(whole_window(b"1h"), Some(3_600_000_000));
        assert_eq!(whole_window(b"500ms"), Some(500_000));
        assert_eq!(whole_window(b"60"), Some(60_000_000));
        assert_eq!(whole_window(b"1.5s"), None);
    }

    fn parse(args: &[&str]) -> Result<Request, ArgError> {
        parse_request(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn windows() {
        let ok = [
            ("60", 60_000_000),
            ("1", 1_000_000),
            ("500ms", 500_000),
            ("1.5s", 1_500_000),
            ("1m", 60_000_000),
            ("1h", 3_600_000_000),
            ("1d", 86_400_000_000),
            ("365d", MAX_WINDOW_US),
            ("0.001ms", 1),
            ("0.0015ms", 2),
            ("0.0014ms", 1),
            ("1.0000001s", 1_000_000),
            ("1.0000005s", 1_000_001),
            ("1.00000049999999999999999999999s", 1_000_000),
            ("1.0000000000000000000s", 1_000_000),
            ("007s", 7_000_000),
            ("01", 1_000_000),
            ("0000000000000000000001", 1_000_000),
            ("0000000000000000000001.5ms", 1_500),
            ("0.5ms", 500),
            ("1.999999999d", 172_799_999_914),
            ("364.99999999999999999999999999d", MAX_WINDOW_US),
            ("365.0000000000000000000000000000000001d", MAX_WINDOW_US),
        ];
        for (s, us) in ok {
            assert_eq!(parse_window(s.as_bytes()), Some(us), "{s}");
        }
        let bad = [
            "",
            "0",
            "-1",
            "1.5",
            "10x",
            "366d",
            "0ms",
            "0.0004ms",
            "1.s",
            ".5s",
            "1..5s",
            "1.5.s",
            "s",
            "1S",
            "1 s",
            " 1",
            "+1",
            "1e3",
            "1ms2",
            "99999999999999999999d",
            "365.0001d",
            "0.0000004s",
            "0.0000004999999999999999999999999999999999999999999s",
            "1.5e",
        ];
        for s in bad {
            assert_eq!(parse_window(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count(b"0"), Some(0));
        assert_eq!(parse_count(b"9223372036854775807"), Some(MAX_COUNT));
        assert_eq!(parse_count(b"00009223372036854775807"), Some(MAX_COUNT));
        assert_eq!(parse_count(b"000"), Some(0));
        for s in [
            "",
            "-1",
            "1.5",
            "+1",
            " 1",
            "9223372036854775808",
            "99999999999999999999",
        ] {
            assert_eq!(parse_count(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn requests() {
        let r = parse(&["10", "1m"]).unwrap();
        assert_eq!(r.rule.algorithm(), Algorithm::SlidingWindow);
        assert_eq!((r.rule.limit(), r.rule.capacity(), r.cost), (10, 10, 1));
        let r = parse(&["10", "1s", "burst", "20", "Algo", "GCRA", "cost", "0"]).unwrap();
        assert_eq!(r.rule.algorithm(), Algorithm::Gcra);
        assert_eq!((r.rule.capacity(), r.cost), (20, 0));
        let r = parse(&["3", "1", "ALGO", "fixed-window"]).unwrap();
        assert_eq!(r.rule.algorithm(), Algorithm::FixedWindow);
    }

    #[test]
    fn request_errors() {
        let cases: &[(&[&str], ArgError)] = &[
            (&[], ArgError::Limit),
            (&["0", "1"], ArgError::Limit),
            (&["x", "1"], ArgError::Limit),
            (&["1"], ArgError::Window),
            (&["1", "1", "COST"], ArgError::MissingValue(Opt::Cost)),
            (&["1", "1", "COST", "-1"], ArgError::Cost),
            (
                &["1", "1", "COST", "1", "COST", "1"],
                ArgError::Repeated(Opt::Cost),
            ),
            (
                &["1", "1", "ALGO", "gcra", "ALGO", "gcra"],
                ArgError::Repeated(Opt::Algo),
            ),
            (
                &["1", "1", "ALGO", "x"],
                ArgError::UnknownAlgo(b"x".to_vec()),
            ),
            (&["1", "1", "BURST", "2"], ArgError::BurstNotGcra),
            (
                &["1", "1", "ALGO", "leases"],
                ArgError::NotARateLimit(Algorithm::Leases),
            ),
            (&["1", "1", "BURST", "0", "ALGO", "gcra"], ArgError::Burst),
            (
                &["1", "1", "NOPE", "1"],
                ArgError::UnknownOption(b"NOPE".to_vec(), LIMIT_OPTIONS),
            ),
            (&["1", "1", "BLOCK", "0"], ArgError::Block),
            (&["1", "1", "BLOCK", "366d"], ArgError::Block),
            (
                &["1", "1", "BLOCK", "1s", "BLOCK", "1s"],
                ArgError::Repeated(Opt::Block),
            ),
            (
                &["1", "365d", "ALGO", "gcra", "BURST", "101"],
                ArgError::Tolerance,
            ),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args).unwrap_err(), *want, "{args:?}");
            assert!(want.message().starts_with("ERR "));
        }
    }

    #[test]
    fn acquire_requests() {
        let parse = |args: &[&str]| parse_acquire(args.iter().map(|a| a.as_bytes()));
        let r = parse(&["10", "500ms"]).unwrap();
        assert_eq!(
            (r.rule.limit(), r.rule.window_us(), r.id),
            (10, 500_000, None)
        );
        assert_eq!(r.rule.algorithm(), Algorithm::Leases);
        let r = parse(&["10000", "365d", "Id", "0042"]).unwrap();
        assert_eq!(r.id, LeaseId::parse(b"0042"));
        let long = "x".repeat(MAX_ID_LEN + 1);
        let cases: &[(&[&str], LeaseArgError)] = &[
            (&[], LeaseArgError::Limit),
            (&["0", "1s"], LeaseArgError::Limit),
            (&["10001", "1s"], LeaseArgError::Limit),
            (&["-1", "1s"], LeaseArgError::Limit),
            (&["1"], LeaseArgError::Lease),
            (&["1", "0"], LeaseArgError::Lease),
            (&["1", "366d"], LeaseArgError::Lease),
            (&["1", "1s", "ID"], LeaseArgError::MissingId),
            (&["1", "1s", "ID", ""], LeaseArgError::Id),
            (&["1", "1s", "ID", &long], LeaseArgError::Id),
            (
                &["1", "1s", "ID", "a", "ID", "b"],
                LeaseArgError::RepeatedId,
            ),
            (
                &["1", "1s", "COST", "1"],
                LeaseArgError::UnknownOption(b"COST".to_vec()),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args).unwrap_err(), *want, "{args:?}");
            assert!(want.message().starts_with("ERR "));
        }
    }

    #[test]
    fn groups_and_settles() {
        let parse_g = |args: &[&str], keys| {
            let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            parse_groups(&v, keys)
        };
        let g = parse_g(
            &["10", "1s", "BLOCK", "1m", "1000", "1d", "ALGO", "gcra"],
            2,
        )
        .unwrap();
        assert_eq!(
            (g[0].block_us, g[1].rule.algorithm()),
            (60_000_000, Algorithm::Gcra)
        );
        assert_eq!(
            parse_g(&["10", "1s"], 2).unwrap_err(),
            ArgError::GroupCount { keys: 2, groups: 1 }
        );
        assert_eq!(
            parse_g(&["10", "1s", "5", "1s", "7", "1s"], 2).unwrap_err(),
            ArgError::GroupCount { keys: 2, groups: 3 }
        );
        let e = parse_g(&["10", "1s", "5", "x"], 2).unwrap_err();
        assert_eq!(e, ArgError::InGroup(2, Box::new(ArgError::Window)));
        assert!(e.message().starts_with("ERR group 2: window must be"));
        let e = parse_g(&["10", "1s", "NOPE", "1"], 1).unwrap_err();
        assert_eq!(
            e.message(),
            "ERR group 1: unknown option 'NOPE': expected COST, ALGO, BURST or BLOCK"
        );
        let settle = |args: &[&str]| parse_settle(args.iter().map(|a| a.as_bytes()));
        assert_eq!(settle(&["10", "1s", "7"]).unwrap().1, 7);
        assert_eq!(settle(&["10", "1s"]).unwrap_err(), ArgError::Amount);
        assert_eq!(
            settle(&["10", "1s", "1", "COST", "2"])
                .unwrap_err()
                .message(),
            "ERR unknown option 'COST': expected ALGO or BURST"
        );
    }
}
