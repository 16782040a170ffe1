//! `RL.APPLY key hit`: what replicas and AOF files receive for a moving-window write (and, with
//! a payload of the leases tag, for a lease effect: see `lease::apply_effect`).
//!
//! A log can hold 100,000 runs, so replicating the whole state per hit would cost O(log size)
//! on the wire. The hit carries the master's timestamp, the rule, the cost and (in its current
//! version) the master's cap and `runs total` after the write; the replica runs the same
//! deterministic function the master ran ([`Limiter::replay`]: clamp, trim, add) and ends with
//! the same log and expiry whatever its own clock says. No limit is checked here: the master
//! decided. A log that does not end as the master's did is counted in `INFO ratelimit`
//! (`replica_mismatches`) and logged: the replica has missed or refused a hit before.

use crate::stats::cmd;
use std::ffi::c_int;

use redis_module::raw;

use super::{run, CmdError, WRONGTYPE};
use crate::algo::{leases, Limiter, Outcome};
use crate::datatype::codec::decode_hit;
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, ceil_ms, reply_ok, wrote, Arg, Ctx};
use crate::logging::Limited;
use crate::stats;

/// `RL.APPLY key hit`
pub(crate) extern "C" fn rl_apply(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_APPLY, ctx, argv, argc, apply)
}

fn apply(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name, payload] = args else {
        return Err(CmdError::WrongArity);
    };
    if leases::is_effect(arg_bytes(*payload)) {
        return super::lease::apply_effect(ctx, *key_name, arg_bytes(*payload));
    }
    let Some(hit) = decode_hit(arg_bytes(*payload)) else {
        stats::HITS_REFUSED.add(1);
        return Err(CmdError::Static(
            c"ERR invalid ratelimit hit payload: RL.APPLY takes only what replication produces",
        ));
    };
    let mut key = LimiterKey::open(ctx, *key_name, true);
    let mut stored = key.get().map_err(|_| WRONGTYPE)?;
    let outcome = Limiter::replay(stored.as_deref_mut(), &hit).map_err(|m| {
        CmdError::Owned(format!(
            "ERR key holds a {} limiter, not {}",
            m.stored.name(),
            m.requested.name()
        ))
    })?;
    let agrees = match (&outcome, &stored) {
        (Outcome::Created(l), _) => l.agrees_with(&hit),
        (Outcome::Updated, Some(l)) => l.agrees_with(&hit),
        _ => true,
    };
    if !agrees {
        stats::REPLICA_MISMATCHES.add(1);
        static MISMATCH_LOG: Limited = Limited::new();
        MISMATCH_LOG.warning(
            "ratelimit: a replayed moving-window hit left a log unlike the master's (a hit was \
             missed or refused before): the key stays approximate until it expires",
        );
    }
    let changed = outcome != Outcome::Unchanged;
    // The handle goes before the key changes under it (deleted, or created).
    let expires_at_us = {
        let mut stored = stored;
        match outcome {
            Outcome::Unchanged => stored.map(|mut l| {
                l.unchanged();
                l.expires_at_us()
            }),
            Outcome::Updated => match stored {
                Some(mut l) => {
                    let at = l.expires_at_us();
                    l.store().map_err(|_| WRONGTYPE)?;
                    Some(at)
                }
                None => None,
            },
            Outcome::Emptied => {
                // The state is about to go: nothing of it to keep.
                if let Some(l) = stored.as_mut() {
                    l.unchanged();
                }
                drop(stored);
                key.delete();
                None
            }
            Outcome::Created(limiter) => {
                drop(stored);
                let at = limiter.expires_at_us();
                key.create(limiter).map_err(|_| WRONGTYPE)?;
                Some(at)
            }
        }
    };
    if let Some(at_us) = expires_at_us {
        key.set_expire_at_ms(ceil_ms(at_us));
    }
    drop(key);
    if changed {
        wrote(ctx, *key_name, c"rl.apply");
    }
    // Deterministic: the arguments carry the master's time, so replicating the call is exact.
    if let Some(verbatim) = unsafe { raw::RedisModule_ReplicateVerbatim } {
        unsafe { verbatim(ctx) };
    }
    reply_ok(ctx);
    Ok(())
}
