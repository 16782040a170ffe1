//! `RL.ALLOW` and `RL.PEEK`: one request against one limiter key.

use std::ffi::c_int;

use super::{arg_bytes, reply_integers, run, Arg, CmdError, Ctx, WRONGTYPE};
use crate::algo::{AlgorithmMismatch, Decision, Limiter, RetryAfter};
use crate::clock;
use crate::datatype::key::LimiterKey;
use crate::replication::replicate_state;
use crate::rule::parse_request;

/// `RL.ALLOW key limit window [COST n] [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_allow(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, |ctx, args| limit_command(ctx, args, true))
}

/// `RL.PEEK key limit window [COST n] [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_peek(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, |ctx, args| limit_command(ctx, args, false))
}

/// The shared pipeline: arity → parse → open the key once → decide → store, expire, replicate →
/// reply. `commit` is false for RL.PEEK.
fn limit_command(ctx: Ctx, args: &[Arg], commit: bool) -> Result<(), CmdError> {
    let [_, key_name, rule_args @ ..] = args else {
        return Err(CmdError::WrongArity);
    };
    if rule_args.len() < 2 {
        return Err(CmdError::WrongArity);
    }
    let request = parse_request(rule_args.iter().map(|&a| arg_bytes(a)))
        .map_err(|e| CmdError::Owned(e.message()))?;
    let now_us = clock::now_us();
    // COST 0 only looks: open read-only so that nothing is created or signalled.
    let write = commit && request.cost > 0;
    let mut key = LimiterKey::open(ctx, *key_name, write);
    let stored = key.get().map_err(|_| WRONGTYPE)?;
    let (decision, next) = Limiter::decide(stored.as_ref(), &request.rule, request.cost, now_us)
        .map_err(mismatch_error)?;
    if let (true, Some(next)) = (write, next) {
        key.store(&next, ceil_ms(next.expires_at_us()))
            .map_err(|_| WRONGTYPE)?;
        replicate_state(ctx, *key_name, &next);
    }
    drop(key);
    reply_integers(ctx, &reply_fields(&decision));
    Ok(())
}

fn mismatch_error(m: AlgorithmMismatch) -> CmdError {
    CmdError::Owned(format!(
        "ERR key holds a {} limiter, not {}: DEL it to change algorithms",
        m.stored.name(),
        m.requested.name()
    ))
}

/// µs → whole ms, rounded up, as a reply integer.
pub(crate) fn ceil_ms(us: u64) -> i64 {
    i64::try_from(us.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// The five reply fields: allowed, capacity, remaining, retry_after_ms, reset_after_ms.
fn reply_fields(d: &Decision) -> [i64; 5] {
    let retry = match d.retry_after {
        RetryAfter::Now => 0,
        RetryAfter::After(us) => ceil_ms(us).max(1),
        RetryAfter::Never => -1,
    };
    [
        i64::from(d.allowed),
        i64::try_from(d.capacity).unwrap_or(i64::MAX),
        i64::try_from(d.remaining).unwrap_or(i64::MAX),
        retry,
        ceil_ms(d.reset_after_us),
    ]
}
