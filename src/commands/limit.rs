//! `RL.ALLOW` and `RL.PEEK`: one request against one limiter key (with `BLOCK`, a penalty).

use crate::stats::cmd;
use std::ffi::c_int;

use super::{run, CmdError, WRONGTYPE};
use crate::algo::{AlgorithmMismatch, Decision, Limiter, Outcome, RetryAfter, Rule};
use crate::args::parse_group;
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, ceil_ms, reply_integers, wrote, Arg, Ctx};
use crate::replication::replicate_write;
use crate::{clock, stats};

/// `RL.ALLOW key limit window [COST n] [ALGO a] [BURST n] [BLOCK d]`
pub(crate) extern "C" fn rl_allow(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_ALLOW, ctx, argv, argc, |ctx, args| {
        limit_command(ctx, args, true)
    })
}

/// `RL.PEEK key limit window [COST n] [ALGO a] [BURST n] [BLOCK d]`
pub(crate) extern "C" fn rl_peek(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_PEEK, ctx, argv, argc, |ctx, args| {
        limit_command(ctx, args, false)
    })
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
    let group = parse_group(rule_args.iter().map(|&a| arg_bytes(a)))
        .map_err(|e| CmdError::Owned(e.message()))?;
    let (rule, cost, block_us) = (&group.rule, group.cost, group.block_us);
    let now_us = clock::now_us();
    let decision = if commit {
        charge_with(ctx, *key_name, rule, cost, now_us, block_us)?
    } else {
        peek_with(ctx, *key_name, rule, cost, now_us, block_us)?
    };
    reply_integers(ctx, &reply_fields(&decision));
    Ok(())
}

/// What `RL.PEEK` answers: the decision for a request of `cost` under `rule` at `now_us`,
/// without opening the key for writing.
pub(crate) fn peek_with(
    ctx: Ctx,
    key_name: Arg,
    rule: &Rule,
    cost: u64,
    now_us: u64,
    block_us: u64,
) -> Result<Decision, CmdError> {
    let counters = stats::algo(rule.algorithm());
    counters.calls.add(1);
    let key = LimiterKey::open(ctx, key_name, false);
    // (Written where it is read, not moved out through the closure's result.)
    let mut peeked = None;
    let read = key.update(|stored| {
        peeked = Some(Limiter::peek_with(
            stored.as_deref(),
            rule,
            cost,
            now_us,
            block_us,
        ));
        ((), false)
    });
    match (read, &peeked) {
        (Ok(()), Some(Ok(d))) => {
            counters.verdict(d.allowed);
            stats::answered(d.allowed);
            Ok(*d)
        }
        (Ok(()), Some(Err(m))) => {
            counters.errors.add(1);
            Err(mismatch_error(*m))
        }
        _ => {
            counters.errors.add(1);
            Err(WRONGTYPE)
        }
    }
}

