//! Lines in the server's log, from places that have no command context (type callbacks, the
//! panic hook).

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redis_module::raw;

/// Logs `msg` at `warning` level in the server log (stderr when not loaded in a server).
pub fn log_warning(msg: &str) {
    log(c"warning", msg);
}

/// Logs `msg` at `warning` level at most once a minute (with how many were held back), for
/// events that an outside party can repeat at will: the log must not be floodable.
pub fn log_warning_limited(msg: &str) {
    static LAST_SECS: AtomicU64 = AtomicU64::new(0);
    static HELD: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_SECS.load(Ordering::Relaxed);
    if last != 0 && now < last.saturating_add(60) {
        HELD.fetch_add(1, Ordering::Relaxed);
        return;
    }
    LAST_SECS.store(now.max(1), Ordering::Relaxed);
    match HELD.swap(0, Ordering::Relaxed) {
        0 => log_warning(msg),
        held => log_warning(&format!("{msg} ({held} more like it in the last minute)")),
    }
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
