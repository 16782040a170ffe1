//! `RL.ALLOW` and `RL.PEEK`: one request against one limiter key.

use std::ffi::c_int;

use super::{run, CmdError, WRONGTYPE};
use crate::algo::{AlgorithmMismatch, Decision, Limiter, Outcome, RetryAfter, Rule};
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, ceil_ms, reply_integers, wrote, Arg, Ctx};
use crate::replication::replicate_write;
use crate::rule::parse_request;
use crate::{clock, stats};

/// `RL.ALLOW key limit window [COST n] [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_allow(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, |ctx, args| limit_command(ctx, args, true))
}

/// `RL.PEEK key limit window [COST n] [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_peek(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, |ctx, args| limit_command(ctx, args, false))
}

/// The shared pipeline: arity → parse → decide (and store) → reply. `commit` is false for
/// RL.PEEK.
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
    let decision = if commit {
        charge(ctx, *key_name, &request.rule, request.cost, now_us)?
    } else {
        peek(ctx, *key_name, &request.rule, request.cost, now_us)?
    };
    reply_integers(ctx, &reply_fields(&decision));
    Ok(())
}

/// What `RL.PEEK` answers: the decision for a request of `cost` under `rule` at `now_us`,
/// without opening the key for writing.
pub(crate) fn peek(
    ctx: Ctx,
    key_name: Arg,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> Result<Decision, CmdError> {
    let key = LimiterKey::open(ctx, key_name, false);
    let stored = key.get().map_err(|_| WRONGTYPE)?;
    Limiter::peek(stored, rule, cost, now_us).map_err(mismatch_error)
}

/// What `RL.ALLOW` does: decides a request of `cost` under `rule` at `now_us` and, when it
/// writes, stores the state, sets the expiry, replicates the effect and signals the write.
/// `cost` 0 only looks (the key is opened read-only: nothing is created or signalled).
pub(crate) fn charge(
    ctx: Ctx,
    key_name: Arg,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> Result<Decision, CmdError> {
    if cost == 0 {
        return peek(ctx, key_name, rule, cost, now_us);
    }
    let mut key = LimiterKey::open(ctx, key_name, true);
    let stored = key.get_mut().map_err(|_| WRONGTYPE)?;
    if stored.as_ref().is_some_and(|l| l.is_ahead(now_us)) {
        stats::CLAMPED.add(1);
    }
    let (decision, outcome) =
        Limiter::decide(stored, rule, cost, now_us).map_err(mismatch_error)?;
    if decision.allowed {
        stats::ALLOWED.add(1);
    } else {
        stats::DENIED.add(1);
    }
    let changed = match outcome {
        Outcome::Unchanged | Outcome::Emptied => false,
        Outcome::Updated => true,
        Outcome::Created(limiter) => {
            key.create(limiter).map_err(|_| WRONGTYPE)?;
            true
        }
    };
    if changed {
        let stored = key.get().map_err(|_| WRONGTYPE)?;
        if let Some(limiter) = stored {
            let expire_at_ms = ceil_ms(limiter.expires_at_us());
            let charged = if decision.allowed { cost } else { 0 };
            replicate_write(ctx, key_name, limiter, now_us, charged);
            key.set_expire_at_ms(expire_at_ms);
            wrote(ctx, key_name, c"rl.allow");
        }
    }
    Ok(decision)
}

fn mismatch_error(m: AlgorithmMismatch) -> CmdError {
    CmdError::Owned(format!(
        "ERR key holds a {} limiter, not {}: DEL it to change algorithms",
        m.stored.name(),
        m.requested.name()
    ))
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
