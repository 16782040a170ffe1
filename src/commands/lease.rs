//! `RL.ACQUIRE key limit lease [ID id]` and `RL.RELEASE key id`: concurrency leases (see
//! [`crate::algo::leases`]), and the replay of their effects that `RL.APPLY` hands over.
//!
//! Same pipeline as `RL.ALLOW`: parse → open the key once → decide → store, expire (the key
//! goes with its last lease), replicate the effect (`RL.APPLY key effect`, O(1) bytes however
//! many leases the key holds), signal the write → reply. A denial, a release of nothing and a
//! renewal that is refused write nothing, replicate nothing and signal nothing.

use crate::stats::cmd;
use std::ffi::{c_char, c_int, c_long};

use redis_module::raw;

use super::limit::mismatch_error;
use super::{run, CmdError, WRONGTYPE};
use crate::algo::leases::{self, decode_effect, encode_effect, Effect, Grant, LeaseError};
use crate::algo::{Limiter, Outcome, State};
use crate::args::{parse_acquire, parse_lease_id};
use crate::datatype::key::LimiterKey;
use crate::expiry;
use crate::ffi::{arg_bytes, ceil_ms, reply_ok, wrote, wrote_generic, Arg, Ctx};
use crate::logging::Limited;
use crate::replication::replicate_apply;
use crate::{clock, stats};

/// `RL.ACQUIRE key limit lease [ID id]`
pub(crate) extern "C" fn rl_acquire(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_ACQUIRE, ctx, argv, argc, acquire)
}

/// `RL.RELEASE key id`
pub(crate) extern "C" fn rl_release(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_RELEASE, ctx, argv, argc, release)
}

fn lease_error(e: LeaseError) -> CmdError {
    match e {
        LeaseError::Mismatch(m) => mismatch_error(m),
        LeaseError::Limit | LeaseError::Lease => CmdError::Static(c"ERR invalid lease request"),
        LeaseError::NoId => {
            CmdError::Static(c"ERR the server could not make a lease id for this key: pass ID")
        }
        LeaseError::Full => CmdError::Static(c"ERR the key holds too many leases"),
    }
}

fn leases_stored(l: &Limiter) -> u64 {
    match &l.state {
        State::Leases(s) => u64::try_from(s.stored()).unwrap_or(u64::MAX),
        _ => 0,
    }
}

fn acquire(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name, rest @ ..] = args else {
        return Err(CmdError::WrongArity);
    };
    if rest.len() < 2 {
        return Err(CmdError::WrongArity);
    }
    let req = parse_acquire(rest.iter().map(|&a| arg_bytes(a)))
        .map_err(|e| CmdError::Owned(e.message()))?;
    let now_us = clock::now_us();
    let counters = stats::algo(req.rule.algorithm());
    counters.calls.add(1);
    let mut key = LimiterKey::open(ctx, *key_name, true);
    let mut stored = key.get().map_err(|_| {
        counters.errors.add(1);
        WRONGTYPE
    })?;
    let verdict = leases::acquire(stored.as_deref_mut(), &req, now_us).map_err(|e| {
        counters.errors.add(1);
        lease_error(e)
    })?;
    counters.verdict(verdict.grant.allowed);
    stats::answered(verdict.grant.allowed);
    if verdict.clamped {
        stats::CLAMPED.add(1);
    }
    let updated = stored.map(|l| (leases_stored(&l), l.expires_at_us()));
    store(
        ctx,
        &mut key,
        *key_name,
        verdict.outcome,
        verdict.effect.as_ref(),
        updated,
        now_us,
        c"rl.acquire",
    )?;
    reply_grant(ctx, &verdict.grant);
    Ok(())
}

fn release(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name, id] = args else {
        return Err(CmdError::WrongArity);
    };
    let id = parse_lease_id(arg_bytes(*id)).map_err(|e| CmdError::Owned(e.message()))?;
    let now_us = clock::now_us();
    let mut key = LimiterKey::open(ctx, *key_name, true);
    let mut stored = key.get().map_err(|_| WRONGTYPE)?;
    let released = leases::release(stored.as_deref_mut(), &id, now_us).map_err(lease_error)?;
    let updated = stored.map(|l| (leases_stored(&l), l.expires_at_us()));
    store(
        ctx,
        &mut key,
        *key_name,
        released.outcome,
        released.effect.as_ref(),
        updated,
        now_us,
        c"rl.release",
    )?;
    if let Some(int) = unsafe { raw::RedisModule_ReplyWithLongLong } {
        unsafe { int(ctx, i64::from(released.released)) };
    }
    Ok(())
}

