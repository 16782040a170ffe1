//! How a decision reaches replicas and the AOF: as its effect, never as the call.
//!
//! `RL.ALLOW` depends on the clock, so re-running it on a replica or at AOF replay would give
//! another answer. A write replicates `RL.SETSTATE key payload` with the complete new state
//! (from which the absolute expiry follows); denied requests and peeks write nothing and
//! replicate nothing. A TTL restored by [`crate::expiry`] replicates as `PEXPIREAT` (or `DEL`).

use std::ffi::{c_char, c_longlong};

use redis_module::raw;

use crate::algo::Limiter;
use crate::commands::{Arg, Ctx};
use crate::datatype::codec::encode;

/// Replicates the new state of `key`.
pub(crate) fn replicate_state(ctx: Ctx, key: Arg, limiter: &Limiter) {
    let payload = encode(limiter);
    // SAFETY: `s` takes the key string (refcounted, not copied), `b` a buffer with its length.
    if let Some(replicate) = unsafe { raw::RedisModule_Replicate } {
        unsafe {
            replicate(
                ctx,
                c"RL.SETSTATE".as_ptr(),
                c"sb".as_ptr(),
                key,
                payload.as_ptr().cast::<c_char>(),
                payload.len(),
            )
        };
    }
}

/// Replicates `PEXPIREAT key at_ms`.
pub(crate) fn replicate_pexpireat(ctx: Ctx, key: Arg, at_ms: i64) {
    if let Some(replicate) = unsafe { raw::RedisModule_Replicate } {
        unsafe {
            replicate(
                ctx,
                c"PEXPIREAT".as_ptr(),
                c"sl".as_ptr(),
                key,
                at_ms as c_longlong,
            )
        };
    }
}

/// Replicates `DEL key`.
pub(crate) fn replicate_del(ctx: Ctx, key: Arg) {
    if let Some(replicate) = unsafe { raw::RedisModule_Replicate } {
        unsafe { replicate(ctx, c"DEL".as_ptr(), c"s".as_ptr(), key) };
    }
}
