//! How a decision reaches replicas and the AOF: as its effect, never as the call.
//!
//! `RL.ALLOW` depends on the clock, so re-running it on a replica or at AOF replay would give
//! another answer. An admitted request replicates `RL.SETSTATE key payload` with the complete new
//! state (from which the absolute expiry follows); denied requests and peeks write nothing and
//! replicate nothing.

use std::ffi::c_char;

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
