//! Counters shown by `INFO ratelimit` (section `ratelimit_stats`).
//!
//! Every counter is written on the server's main thread only (commands, keyspace callbacks,
//! defrag), so an increment is a relaxed load and store — no locked read-modify-write on the
//! hot path; atomics only so that `INFO` and the types stay sound.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::raw;

/// One counter.
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds `n` (main thread only: see the module docs).
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed).wrapping_add(n);
        self.0.store(v, Ordering::Relaxed);
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
/// `RL.APPLY` payloads refused (a newer master's hit this release cannot replay, or garbage).
pub static HITS_REFUSED: Counter = Counter::new();
/// Replayed moving-window hits after which the log differed from what the master reported.
pub static REPLICA_MISMATCHES: Counter = Counter::new();
/// 1 when the module gives a TTL back right after `PERSIST` / `RESTORE … 0` (its keyspace-event
/// hook); 0 where the next `RL.ALLOW` does it instead (Valkey 8.1+, see `expiry`).
pub static KEYSPACE_HOOK: Counter = Counter::new();

const FIELDS: [(&CStr, &Counter); 8] = [
    (c"allowed", &ALLOWED),
    (c"denied", &DENIED),
    (c"clamped", &CLAMPED),
    (c"ttl_repairs", &TTL_REPAIRS),
    (c"defrag_moves", &DEFRAG_MOVES),
    (c"keyspace_hook", &KEYSPACE_HOOK),
    (c"hits_refused", &HITS_REFUSED),
    (c"replica_mismatches", &REPLICA_MISMATCHES),
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
