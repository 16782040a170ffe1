//! Counters shown by `INFO ratelimit` (section `ratelimit_stats`), and the size of the rule table.
//!
//! Every counter is written on the server's main thread only (commands, keyspace callbacks,
//! defrag), so an increment is a relaxed load and store — no locked read-modify-write on the
//! hot path; atomics only so that `INFO` and the types stay sound. The exceptions are [`KEYS`],
//! [`RUNS`] and [`LEASES`], which the type's `free` callback also lowers on the lazyfree thread:
//! they change with [`Counter::add_shared`] / [`Counter::sub_shared`] only (once per key created
//! or freed, and once per write that changes a moving-window log's runs or a key's leases).

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::algo::Algorithm;

use redis_module::raw;

/// One counter.
pub struct Counter(AtomicU64);

impl Counter {
    /// Zero.
    pub const fn new() -> Counter {
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
/// Keys the TTL sweep has looked at.
pub static SWEEP_SCANNED: Counter = Counter::new();
/// Passes of the TTL sweep over every database completed.
pub static SWEEP_PASSES: Counter = Counter::new();

const FIELDS: [(&CStr, &Counter); 11] = [
    (c"allowed", &ALLOWED),
    (c"denied", &DENIED),
    (c"clamped", &CLAMPED),
    (c"ttl_repairs", &TTL_REPAIRS),
    (c"defrag_moves", &DEFRAG_MOVES),
    (c"keyspace_hook", &KEYSPACE_HOOK),
    (c"hits_refused", &HITS_REFUSED),
    (c"replica_mismatches", &REPLICA_MISMATCHES),
    (c"keys", &KEYS),
    (c"ttl_sweep_scanned", &SWEEP_SCANNED),
    (c"ttl_sweep_passes", &SWEEP_PASSES),
];

/// `CONFIG GET`-able settings shown in INFO too.
fn settings() -> [(&'static CStr, u64); 1] {
    [(
        c"ttl_sweep_rate",
        crate::config::SWEEP_RATE.load(Ordering::Relaxed),
    )]
}

/// Calls of one command, or decisions of one algorithm.
pub struct Calls {
    /// Calls (every one, errors included).
    pub calls: Counter,
    /// Answers that admitted (`allowed` 1, a lease granted).
    pub allowed: Counter,
    /// Answers that refused (`allowed` 0, no lease).
    pub denied: Counter,
    /// Error replies.
    pub errors: Counter,
}

impl Calls {
    /// All zero.
    pub const fn new() -> Calls {
        Calls {
            calls: Counter::new(),
            allowed: Counter::new(),
            denied: Counter::new(),
            errors: Counter::new(),
        }
    }

    /// Counts an answer.
    #[inline]
    pub fn verdict(&self, allowed: bool) {
        if allowed {
            self.allowed.add(1);
        } else {
            self.denied.add(1);
        }
    }
}

impl Default for Calls {
    fn default() -> Self {
        Calls::new()
    }
}

/// Per-command counters (INFO section `ratelimit_commands`, fields `<command>_calls` …).
pub mod cmd {
    use super::Calls;
    /// RL.ALLOW
    pub static RL_ALLOW: Calls = Calls::new();
    /// RL.PEEK
    pub static RL_PEEK: Calls = Calls::new();
    /// RL.ALLOWALL
    pub static RL_ALLOWALL: Calls = Calls::new();
    /// RL.PEEKALL
    pub static RL_PEEKALL: Calls = Calls::new();
    /// RL.CHARGE
    pub static RL_CHARGE: Calls = Calls::new();
    /// RL.REFUND
    pub static RL_REFUND: Calls = Calls::new();
    /// RL.THROTTLE
    pub static RL_THROTTLE: Calls = Calls::new();
    /// CL.THROTTLE
    pub static CL_THROTTLE: Calls = Calls::new();
    /// GCRA
    pub static GCRA: Calls = Calls::new();
    /// RL.ACQUIRE
    pub static RL_ACQUIRE: Calls = Calls::new();
    /// RL.RELEASE
    pub static RL_RELEASE: Calls = Calls::new();
    /// RL.INSPECT
    pub static RL_INSPECT: Calls = Calls::new();
    /// RL.SETSTATE
    pub static RL_SETSTATE: Calls = Calls::new();
    /// RL.APPLY
    pub static RL_APPLY: Calls = Calls::new();
    /// RL.DEBUG
    pub static RL_DEBUG: Calls = Calls::new();
}

const COMMANDS: [(&str, &Calls); 15] = [
    ("rl_allow", &cmd::RL_ALLOW),
    ("rl_peek", &cmd::RL_PEEK),
    ("rl_allowall", &cmd::RL_ALLOWALL),
    ("rl_peekall", &cmd::RL_PEEKALL),
    ("rl_charge", &cmd::RL_CHARGE),
    ("rl_refund", &cmd::RL_REFUND),
    ("rl_throttle", &cmd::RL_THROTTLE),
    ("cl_throttle", &cmd::CL_THROTTLE),
    ("gcra", &cmd::GCRA),
    ("rl_acquire", &cmd::RL_ACQUIRE),
    ("rl_release", &cmd::RL_RELEASE),
    ("rl_inspect", &cmd::RL_INSPECT),
    ("rl_setstate", &cmd::RL_SETSTATE),
    ("rl_apply", &cmd::RL_APPLY),
    ("rl_debug", &cmd::RL_DEBUG),
];

/// The command being run (set by `commands::run`; main thread only).
static CURRENT: AtomicPtr<Calls> = AtomicPtr::new(std::ptr::null_mut());

/// Starts counting a call of `command`: one call, and its answer goes to it ([`answered`]).
#[inline]
pub fn begin(command: &'static Calls) {
    command.calls.add(1);
    CURRENT.store(std::ptr::from_ref(command).cast_mut(), Ordering::Relaxed);
}

/// Counts the running command's answer.
#[inline]
pub fn answered(allowed: bool) {
    // SAFETY: CURRENT is null or one of the statics in `cmd`.
    if let Some(command) = unsafe { CURRENT.load(Ordering::Relaxed).as_ref() } {
        command.verdict(allowed);
    }
}

const ALGORITHMS: usize = Algorithm::ALL.len();

/// Per-algorithm counters (INFO section `ratelimit_algorithms`), indexed by `Algorithm as usize`.
static ALGOS: [Calls; ALGORITHMS] = [const { Calls::new() }; ALGORITHMS];

/// The counters of `algorithm`: one decision per key (a multi-key call counts each key).
#[inline]
pub fn algo(algorithm: Algorithm) -> &'static Calls {
    let i = algorithm as usize;
    ALGOS.get(i).unwrap_or(&ALGOS_FALLBACK)
}
static ALGOS_FALLBACK: Calls = Calls::new();

/// Limiter keys created by commands (or replicated effects) on this server.
pub static KEYS_CREATED: Counter = Counter::new();
/// Runs stored in every moving-window log in memory (a gauge: see `datatype`).
pub static RUNS: Counter = Counter::new();
/// Leases stored in every lease key in memory, expired ones not yet dropped included (a gauge).
pub static LEASES: Counter = Counter::new();
/// RL.CHARGE calls that charged more than was available (left a debt).
pub static DEBT_CHARGES: Counter = Counter::new();
/// Units RL.CHARGE charged beyond what was available (Σ of the debts made).
pub static DEBT_CHARGED: Counter = Counter::new();

const GAUGES: [(&CStr, &Counter); 5] = [
    (c"keys_created", &KEYS_CREATED),
    (c"moving_window_runs", &RUNS),
    (c"leases_stored", &LEASES),
    (c"debt_charges", &DEBT_CHARGES),
    (c"debt_charged", &DEBT_CHARGED),
];

/// The `INFO` callback: sections `ratelimit_stats` (totals and gauges), `ratelimit_commands`
/// (per command) and `ratelimit_algorithms` (per algorithm).
pub extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: std::ffi::c_int) {
    crate::panic::guard((), || {
        let (Some(section), Some(field)) = (unsafe { raw::RedisModule_InfoAddSection }, unsafe {
            raw::RedisModule_InfoAddFieldULongLong
        }) else {
            return;
        };
        unsafe { section(ctx, c"stats".as_ptr()) };
        for (name, counter) in FIELDS.iter().chain(GAUGES.iter()) {
            unsafe { field(ctx, name.as_ptr(), counter.get()) };
        }
        // The rule table that packed keys name (see `datatype::rules`).
        let (entries, bytes) = crate::datatype::rules::usage();
        unsafe { field(ctx, c"rule_table_entries".as_ptr(), entries) };
        unsafe { field(ctx, c"rule_table_bytes".as_ptr(), bytes) };
        for (name, value) in settings() {
            unsafe { field(ctx, name.as_ptr(), value) };
        }
        let put = |prefix: &str, calls: &Calls| {
            for (what, counter) in [
                ("calls", &calls.calls),
                ("allowed", &calls.allowed),
                ("denied", &calls.denied),
                ("errors", &calls.errors),
            ] {
                if let Ok(name) = CString::new(format!("{prefix}_{what}")) {
                    unsafe { field(ctx, name.as_ptr(), counter.get()) };
                }
            }
        };
        unsafe { section(ctx, c"commands".as_ptr()) };
        for (name, calls) in COMMANDS {
            put(name, calls);
        }
        unsafe { section(ctx, c"algorithms".as_ptr()) };
        for (algorithm, calls) in Algorithm::ALL.iter().zip(ALGOS.iter()) {
            put(&algorithm.name().replace('-', "_"), calls);
        }
    })
}

/// Registers [`info`] (replacing the crate's empty default).
pub fn register(ctx: *mut raw::RedisModuleCtx) {
    if let Some(register) = unsafe { raw::RedisModule_RegisterInfoFunc } {
        unsafe { register(ctx, Some(info)) };
    }
}
