//! `RL.CHARGE` and `RL.REFUND`: settle a request's cost after the work, when it is known
//! (tokens generated, bytes sent). `RL.CHARGE` charges unconditionally — past the capacity the
//! excess is a debt that later requests wait out — and `RL.REFUND` gives back what was charged,
//! never below empty. Both reply with the five integers describing the key after the call
//! ([`Limiter::settled`]).

use std::ffi::c_int;

use super::effects::{apply, Effect};
use super::limit::{mismatch_error, reply_fields};
use super::{run, CmdError, WRONGTYPE};
use crate::algo::{Bounds, Limiter};
use crate::args::parse_settle;
use crate::clock;
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, reply_integers, Arg, Ctx};

/// `RL.CHARGE key limit window n [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_charge(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, |ctx, args| settle(ctx, args, false))
}

/// `RL.REFUND key limit window n [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_refund(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, |ctx, args| settle(ctx, args, true))
}

fn settle(ctx: Ctx, args: &[Arg], refund: bool) -> Result<(), CmdError> {
    let [_, key_name, rest @ ..] = args else {
        return Err(CmdError::WrongArity);
    };
    if rest.len() < 3 {
        return Err(CmdError::WrongArity);
    }
    let (rule, amount) = parse_settle(rest.iter().map(|&a| arg_bytes(a)))
        .map_err(|e| CmdError::Owned(e.message()))?;
    let now_us = clock::now_us();
    let bounds = Bounds::DEFAULT;
    let mut key = LimiterKey::open(ctx, *key_name, true);
    let stored = key.get_mut().map_err(|_| WRONGTYPE)?;
    let verdict = if refund {
        Limiter::refund(stored, &rule, amount, now_us, &bounds)
    } else {
        Limiter::charge(stored, &rule, amount, now_us, &bounds)
    }
    .map_err(mismatch_error)?;
    if verdict.clamped {
        crate::stats::CLAMPED.add(1);
    }
    let (effect, event) = if refund {
        (Effect::Refund(amount), c"rl.refund")
    } else {
        (Effect::Charge(amount), c"rl.charge")
    };
    apply(
        ctx,
        &mut key,
        *key_name,
        verdict.outcome,
        now_us,
        effect,
        event,
    )?;
    drop(key);
    reply_integers(ctx, &reply_fields(&verdict.decision));
    Ok(())
}
