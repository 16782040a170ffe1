//! How a decision reaches replicas and the AOF: as its effect, never as the call.
//!
//! `RL.ALLOW` depends on the clock, so re-running it on a replica or at AOF replay would give
//! another answer. A write of a counter (sliding-window, fixed-window, gcra) replicates
//! `RL.SETSTATE key payload` with the complete new state (from which the absolute expiry
//! follows). A moving-window log can hold 100,000 runs, so a write there replicates
//! `RL.APPLY key hit` — the master's timestamp, the rule and the cost — from which the replica
//! derives the same log, trimming and expiry with the same function. Denied requests and peeks
//! write nothing and replicate nothing (a denial that starts a `BLOCK` is a write: the state
//! with its block, or a hit carrying it). A refund replicates as the new state, a refund hit,
//! or `DEL` when it emptied the key. A TTL restored by [`crate::expiry`] replicates as
//! `PEXPIREAT` (or `DEL`).
//!
//! A command that writes several keys (`RL.ALLOWALL`) calls these once per key: the server
//! wraps every effect replicated within one command in `MULTI`/`EXEC`, so replicas and the AOF
//! apply them as one atomic unit, each key's effect O(1) in its state's size.

use std::ffi::{c_char, c_longlong};

use redis_module::raw;

use crate::algo::{Bounds, Hit, Limiter};
use crate::datatype::codec::{encode_hit, encode_into};
use crate::ffi::{Arg, Ctx};
use crate::varint::StackBuf;

/// Replicates what a write did to `key`: its new state, or for a kind that replicates hits the
/// hit (`cost` at `now_us` under the limiter's rule; `cost` 0 for a conversion).
pub(crate) fn replicate_write(
    ctx: Ctx,
    key: Arg,
    limiter: &Limiter,
    now_us: u64,
    cost: u64,
    bounds: &Bounds,
) {
    match limiter.hit(now_us, cost, bounds) {
        Some(hit) => replicate_hit(ctx, key, &hit),
        None => replicate_state(ctx, key, limiter),
    }
}

/// Replicates what a refund of `amount` at `now_us` did to `key`: for a kind that replicates
/// hits the refund hit (version 4, which the previous release refuses), else the new state.
pub(crate) fn replicate_refund(
    ctx: Ctx,
    key: Arg,
    limiter: &Limiter,
    now_us: u64,
    amount: u64,
    bounds: &Bounds,
) {
    match limiter.refund_hit(now_us, amount, bounds) {
        Some(hit) => replicate_hit(ctx, key, &hit),
        None => replicate_state(ctx, key, limiter),
    }
}

/// Replicates `RL.APPLY key hit`.
fn replicate_hit(ctx: Ctx, key: Arg, hit: &Hit) {
    let payload = encode_hit(hit);
    replicate_payload(ctx, c"RL.APPLY", key, payload.as_slice());
}

/// Replicates `RL.APPLY key payload` (a kind's own effect, e.g. a lease acquired).
pub(crate) fn replicate_apply(ctx: Ctx, key: Arg, payload: &[u8]) {
    replicate_payload(ctx, c"RL.APPLY", key, payload);
}

/// Replicates the new state of `key` (`RL.SETSTATE key payload`).
pub(crate) fn replicate_state(ctx: Ctx, key: Arg, limiter: &Limiter) {
    let mut payload = StackBuf::<64>::new();
    encode_into(limiter, &mut payload);
    replicate_payload(ctx, c"RL.SETSTATE", key, payload.as_slice());
}

fn replicate_payload(ctx: Ctx, command: &std::ffi::CStr, key: Arg, payload: &[u8]) {
    // SAFETY: `s` takes the key string (refcounted, not copied), `b` a buffer with its length
    // (copied by the server).
    if let Some(replicate) = unsafe { raw::RedisModule_Replicate } {
        unsafe {
            replicate(
                ctx,
                command.as_ptr(),
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
