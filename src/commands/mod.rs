//! The `RL.*` commands and the pipeline they share: check arity → parse → open the key once →
//! decide → write, expire, replicate → reply.
//!
//! Commands are registered with the raw API rather than the crate's `redis_command!`: that lets
//! every handler run under `catch_unwind`, read arguments without copying them into a `Vec`, and
//! reply with plain integers (the crate's wrappers allocate per argument and per reply).
//!
//! Writes are signalled explicitly: the module declares
//! `REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED`, so a denial that opened its key for writing
//! but changed nothing aborts no `WATCH` and sends no client-tracking invalidation; every real
//! write calls [`wrote`].

mod apply;
mod debug;
mod inspect;
mod limit;
mod registry;
mod setstate;

use std::ffi::{c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;

use crate::panic::payload_text;

pub(crate) use registry::register_all;

/// The raw server context of the command being run.
pub(crate) type Ctx = *mut raw::RedisModuleCtx;
/// One command argument.
pub(crate) type Arg = *mut raw::RedisModuleString;

/// How a command fails; becomes the error reply.
#[derive(Debug)]
pub(crate) enum CmdError {
    /// The server's standard wrong-arity error.
    WrongArity,
    /// A fixed message with its prefix (`ERR …`, `WRONGTYPE …`).
    Static(&'static CStr),
    /// A composed message with its prefix.
    Owned(String),
}

/// The standard wrong-type error.
pub(crate) const WRONGTYPE: CmdError =
    CmdError::Static(c"WRONGTYPE Operation against a key holding the wrong kind of value");

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

/// Runs a command body, turning its error or panic into an error reply.
pub(crate) fn run(
    ctx: Ctx,
    argv: *mut Arg,
    argc: c_int,
    body: fn(Ctx, &[Arg]) -> Result<(), CmdError>,
) -> c_int {
    let args: &[Arg] = match usize::try_from(argc) {
        // SAFETY: the server passes argc valid arguments.
        Ok(n) if !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, n) },
        _ => &[],
    };
    let result = match catch_unwind(AssertUnwindSafe(|| body(ctx, args))) {
        Ok(r) => r,
        Err(payload) => Err(CmdError::Owned(format!(
            "ERR internal error in ratelimit: {}; see the server log",
            payload_text(payload.as_ref())
        ))),
    };
    if let Err(e) = result {
        reply_error(ctx, &e);
    }
    raw::REDISMODULE_OK as c_int
}

fn reply_error(ctx: Ctx, e: &CmdError) {
    unsafe {
        match e {
            CmdError::WrongArity => {
                if let Some(f) = raw::RedisModule_WrongArity {
                    f(ctx);
                }
            }
            CmdError::Static(msg) => {
                if let Some(f) = raw::RedisModule_ReplyWithError {
                    f(ctx, msg.as_ptr());
                }
            }
            CmdError::Owned(msg) => {
                let text = CString::new(msg.replace(['\0', '\r', '\n'], " ")).unwrap_or_default();
                if let Some(f) = raw::RedisModule_ReplyWithError {
                    f(ctx, text.as_ptr());
                }
            }
        }
    }
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

/// Replies `+OK`.
pub(crate) fn reply_ok(ctx: Ctx) {
    if let Some(f) = unsafe { raw::RedisModule_ReplyWithSimpleString } {
        unsafe { f(ctx, c"OK".as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panicking_body(_: Ctx, args: &[Arg]) -> Result<(), CmdError> {
        // Indexing past the end: the kind of bug catch_unwind must contain.
        let _ = args[7];
        Ok(())
    }

    #[test]
    fn a_panicking_command_returns_to_the_server() {
        // Outside a server the reply functions are absent; what matters is that `run` returns.
        let status = run(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            panicking_body,
        );
        assert_eq!(status, raw::REDISMODULE_OK as c_int);
    }

    #[test]
    fn panic_payloads_become_text() {
        let caught = catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(payload_text(caught.as_ref()), "boom 1");
        let caught = catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(payload_text(caught.as_ref()), "static");
    }
}
