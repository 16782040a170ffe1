//! `RL.INSPECT key`: the stored rule and the state as it stands now, for clients that need more
//! than the five-integer reply (the Python `limits` storage, operators). Read-only.
//!
//! Reply: nil for a missing key; otherwise a map (RESP3) or flat field/value array (RESP2):
//! `algorithm limit window_us burst now_us`, then per algorithm the state as seen at `now_us`
//! (aged, and clamped after a clock step): sliding-window `window_start_us current previous`;
//! fixed-window `window_start_us count`; gcra `tat_us` (rounded up to a whole µs);
//! moving-window `count oldest_us newest_us runs` (the in-window sum, the oldest and newest
//! in-window entries' times, and the runs stored). A state that holds nothing any more reports
//! zeros.

use crate::stats::cmd;
use std::ffi::{c_char, c_int, c_long};

use redis_module::raw;

use super::{run, CmdError, WRONGTYPE};
use crate::algo::Limiter;
use crate::clock;
use crate::datatype::key::LimiterKey;
use crate::ffi::{Arg, Ctx};

/// `RL.INSPECT key`
pub(crate) extern "C" fn rl_inspect(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_INSPECT, ctx, argv, argc, inspect)
}

/// A reply value.
enum Value {
    Int(u64),
    Text(&'static str),
}

fn inspect(ctx: Ctx, args: &[Arg]) -> Result<(), CmdError> {
    let [_, key_name] = args else {
        return Err(CmdError::WrongArity);
    };
    let now_us = clock::now_us();
    let key = LimiterKey::open(ctx, *key_name, false);
    let Some(stored) = key.get().map_err(|_| WRONGTYPE)? else {
        if let Some(null) = unsafe { raw::RedisModule_ReplyWithNull } {
            unsafe { null(ctx) };
        }
        return Ok(());
    };
    let fields = fields(&stored, now_us);
    drop(stored);
    drop(key);
    reply_map(ctx, &fields);
    Ok(())
}

/// The rule, then the state's own fields as the kind reports them (O(log runs) for a log).
fn fields(stored: &Limiter, now_us: u64) -> Vec<(&'static str, Value)> {
    let rule = stored.rule;
    let mut out = vec![
        ("algorithm", Value::Text(rule.algorithm().name())),
        ("limit", Value::Int(rule.limit())),
        ("window_us", Value::Int(rule.window_us())),
        ("burst", Value::Int(rule.burst())),
        ("now_us", Value::Int(now_us)),
    ];
    out.extend(
        stored
            .inspect(now_us)
            .into_iter()
            .map(|(name, v)| (name, Value::Int(v))),
    );
    out
}

fn reply_map(ctx: Ctx, fields: &[(&'static str, Value)]) {
    let (Some(map), Some(text), Some(int)) = (
        unsafe { raw::RedisModule_ReplyWithMap },
        unsafe { raw::RedisModule_ReplyWithStringBuffer },
        unsafe { raw::RedisModule_ReplyWithLongLong },
    ) else {
        return;
    };
    let bulk = |s: &str| unsafe { text(ctx, s.as_ptr().cast::<c_char>(), s.len()) };
    unsafe { map(ctx, fields.len() as c_long) };
    for (name, value) in fields {
        bulk(name);
        match value {
            Value::Int(v) => unsafe { int(ctx, i64::try_from(*v).unwrap_or(i64::MAX)) },
            Value::Text(t) => bulk(t),
        };
    }
}
