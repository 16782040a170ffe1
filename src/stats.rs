//! Counters shown by `INFO ratelimit` (section `ratelimit_stats`).
//!
//! Relaxed atomics: commands run on the main thread, but the server may call type callbacks
//! (free, defrag) from others, and nothing orders one counter against another.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::raw;

/// One counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// RL.ALLOW calls that admitted (and charged) a request.
pub static ALLOWED: Counter = Counter::new();
/// RL.ALLOW calls that denied a request.
pub static DENIED: Counter = Counter::new();
/// Stored states read as the most restrictive state possible at `now` (a clock step back).
pub static CLAMPED: Counter = Counter::new();
/// Keys that had lost their TTL (PERSIST, RESTORE … 0) and were given the one their state implies.
pub static TTL_REPAIRS: Counter = Counter::new();
/// Values moved by active defrag.
pub static DEFRAG_MOVES: Counter = Counter::new();
/// 1 when the module gives a TTL back right after `PERSIST` / `RESTORE … 0` (its keyspace-event
/// hook); 0 where the next `RL.ALLOW` does it instead (Valkey 8.1+, see `expiry`).
pub static KEYSPACE_HOOK: Counter = Counter::new();

const FIELDS: [(&CStr, &Counter); 6] = [
    (c"allowed", &ALLOWED),
    (c"denied", &DENIED),
    (c"clamped", &CLAMPED),
    (c"ttl_repairs", &TTL_REPAIRS),
    (c"defrag_moves", &DEFRAG_MOVES),
    (c"keyspace_hook", &KEYSPACE_HOOK),
];

/// The `INFO` callback: section `ratelimit_stats` with one field per counter.
pub extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: std::ffi::c_int) {
    crate::panic::guard((), || {
        let (Some(section), Some(field)) = (unsafe { raw::RedisModule_InfoAddSection }, unsafe {
            raw::RedisModule_InfoAddFieldULongLong
        }) else {
            return;
        };
        unsafe { section(ctx, c"stats".as_ptr()) };
        for (name, counter) in FIELDS {
            unsafe { field(ctx, name.as_ptr(), counter.get()) };
        }
    })
}

/// Registers [`info`] (replacing the crate's empty default).
pub fn register(ctx: *mut raw::RedisModuleCtx) {
    if let Some(register) = unsafe { raw::RedisModule_RegisterInfoFunc } {
        unsafe { register(ctx, Some(info)) };
    }
}
