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

/// A line that an outside party can make the module write at will (a refused `RESTORE`, a
/// replayed hit that disagrees): the log must not be floodable. Each source has its own
/// [`Limited`], so one source never holds back another's lines.
pub struct Limited {
    last_secs: AtomicU64,
    held: AtomicU64,
}

impl Limited {
    /// A source that has logged nothing yet.
    pub const fn new() -> Limited {
        Limited {
            last_secs: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// Logs `msg` at `warning` level at most once a minute, saying how many were held back
    /// since the last one; the ones held back go to the `verbose` level (where the server logs
    /// its own `RESTORE` errors), so a server run at `loglevel verbose` still sees each.
    pub fn warning(&self, msg: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_secs.load(Ordering::Relaxed);
        if last != 0 && now < last.saturating_add(60) {
            self.held.fetch_add(1, Ordering::Relaxed);
            log(c"verbose", msg);
            return;
        }
        self.last_secs.store(now.max(1), Ordering::Relaxed);
        match self.held.swap(0, Ordering::Relaxed) {
            0 => log_warning(msg),
            held => log_warning(&format!(
                "{msg} ({held} more like it since the last such line, at verbose level)"
            )),
        }
    }
}

impl Default for Limited {
    fn default() -> Self {
        Limited::new()
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