/// Stores what a lease command did: replicates its effect, creates, updates or deletes the
/// key, sets the expiry its last lease implies (only when that changes), signals the write.
/// Writes nothing when nothing changed, but gives a key left without a TTL its TTL back.
/// `updated` is the stored key's `(leases stored, expiry)` after the call, if it existed.
#[allow(clippy::too_many_arguments)]
fn store(
    ctx: Ctx,
    key: &mut LimiterKey,
    key_name: Arg,
    outcome: Outcome,
    effect: Option<&Effect>,
    updated: Option<(u64, u64)>,
    now_us: u64,
    event: &std::ffi::CStr,
) -> Result<(), CmdError> {
    let after = match (&outcome, updated) {
        (Outcome::Created(l), _) => leases_stored(l),
        (Outcome::Updated, Some((n, _))) => n,
        _ => 0,
    };
    if let (Some(effect), false) = (effect, outcome == Outcome::Unchanged) {
        replicate_apply(ctx, key_name, encode_effect(effect, after).as_slice());
    }
    match outcome {
        Outcome::Unchanged => {
            expiry::repair(ctx, key, key_name, now_us);
            return Ok(());
        }
        Outcome::Emptied => {
            key.delete();
            wrote(ctx, key_name, event);
            wrote_generic(ctx, key_name, c"del");
            return Ok(());
        }
        Outcome::Created(limiter) => {
            let at_ms = ceil_ms(limiter.expires_at_us());
            key.create(limiter).map_err(|_| WRONGTYPE)?;
            key.set_expire_at_ms(at_ms);
        }
        Outcome::Updated => {
            let at_ms = ceil_ms(updated.map_or(0, |(_, at)| at));
            if key.expire_at_ms() != Some(at_ms) {
                key.set_expire_at_ms(at_ms);
            }
        }
    }
    wrote(ctx, key_name, event);
    Ok(())
}

/// `[allowed, id, in_flight, retry_after_ms, reset_after_ms]`: the id a bulk string (nil when
/// denied), both durations rounded up to whole ms (at least 1 when denied).
fn reply_grant(ctx: Ctx, g: &Grant) {
    let (Some(array), Some(int), Some(text), Some(null)) = (
        unsafe { raw::RedisModule_ReplyWithArray },
        unsafe { raw::RedisModule_ReplyWithLongLong },
        unsafe { raw::RedisModule_ReplyWithStringBuffer },
        unsafe { raw::RedisModule_ReplyWithNull },
    ) else {
        return;
    };
    let retry_ms = if g.allowed {
        0
    } else {
        ceil_ms(g.retry_after_us).max(1)
    };
    unsafe {
        array(ctx, 5 as c_long);
        int(ctx, i64::from(g.allowed));
        match &g.id {
            Some(id) => id.with_bytes(|b| text(ctx, b.as_ptr().cast::<c_char>(), b.len())),
            None => null(ctx),
        };
        int(ctx, i64::try_from(g.in_flight).unwrap_or(i64::MAX));
        int(ctx, retry_ms);
        int(ctx, ceil_ms(g.reset_after_us));
    }
}

/// `RL.APPLY key effect` for leases: replays the master's write at its time (no limit checked:
/// the master decided), sets the expiry the state implies, and checks the master's count.
pub(crate) fn apply_effect(ctx: Ctx, key_name: Arg, payload: &[u8]) -> Result<(), CmdError> {
    let Some((effect, master_stored)) = decode_effect(payload) else {
        stats::HITS_REFUSED.add(1);
        return Err(CmdError::Static(
            c"ERR invalid ratelimit hit payload: RL.APPLY takes only what replication produces",
        ));
    };
    let mut key = LimiterKey::open(ctx, key_name, true);
    let mut stored = key.get().map_err(|_| WRONGTYPE)?;
    let outcome = leases::replay(stored.as_deref_mut(), &effect).map_err(lease_error)?;
    let ours = match (&outcome, stored.as_deref()) {
        (Outcome::Created(l), _) | (Outcome::Updated, Some(l)) => leases_stored(l),
        _ => 0,
    };
    if master_stored.is_some_and(|theirs| theirs != ours) {
        stats::REPLICA_MISMATCHES.add(1);
        static MISMATCH_LOG: Limited = Limited::new();
        MISMATCH_LOG.warning(
            "ratelimit: a replayed lease effect left a set unlike the master's (an effect was \
             missed or refused before): the key stays approximate until its leases end",
        );
    }
    drop(stored);
    let changed = outcome != Outcome::Unchanged;
    match outcome {
        Outcome::Unchanged | Outcome::Updated => {}
        Outcome::Emptied => key.delete(),
        Outcome::Created(limiter) => key.create(limiter).map_err(|_| WRONGTYPE)?,
    }
    if let Some(limiter) = key.get().map_err(|_| WRONGTYPE)? {
        let at_ms = ceil_ms(limiter.expires_at_us());
        key.set_expire_at_ms(at_ms);
    }
    drop(key);
    if changed {
        wrote(ctx, key_name, c"rl.apply");
    }
    // Deterministic: the arguments carry the master's time and the id.
    if let Some(verbatim) = unsafe { raw::RedisModule_ReplicateVerbatim } {
        unsafe { verbatim(ctx) };
    }
    reply_ok(ctx);
    Ok(())
}
