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

use std::ffi::{c_int, c_long, CStr};

use redis_module::raw;

use super::{run, CmdError, WRONGTYPE};
use crate::algo::moving_window::window_sum;
use crate::algo::{Algorithm, Limiter, State};
use crate::clock;
use crate::datatype::key::LimiterKey;
use crate::ffi::{Arg, Ctx};

/// `RL.INSPECT key`
pub(crate) extern "C" fn rl_inspect(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(ctx, argv, argc, inspect)
}

/// A reply value.
enum Value {
    Int(u64),
    Text(&'static CStr),
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
    let fields = fields(stored, now_us);
    drop(key);
    reply_map(ctx, &fields);
    Ok(())
}

fn algorithm_name(a: Algorithm) -> &'static CStr {
    match a {
        Algorithm::SlidingWindow => c"sliding-window",
        Algorithm::FixedWindow => c"fixed-window",
        Algorithm::Gcra => c"gcra",
        Algorithm::MovingWindow => c"moving-window",
    }
}

fn fields(stored: &Limiter, now_us: u64) -> Vec<(&'static CStr, Value)> {
    let rule = stored.rule;
    let mut out = vec![
        (c"algorithm", Value::Text(algorithm_name(rule.algorithm()))),
        (c"limit", Value::Int(rule.limit())),
        (c"window_us", Value::Int(rule.window_us())),
        (c"burst", Value::Int(rule.burst())),
        (c"now_us", Value::Int(now_us)),
    ];
    if let State::MovingWindow(log) = &stored.state {
        // Read in place: a log may be long, and nothing needs a copy.
        let (count, oldest, newest) = window_sum(log, &rule, &rule, now_us);
        out.push((c"count", Value::Int(count)));
        out.push((c"oldest_us", Value::Int(oldest.unwrap_or(0))));
        out.push((c"newest_us", Value::Int(newest.unwrap_or(0))));
        let runs = u64::try_from(log.run_count()).unwrap_or(u64::MAX);
        out.push((c"runs", Value::Int(runs)));
        return out;
    }
    // The state as RL.PEEK would see it now; `None` = holds nothing any more.
    let view = stored.carried_over(&rule, now_us).ok().flatten();
    let state = view.as_ref().map(|l| &l.state);
    match rule.algorithm() {
        Algorithm::SlidingWindow => {
            let (start, current, previous) = match state {
                Some(State::SlidingWindow(s)) => (s.window_start_us, s.current, s.previous),
                _ => (0, 0, 0),
            };
            out.push((c"window_start_us", Value::Int(start)));
            out.push((c"current", Value::Int(current)));
            out.push((c"previous", Value::Int(previous)));
        }
        Algorithm::FixedWindow => {
            let (start, count) = match state {
                Some(State::FixedWindow(s)) => (s.window_start_us, s.count),
                _ => (0, 0),
            };
            out.push((c"window_start_us", Value::Int(start)));
            out.push((c"count", Value::Int(count)));
        }
        Algorithm::Gcra => {
            let tat = match state {
                Some(State::Gcra(s)) => s.tat_us_ceil(&rule),
                _ => 0,
            };
            out.push((c"tat_us", Value::Int(tat)));
        }
        Algorithm::MovingWindow => {} // answered above, without a copy of the log
    }
    out
}

fn reply_map(ctx: Ctx, fields: &[(&'static CStr, Value)]) {
    let (Some(map), Some(text), Some(int)) = (
        unsafe { raw::RedisModule_ReplyWithMap },
        unsafe { raw::RedisModule_ReplyWithCString },
        unsafe { raw::RedisModule_ReplyWithLongLong },
    ) else {
        return;
    };
    unsafe { map(ctx, fields.len() as c_long) };
    for (name, value) in fields {
        unsafe { text(ctx, name.as_ptr()) };
        match value {
            Value::Int(v) => unsafe { int(ctx, i64::try_from(*v).unwrap_or(i64::MAX)) },
            Value::Text(t) => unsafe { text(ctx, t.as_ptr()) },
        };
    }
}
