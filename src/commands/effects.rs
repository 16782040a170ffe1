//! What a verdict wrote, made real at an open key: store, expire, replicate, signal. Shared by
//! the commands that are not on `RL.ALLOW`'s hand-tuned path (`RL.ALLOWALL`, `RL.CHARGE`,
//! `RL.REFUND`).

use std::ffi::CStr;

use super::{CmdError, WRONGTYPE};
use crate::algo::{Bounds, Outcome};
use crate::datatype::key::LimiterKey;
use crate::ffi::{ceil_ms, wrote, Arg, Ctx};
use crate::replication::{replicate_del, replicate_refund, replicate_write};

/// How the write is replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A charge of this cost (0: a conversion or a block's start).
    Charge(u64),
    /// A refund of this amount.
    Refund(u64),
}

/// Makes `outcome` real at `key` (open for writing): a created or updated limiter is stored
/// (it already is, when updated in place), given the expiry its state implies, replicated and
/// signalled as `event`; an emptied key is deleted (replicated as `DEL`).
pub(crate) fn apply(
    ctx: Ctx,
    key: &mut LimiterKey,
    key_name: Arg,
    outcome: Outcome,
    now_us: u64,
    effect: Effect,
    event: &CStr,
) -> Result<(), CmdError> {
    let bounds = crate::config::bounds();
    match outcome {
        Outcome::Created(limiter) => {
            replicate(ctx, key_name, &limiter, now_us, effect, &bounds);
            let at_ms = ceil_ms(limiter.expires_at_us());
            key.create(limiter).map_err(|_| WRONGTYPE)?;
            key.set_expire_at_ms(at_ms);
            wrote(ctx, key_name, event);
        }
        Outcome::Updated => {
            // The caller's handle stored the change already: this one only reads.
            let at_ms = {
                let Some(limiter) = key.get().map_err(|_| WRONGTYPE)? else {
                    return Ok(());
                };
                replicate(ctx, key_name, &limiter, now_us, effect, &bounds);
                ceil_ms(limiter.expires_at_us())
            };
            if key.expire_at_ms() != Some(at_ms) {
                key.set_expire_at_ms(at_ms);
            }
            wrote(ctx, key_name, event);
        }
        Outcome::Emptied => {
            key.delete();
            replicate_del(ctx, key_name);
            wrote(ctx, key_name, event);
        }
        // Nothing written: the TTL is the TTL guard's business (`expiry`, `sweep`).
        Outcome::Unchanged => {}
    }
    Ok(())
}

fn replicate(
    ctx: Ctx,
    key_name: Arg,
    limiter: &crate::algo::Limiter,
    now_us: u64,
    effect: Effect,
    bounds: &Bounds,
) {
    match effect {
        Effect::Charge(cost) => replicate_write(ctx, key_name, limiter, now_us, cost, bounds),
        Effect::Refund(amount) => replicate_refund(ctx, key_name, limiter, now_us, amount, bounds),
    }
}
