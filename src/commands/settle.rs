//! `RL.CHARGE` and `RL.REFUND`: settle a request's cost after the work, when it is known
//! (tokens generated, bytes sent). `RL.CHARGE` charges unconditionally — past the capacity the
//! excess is a debt that later requests wait out — and `RL.REFUND` gives back what was charged,
//! never below empty. Both reply with the five integers describing the key after the call
//! ([`Limiter::settled`]).

use crate::stats::cmd;
use std::ffi::c_int;

use super::effects::{apply, Effect};
use super::limit::{mismatch_error, reply_fields};
use super::{run, CmdError, WRONGTYPE};
use crate::algo::{Limiter, Outcome};
use crate::args::parse_settle;
use crate::clock;
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, reply_integers, Arg, Ctx};

/// `RL.CHARGE key limit window n [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_charge(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_CHARGE, ctx, argv, argc, |ctx, args| {
        settle(ctx, args, false)
    })
}

/// `RL.REFUND key limit window n [ALGO a] [BURST n]`
pub(crate) extern "C" fn rl_refund(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_REFUND, ctx, argv, argc, |ctx, args| {
        settle(ctx, args, true)
    })
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
    let bounds = crate::config::bounds();
    let counters = crate::stats::algo(rule.algorithm());
    counters.calls.add(1);
    let mut key = LimiterKey::open(ctx, *key_name, true);
    let verdict = {
        // Stored (packed again) when the handle goes, before `apply` reads the key.
        let mut stored = key.get().map_err(|_| {
            counters.errors.add(1);
            WRONGTYPE
        })?;
        // What a charge finds available, to count the debt it makes (a peek: O(1), O(log N)
        // for a moving window; only RL.CHARGE pays it).
        let available = if refund {
            None
        } else {
            Limiter::peek_with(stored.as_deref(), &rule, 0, now_us, 0)
                .ok()
                .map(|d| d.remaining)
        };
        let verdict = if refund {
            Limiter::refund(stored.as_deref_mut(), &rule, amount, now_us, &bounds)
        } else {
            Limiter::charge(stored.as_deref_mut(), &rule, amount, now_us, &bounds)
        }
        .map_err(|m| {
            counters.errors.add(1);
            mismatch_error(m)
        })?;
        if let (Some(h), Outcome::Unchanged) = (stored.as_mut(), &verdict.outcome) {
            h.unchanged();
        }
        if let Some(debt) = available
            .and_then(|a| amount.checked_sub(a))
            .filter(|&d| d > 0)
        {
            crate::stats::DEBT_CHARGES.add(1);
            crate::stats::DEBT_CHARGED.add(debt);
        }
        verdict
    };
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
