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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
