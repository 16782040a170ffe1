//! `RL.SETSTATE key payload`: what replicas and AOF files receive instead of `RL.ALLOW`.
//!
//! The payload is the whole resulting limiter (see `datatype::codec`), and the expiry is derived
//! from it, so a replica or an AOF replay ends with the master's exact state and PEXPIRETIME
//! whatever its own clock says. It is validated as strictly as RDB loading.

use crate::stats::cmd;
use std::ffi::c_int;

use redis_module::raw;

use super::{run, CmdError, WRONGTYPE};
use crate::datatype::codec::decode;
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, ceil_ms, reply_ok, wrote, Arg, Ctx};

/// `RL.SETSTATE key payload`
pub(crate) extern "C" fn rl_setstate(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_SETSTATE, ctx, argv, argc, setstate)
}

fn setstate(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name, payload] = args else {
        return Err(CmdError::WrongArity);
    };
    let limiter = decode(arg_bytes(*payload)).ok_or(CmdError::Static(
        c"ERR invalid ratelimit state payload: RL.SETSTATE takes only what replication and AOF rewrite produce",
    ))?;
    let expire_at_ms = ceil_ms(limiter.expires_at_us());
    let mut key = LimiterKey::open(ctx, *key_name, true);
    key.put(limiter).map_err(|_| WRONGTYPE)?;
    key.set_expire_at_ms(expire_at_ms);
    drop(key);
    wrote(ctx, *key_name, c"rl.setstate");
    // Deterministic: the arguments carry the whole state, so replicating the call is exact.
    if let Some(verbatim) = unsafe { raw::RedisModule_ReplicateVerbatim } {
        unsafe { verbatim(ctx) };
    }
    reply_ok(ctx);
    Ok(())
}
