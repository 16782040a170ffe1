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
//! write calls [`wrote`](crate::ffi::wrote).

mod apply;
mod debug;
mod effects;
mod inspect;
mod lease;
mod limit;
mod multi;
mod registry;
mod setstate;
mod settle;
mod throttle;

use std::ffi::{c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;

use crate::panic::payload_text;

pub(crate) use registry::register_all;

use crate::ffi::{Arg, Ctx};

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

/// Runs a command body, turning its error or panic into an error reply; counts the call (and
/// its error) in `command`'s INFO counters.
pub(crate) fn run(
    command: &'static crate::stats::Calls,
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
    crate::stats::begin(command);
    let result = match catch_unwind(AssertUnwindSafe(|| body(ctx, args))) {
        Ok(r) => r,
        Err(payload) => Err(CmdError::Owned(format!(
            "ERR internal error in ratelimit: {}; see the server log",
            payload_text(payload.as_ref())
        ))),
    };
    if let Err(e) = result {
        command.errors.add(1);
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
            &crate::stats::cmd::RL_DEBUG,
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
