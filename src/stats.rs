//! Counters shown by `INFO ratelimit` (section `ratelimit_stats`).
//!
//! Every counter is written on the server's main thread only (commands, keyspace callbacks,
//! defrag), so an increment is a relaxed load and store — no locked read-modify-write on the
//! hot path; atomics only so that `INFO` and the types stay sound. The one exception is
//! [`KEYS`], which the type's `free` callback also lowers on the lazyfree thread: it changes with
//! [`Counter::add_shared`] / [`Counter::sub_shared`] only (once per key created or freed).

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

    /// Adds `n` from any thread (a locked read-modify-write).
    pub fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from any thread (a locked read-modify-write).
    pub fn sub_shared(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Sets the value (a setting shown in INFO; main thread only).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
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
/// Keys that had lost their TTL (PERSIST, RESTORE … 0, a loaded file) and were given the one
/// their state implies (or deleted, when that state was over).
pub static TTL_REPAIRS: Counter = Counter::new();
/// Values moved by active defrag.
pub static DEFRAG_MOVES: Counter = Counter::new();
/// `RL.APPLY` payloads refused (a newer master's hit this release cannot replay, or garbage).
pub static HITS_REFUSED: Counter = Counter::new();
/// Replayed moving-window hits after which the log differed from what the master reported.
pub static REPLICA_MISMATCHES: Counter = Counter::new();
/// 1 when the module is subscribed to generic keyspace events (module argument `ttl-hook yes`,
/// on a server where that is safe) and repairs `PERSIST` right after the command; 0 otherwise.
pub static KEYSPACE_HOOK: Counter = Counter::new();
/// Limiter values in memory: the `ratelimit` keys of every database (plus, on a replica, those of
/// a full sync being loaded). The TTL sweep does nothing while this is 0. Shared: see above.
pub static KEYS: Counter = Counter::new();
/// The TTL sweep's rate (module argument `ttl-sweep-rate`), keys per second; 0 = no sweep.
pub static SWEEP_RATE: Counter = Counter::new();
/// Keys the TTL sweep has looked at.
pub static SWEEP_SCANNED: Counter = Counter::new();
/// Passes of the TTL sweep over every database completed.
pub static SWEEP_PASSES: Counter = Counter::new();

const FIELDS: [(&CStr, &Counter); 12] = [
    (c"allowed", &ALLOWED),
    (c"denied", &DENIED),
    (c"clamped", &CLAMPED),
    (c"ttl_repairs", &TTL_REPAIRS),
    (c"defrag_moves", &DEFRAG_MOVES),
    (c"keyspace_hook", &KEYSPACE_HOOK),
    (c"hits_refused", &HITS_REFUSED),
    (c"replica_mismatches", &REPLICA_MISMATCHES),
    (c"keys", &KEYS),
    (c"ttl_sweep_rate", &SWEEP_RATE),
    (c"ttl_sweep_scanned", &SWEEP_SCANNED),
    (c"ttl_sweep_passes", &SWEEP_PASSES),
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
