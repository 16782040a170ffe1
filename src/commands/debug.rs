//! `RL.DEBUG PANIC | PANIC-OPEN key`: fault injection for the tests, registered only when the
//! module is loaded with `enable-debug-command yes` (off by default, like the server's own DEBUG).
//!
//! It proves at the server level what the rest of the module relies on: a panic in a command
//! becomes an `ERR internal error …` reply, a line in the server log, and nothing else — the
//! server stays up and an open key is closed during unwinding.

use crate::stats::cmd;
use std::ffi::c_int;

use redis_module::raw;

use super::{run, CmdError};
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, Arg, Ctx};

/// `RL.DEBUG subcommand [key]`
pub(crate) extern "C" fn rl_debug(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_DEBUG, ctx, argv, argc, debug)
}

#[allow(clippy::panic)] // the point of the command
fn debug(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    // Cluster routing asks for the keys through this call (`getkeys-api`): servers route module
    // commands by legacy key positions or this API, never by key specs, and the key of
    // PANIC-OPEN is not at a fixed position for the other subcommand.
    if unsafe { raw::RedisModule_IsKeysPositionRequest.map_or(0, |f| f(ctx)) } != 0 {
        if let [_, sub, _key, ..] = args {
            if arg_bytes(*sub).eq_ignore_ascii_case(b"PANIC-OPEN") {
                declare_key_at(ctx, 2);
            }
        }
        return Ok(());
    }
    match args {
        [_, sub] if arg_bytes(*sub).eq_ignore_ascii_case(b"PANIC") => {
            panic!("RL.DEBUG PANIC was called")
        }
        [_, sub, key] if arg_bytes(*sub).eq_ignore_ascii_case(b"PANIC-OPEN") => {
            let _open = LimiterKey::open(ctx, *key, true);
            panic!("RL.DEBUG PANIC-OPEN was called with the key open")
        }
        _ => Err(CmdError::Static(
            c"ERR unknown RL.DEBUG subcommand: use PANIC or PANIC-OPEN key",
        )),
    }
}

/// Declares argument `pos` as a key (read-write) in answer to a keys-position request.
fn declare_key_at(ctx: Ctx, pos: c_int) {
    unsafe {
        if let Some(with_flags) = raw::RedisModule_KeyAtPosWithFlags {
            let flags = raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE;
            with_flags(ctx, pos, flags as c_int);
        } else if let Some(at) = raw::RedisModule_KeyAtPos {
            at(ctx, pos);
        }
    }
}
