//! `RL.THROTTLE` / `CL.THROTTLE` (redis-cell's syntax and reply) and `GCRA` (Redis 8.8's pulled
//! command): parse with [`crate::compat`], decide and store through the same pipeline as
//! `RL.ALLOW` ([`charge`]: expiry, effects replication, signalling), reply five integers.

use crate::stats::cmd;
use std::ffi::c_int;

use super::limit::charge;
use super::{run, CmdError};
use crate::args::Request;
use crate::clock;
use crate::compat::{parse_gcra, parse_throttle, throttle_reply};
use crate::ffi::{arg_bytes, reply_integers, Arg, Ctx};

/// `RL.THROTTLE key max_burst count_per_period period [quantity]`
pub(crate) extern "C" fn rl_throttle(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_THROTTLE, ctx, argv, argc, throttle)
}

/// `CL.THROTTLE`: the same as `RL.THROTTLE`, counted apart.
pub(crate) extern "C" fn cl_throttle(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::CL_THROTTLE, ctx, argv, argc, throttle)
}

/// `GCRA key max_burst tokens_per_period period [TOKENS n]`
pub(crate) extern "C" fn gcra(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::GCRA, ctx, argv, argc, gcra_command)
}

fn throttle(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name, rest @ ..] = args else {
        return Err(CmdError::WrongArity);
    };
    if !(3..=4).contains(&rest.len()) {
        return Err(CmdError::WrongArity);
    }
    let request = parse_throttle(rest.iter().map(|&a| arg_bytes(a)))
        .map_err(|e| CmdError::Owned(e.message()))?;
    decide_and_reply(ctx, *key_name, &request)
}

fn gcra_command(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name, rest @ ..] = args else {
        return Err(CmdError::WrongArity);
    };
    // `TOKENS` without its value (4 arguments) is the parser's error, as on Redis.
    if !(3..=5).contains(&rest.len()) {
        return Err(CmdError::WrongArity);
    }
    let request =
        parse_gcra(rest.iter().map(|&a| arg_bytes(a))).map_err(|e| CmdError::Owned(e.message()))?;
    decide_and_reply(ctx, *key_name, &request)
}

fn decide_and_reply(ctx: Ctx, key_name: Arg, request: &Request) -> Result<(), CmdError> {
    if !crate::config::duration_allowed(request.rule.window_us()) {
        return Err(CmdError::Owned(crate::config::too_long("period")));
    }
    let decision = charge(ctx, key_name, &request.rule, request.cost, clock::now_us())?;
    reply_integers(ctx, &throttle_reply(&decision));
    Ok(())
}
