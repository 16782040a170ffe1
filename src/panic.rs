//! Keeping Rust panics inside the module.
//!
//! A panic that unwinds into the server aborts the whole process. Every `extern "C"` entry point
//! runs its body under [`guard`] (or [`crate::commands::run`] for commands), and the hook installed
//! by [`install_hook`] writes the panic's message and place to the server log.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::logging::log_warning;

/// Runs `f`; if it panics, returns `fallback` (the panic was already logged by the hook).
pub fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Text of a caught panic payload, for the error reply.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

/// Routes panic messages to the server log (stderr is often /dev/null under a service manager).
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        log_warning(&format!("ratelimit: internal error (panic): {info}"));
    }));
}
