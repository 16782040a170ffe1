//! Lines in the server's log, from places that have no command context (type callbacks, the
//! panic hook).

use std::ffi::CString;

use redis_module::raw;

/// Logs `msg` at `warning` level in the server log (stderr when not loaded in a server).
pub fn log_warning(msg: &str) {
    log(c"warning", msg);
}

/// Logs `msg` at `notice` level.
pub fn log_notice(msg: &str) {
    log(c"notice", msg);
}

fn log(level: &std::ffi::CStr, msg: &str) {
    // SAFETY: the API table is filled at load time; a NULL context is allowed by RM_Log.
    match unsafe { raw::RedisModule_Log } {
        Some(log) => {
            let text = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
            unsafe {
                log(
                    std::ptr::null_mut(),
                    level.as_ptr(),
                    c"%s".as_ptr(),
                    text.as_ptr(),
                )
            };
        }
        None => eprintln!("{msg}"),
    }
}