/// What `RL.ALLOW` does: decides a request of `cost` under `rule` at `now_us` and, when it
/// writes, stores the state, sets the expiry, replicates the effect and signals the write.
/// `cost` 0 only looks (the key is opened read-only: nothing is created or signalled), except
/// for a kind whose reads move its state on (`limits-sliding-window`).
///
/// The hot path: the key is opened once and its value looked up once; the expiry of a write is
/// `now + reset_after` (equal to the state's by the algorithms' contract) and is set only when
/// its ms value changes (a write that keeps it just checks the key still has it); a counter's
/// replicated payload is built on the stack.
pub(crate) fn charge(
    ctx: Ctx,
    key_name: Arg,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> Result<Decision, CmdError> {
    charge_with(ctx, key_name, rule, cost, now_us, 0)
}

/// [`charge`] with `BLOCK block_us` (0: none): a denial starts a block (a write).
pub(crate) fn charge_with(
    ctx: Ctx,
    key_name: Arg,
    rule: &Rule,
    cost: u64,
    now_us: u64,
    block_us: u64,
) -> Result<Decision, CmdError> {
    if cost == 0 && !rule.algorithm().cost_zero_writes() {
        return peek_with(ctx, key_name, rule, cost, now_us, 0);
    }
    let counters = stats::algo(rule.algorithm());
    counters.calls.add(1);
    let bounds = crate::config::bounds();
    let mut key = LimiterKey::open(ctx, key_name, true);
    // Decided on the stored limiter, which the key keeps when the decision wrote it (after its
    // effect is replicated from it). (The verdict is written where it is read, not returned
    // through the closure: it holds a created limiter.)
    let mut verdict = None;
    let (old_expire_at_ms, written_at_ms) = key
        .update(|mut stored| {
            // The expiry the stored state implies (the key's TTL, unless PERSIST took it): a
            // write that keeps it (a counter inside its window) only checks that the key still
            // has it.
            let old_expire_at_ms = stored.as_deref().map(|l| ceil_ms(l.expires_at_us()));
            let decided = verdict.insert(Limiter::decide_with(
                stored.as_deref_mut(),
                rule,
                cost,
                now_us,
                &bounds,
                block_us,
            ));
            let mut keep = false;
            let mut written_at_ms = None;
            if let (Ok(v), Some(limiter)) = (&*decided, stored) {
                if matches!(v.outcome, Outcome::Updated) {
                    let charged = if v.decision.allowed { cost } else { 0 };
                    replicate_write(ctx, key_name, limiter, now_us, charged, &bounds);
                    keep = true;
                    written_at_ms = exact_expire_at_ms(&v.decision, limiter);
                }
            }
            ((old_expire_at_ms, written_at_ms), keep)
        })
        .map_err(|_| {
            counters.errors.add(1);
            WRONGTYPE
        })?;
    // (Read in place: only a created limiter moves on, into the key.)
    let verdict = match verdict.as_mut() {
        Some(Ok(v)) => v,
        Some(Err(m)) => {
            counters.errors.add(1);
            return Err(mismatch_error(*m));
        }
        None => return Err(WRONGTYPE),
    };
    let d = verdict.decision;
    if verdict.clamped {
        stats::CLAMPED.add(1);
    }
    if d.allowed {
        stats::ALLOWED.add(1);
    } else {
        stats::DENIED.add(1);
    }
    counters.verdict(d.allowed);
    stats::answered(d.allowed);
    let expire_at_ms =
        written_at_ms.unwrap_or_else(|| ceil_ms(now_us.saturating_add(d.reset_after_us)));
    match &mut verdict.outcome {
        // Replicated and stored above.
        Outcome::Updated => {
            if old_expire_at_ms != Some(expire_at_ms) || key.expire_at_ms() != Some(expire_at_ms) {
                key.set_expire_at_ms(expire_at_ms);
            }
            wrote(ctx, key_name, c"rl.allow");
        }
        Outcome::Created(limiter) => {
            let charged = if d.allowed { cost } else { 0 };
            replicate_write(ctx, key_name, limiter, now_us, charged, &bounds);
            let Outcome::Created(limiter) =
                std::mem::replace(&mut verdict.outcome, Outcome::Unchanged)
            else {
                return Err(WRONGTYPE);
            };
            let expire_at_ms = exact_expire_at_ms(&d, &limiter).unwrap_or(expire_at_ms);
            key.create(limiter).map_err(|_| WRONGTYPE)?;
            key.set_expire_at_ms(expire_at_ms);
            wrote(ctx, key_name, c"rl.allow");
        }
        // Nothing written: a denial leaves the TTL to the TTL guard (`expiry`, `sweep`).
        Outcome::Unchanged | Outcome::Emptied => {}
    }
    Ok(d)
}

/// The key's expiry (ms) after a write, when `now + reset_after` does not give it: a write
/// that leaves `reset_after` 0 — a limits-sliding key written in its counters' expiry ms keeps
/// that ms (limits' `INCRBY` on a key whose TTL is 0), which may be before `now`. Otherwise
/// `None`: the expiry is `now + reset_after` (no second look at the state on the hot path).
fn exact_expire_at_ms(d: &Decision, written: &Limiter) -> Option<i64> {
    (d.reset_after_us == 0).then(|| ceil_ms(written.expires_at_us()))
}

/// The error for a key of another kind: `DEL` it to change algorithms, or for leases, use
/// their commands.
pub(crate) fn mismatch_error(m: AlgorithmMismatch) -> CmdError {
    let hint = if m.stored.is_rate_limit() {
        "DEL it to change algorithms"
    } else {
        "use RL.ACQUIRE and RL.RELEASE on it, or DEL it"
    };
    CmdError::Owned(format!(
        "ERR key holds a {} limiter, not {}: {hint}",
        m.stored.name(),
        m.requested.name()
    ))
}

/// The five reply fields: allowed, capacity, remaining, retry_after_ms, reset_after_ms.
///
/// Both durations are rounded up to whole ms: waiting `retry_after_ms` passes, and
/// `reset_after_ms` of a fresh 1-minute window is 60000. The key's expiry is the exact instant
/// rounded up to a ms (never before the state is empty), so a `PTTL` read in the same ms as the
/// reply is `reset_after_ms` or one more, by the sub-ms part of `now` (README, Reply).
pub(crate) fn reply_fields(d: &Decision) -> [i64; 5] {
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
