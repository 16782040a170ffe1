//! Server time in microseconds since the Unix epoch.
//!
//! Redis 7.2+ and Valkey keep a per-command time snapshot (`RedisModule_CachedMicroseconds`): every
//! call inside one command, script or MULTI sees the same instant, as the server's own commands
//! do. Redis 7.0 has no such API (the pointer is `None` and calling it would crash), so there we
//! read the system clock once per command.

use std::time::{SystemTime, UNIX_EPOCH};

use redis_module::raw;

/// The time to decide a command with, in µs since the epoch.
pub fn now_us() -> u64 {
    // SAFETY: the API table is filled once at load time and never changes afterwards.
    if let Some(cached) = unsafe { raw::RedisModule_CachedMicroseconds } {
        let us = unsafe { cached() };
        return u64::try_from(us).unwrap_or(0);
    }
    system_now_us()
}

/// The system clock (`CLOCK_REALTIME`) in µs. On 64-bit Linux straight from `clock_gettime`:
/// `SystemTime::now().duration_since(UNIX_EPOCH)` spends ~150 instructions around the same call
/// (its checks and 128-bit arithmetic), on every command of Redis 7.0.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn system_now_us() -> u64 {
    /// `struct timespec` on 64-bit Linux.
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_REALTIME: i32 = 0;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec that lives through the call.
    if unsafe { clock_gettime(CLOCK_REALTIME, &mut ts) } != 0 {
        return portable_now_us();
    }
    match (u64::try_from(ts.tv_sec), u64::try_from(ts.tv_nsec)) {
        (Ok(s), Ok(ns)) => s
            .checked_mul(1_000_000)
            .and_then(|us| us.checked_add(ns / 1_000))
            .unwrap_or(u64::MAX),
        // Before 1970 (a clock set far back), as `duration_since` would say.
        _ => 0,
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn system_now_us() -> u64 {
    portable_now_us()
}

/// The system clock in µs, through `std`.
fn portable_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways read the same clock.
    #[test]
    fn the_fast_clock_is_the_system_clock() {
        let a = portable_now_us();
        let b = system_now_us();
        let c = portable_now_us();
        assert!(a <= b && b <= c, "{a} {b} {c}");
    }
}
