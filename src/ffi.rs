//! The raw-API vocabulary every glue file shares: the context and argument aliases, argument
//! bytes, integer replies, write signalling and ms rounding.
//!
//! It sits below the command handlers, replication, expiry and the data type: none of those
//! imports from another's module for these helpers.

use std::ffi::{c_int, CStr};

use redis_module::raw;

/// The raw server context of the command (or callback) being run.
pub(crate) type Ctx = *mut raw::RedisModuleCtx;
/// One command argument (a server string).
pub(crate) type Arg = *mut raw::RedisModuleString;

/// Borrowed bytes of an argument.
pub(crate) fn arg_bytes<'a>(arg: Arg) -> &'a [u8] {
    let Some(ptr_len) = (unsafe { raw::RedisModule_StringPtrLen }) else {
        return &[];
    };
    let mut len = 0usize;
    // SAFETY: the server keeps argv alive for the whole command.
    let ptr = unsafe { ptr_len(arg, &mut len) };
    if ptr.is_null() {
        return &[];
    }
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// Replies with an array of integers.
pub(crate) fn reply_integers(ctx: Ctx, values: &[i64]) {
    unsafe {
        if let (Some(array), Some(int)) = (
            raw::RedisModule_ReplyWithArray,
            raw::RedisModule_ReplyWithLongLong,
        ) {
            array(ctx, values.len() as std::ffi::c_long);
            for &v in values {
                int(ctx, v);
            }
        }
    }
}

/// Replies `+OK`.
pub(crate) fn reply_ok(ctx: Ctx) {
    if let Some(f) = unsafe { raw::RedisModule_ReplyWithSimpleString } {
        unsafe { f(ctx, c"OK".as_ptr()) };
    }
}

/// Signals a real write of `key`: `WATCH`/client tracking (signal modified) and a keyspace
/// notification `event` of the module class (`notify-keyspace-events` flag `d`).
pub(crate) fn wrote(ctx: Ctx, key: Arg, event: &CStr) {
    signal_and_notify(ctx, key, raw::REDISMODULE_NOTIFY_MODULE, event);
}

/// As [`wrote`], for a server-level change (`expire`, `del`: the generic class, flag `g`).
pub(crate) fn wrote_generic(ctx: Ctx, key: Arg, event: &CStr) {
    signal_and_notify(ctx, key, raw::REDISMODULE_NOTIFY_GENERIC, event);
}

fn signal_and_notify(ctx: Ctx, key: Arg, class: c_int, event: &CStr) {
    unsafe {
        if let Some(signal) = raw::RedisModule_SignalModifiedKey {
            signal(ctx, key);
        }
        if let Some(notify) = raw::RedisModule_NotifyKeyspaceEvent {
            notify(ctx, class, event.as_ptr(), key);
        }
    }
}

/// µs → whole ms, rounded up, as a reply integer.
pub(crate) fn ceil_ms(us: u64) -> i64 {
    i64::try_from(us.div_ceil(1000)).unwrap_or(i64::MAX)
}
