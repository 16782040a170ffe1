//! The TTL sweep: passes over every database with `RedisModule_Scan`, a bounded number of keys
//! per timer tick, that repair any limiter key found without a TTL (see `expiry`). It is what
//! catches `PERSIST` on a limiter key (unless `ttl-hook yes`) and keys without TTL loaded from an
//! RDB or AOF file.
//!
//! **When.** A pass runs only when something may have left a limiter key without a TTL: a
//! `PERSIST` was executed (the server's `cmdstat_persist` call count moved — on any key: the
//! server does not say which), an RDB / AOF / full-sync load ended, this node became a master,
//! or `expiry` asks (a key queued for a repair was renamed, moved or copied in the same
//! event-loop turn; more `RESTORE`s in one turn than the queue holds). (No limiter key can exist
//! before the module is loaded, so loading it needs no pass.) A trigger that arrives during a
//! pass starts another one after it; so does a `RENAME`, `RENAMENX`, `MOVE`, `COPY` or `SWAPDB`
//! during a pass, as the key it moved may land where the pass has already been.
//! Every [`IDLE_INTERVAL_MS`] the master looks for triggers (one `INFO commandstats` read, about
//! 10–40 µs); it does nothing at all while the server holds no limiter value (`INFO ratelimit`
//! `keys` is 0), on a replica and while loading.
//!
//! **Cost of a pass.** A tick looks at up to `rate × INTERVAL_MS / 1000` keys (module argument
//! `ttl-sweep-rate`, default [`crate::config::DEFAULT_SWEEP_RATE`]); a scan step that finds only
//! empty hash-table slots counts as one key, so a tick's work is bounded whatever the tables
//! look like. The server's scan costs 0.8–1.4 µs per key (measured on Redis 7.0, 100,000 to
//! 1,000,000 keys), so the default rate takes about 0.5 % of the server's time during a pass.
//!
//! **Bound.** A limiter key that loses its TTL at `t` (or, still without one, is renamed, moved
//! or copied at `t`) is found by the pass that starts after the next look at the latest: it has its TTL back by `t + 1 s + 2 × (K + S) / rate`, where K counts
//! the keys of every database and S the scan steps that met only empty slots — 0.4 K to 1.2 K
//! while the hash tables are between full and half full, up to 9 K right after mass deletions
//! (tables shrink below 10 % full). `SCAN` guarantees that a key present for a whole pass is
//! returned in it.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};

use redis_module::raw;

use crate::datatype::key::is_limiter_without_ttl;
use crate::expiry::{acts_as_master, repair_named};
use crate::ffi::{arg_bytes, Ctx};
use crate::panic::guard;
use crate::stats;

/// Time between two ticks during a pass.
pub const INTERVAL_MS: u64 = 100;
/// Time between two looks for a trigger when no pass is under way.
pub const IDLE_INTERVAL_MS: u64 = 1_000;

/// A pass was asked for: by a server event (a load ended, this node became a master) or by
/// `expiry` (a key queued for a repair was gone, or copied, before its repair).
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks for a pass (started by the next tick).
pub(crate) fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

struct Sweep {
    /// A pass is under way.
    running: bool,
    /// Another pass must follow the current one.
    again: bool,
    /// `PERSIST` calls when last looked at.
    persists: u64,
    /// `RENAME`, `RENAMENX`, `MOVE`, `COPY`, `SWAPDB` calls when last looked at.
    moves: u64,
    /// The database being walked.
    db: c_int,
    cursor: *mut raw::RedisModuleScanCursor,
}

/// What one scan step found.
struct Step<'a> {
    db: c_int,
    visited: u64,
    found: &'a mut Vec<(c_int, Vec<u8>)>,
}

/// Starts the sweep's timer. Its rate is the config `ratelimit.ttl-sweep-rate`, read on every
/// tick (`CONFIG SET` takes effect at the next one); while it is 0 a tick does nothing.
pub(crate) fn start(ctx: Ctx) -> Result<(), String> {
    let (Some(create_cursor), Some(_), Some(_), Some(_), Some(_), Some(subscribe)) = (
        unsafe { raw::RedisModule_ScanCursorCreate },
        unsafe { raw::RedisModule_Scan },
        unsafe { raw::RedisModule_DbSize },
        unsafe { raw::RedisModule_SelectDb },
        unsafe { raw::RedisModule_CreateTimer },
        unsafe { raw::RedisModule_SubscribeToServerEvent },
    ) else {
        return Err("the server lacks the scan, timer or event API the TTL sweep needs".into());
    };
    for id in [
        raw::REDISMODULE_EVENT_LOADING,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
    ] {
        let event = raw::RedisModuleEvent { id, dataver: 1 };
        unsafe { subscribe(ctx, event, Some(on_server_event)) };
    }
    let sweep = Box::new(Sweep {
        running: false,
        again: false,
        persists: 0,
        moves: 0,
        db: 0,
        cursor: unsafe { create_cursor() },
    });
    schedule(ctx, Box::into_raw(sweep).cast(), INTERVAL_MS);
    Ok(())
}

extern "C" fn on_server_event(
    _ctx: Ctx,
    event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    guard((), || {
        let loaded = event.id == raw::REDISMODULE_EVENT_LOADING
            && subevent == raw::REDISMODULE_SUBEVENT_LOADING_ENDED;
        let promoted = event.id == raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED
            && subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER;
        if loaded || promoted {
            REQUESTED.store(true, Ordering::Relaxed);
        }
    })
}

/// Keys per second the sweep may look at (`ratelimit.ttl-sweep-rate`; 0: paused).
fn rate() -> u64 {
    crate::config::SWEEP_RATE.load(Ordering::Relaxed)
}

fn schedule(ctx: Ctx, sweep: *mut c_void, after_ms: u64) {
    if let Some(create_timer) = unsafe { raw::RedisModule_CreateTimer } {
        unsafe { create_timer(ctx, after_ms as raw::mstime_t, Some(tick), sweep) };
    }
}

extern "C" fn tick(ctx: Ctx, data: *mut c_void) {
    let running = guard(false, || {
        // SAFETY: `data` is the Box made by `start`, alive for the module's lifetime (a module
        // with a data type cannot be unloaded) and used by this timer only.
        let Some(sweep) = (unsafe { data.cast::<Sweep>().as_mut() }) else {
            return false;
        };
        if rate() > 0 && stats::KEYS.get() > 0 && acts_as_master() {
            sweep.tick(ctx);
        }
        sweep.running
    });
    let after = if running {
        INTERVAL_MS
    } else {
        IDLE_INTERVAL_MS
    };
    guard((), || schedule(ctx, data, after));
}

impl Sweep {
    fn tick(&mut self, ctx: Ctx) {
        if REQUESTED.swap(false, Ordering::Relaxed) {
            self.again = true;
        }
        let (persists, moves) = calls(ctx);
        // The hook (when on) repairs PERSIST itself; else any PERSIST may have hit a limiter.
        if persists != self.persists && stats::KEYSPACE_HOOK.get() == 0 {
            self.again = true;
        }
        // A key renamed, moved or copied during a pass may land where the pass has been.
        if moves != self.moves && self.running {
            self.again = true;
        }
        self.persists = persists;
        self.moves = moves;
        if !self.running && self.again {
            self.running = true;
            self.again = false;
            self.db = 0;
            if let Some(restart) = unsafe { raw::RedisModule_ScanCursorRestart } {
                unsafe { restart(self.cursor) };
            }
        }
        if self.running {
            self.scan(ctx);
        }
    }

    /// Scans up to `per_tick` keys from where the last tick stopped, ending the pass after the
    /// last database, then repairs what it found.
    fn scan(&mut self, ctx: Ctx) {
        let (Some(select), Some(dbsize), Some(scan), Some(restart)) = (
            unsafe { raw::RedisModule_SelectDb },
            unsafe { raw::RedisModule_DbSize },
            unsafe { raw::RedisModule_Scan },
            unsafe { raw::RedisModule_ScanCursorRestart },
        ) else {
            return;
        };
        let mut found = Vec::new();
        // Keys (or empty scan steps) one tick may look at.
        let mut budget = (rate().saturating_mul(INTERVAL_MS) / 1000).max(1);
        while budget > 0 {
            if unsafe { select(ctx, self.db) } != raw::REDISMODULE_OK as c_int {
                // Past the last database: the pass is complete.
                self.running = false;
                stats::SWEEP_PASSES.add(1);
                break;
            }
            if unsafe { dbsize(ctx) } == 0 {
                self.next_db(restart);
                budget = budget.saturating_sub(1);
                continue;
            }
            let mut step = Step {
                db: self.db,
                visited: 0,
                found: &mut found,
            };
            let more = unsafe {
                scan(
                    ctx,
                    self.cursor,
                    Some(on_key),
                    (&raw mut step).cast::<c_void>(),
                )
            };
            stats::SWEEP_SCANNED.add(step.visited);
            budget = budget.saturating_sub(step.visited.max(1));
            if more == 0 {
                self.next_db(restart);
            }
        }
        for (db, name) in &found {
            repair_named(ctx, *db, name);
        }
    }

    fn next_db(&mut self, restart: unsafe extern "C" fn(*mut raw::RedisModuleScanCursor)) {
        self.db = self.db.saturating_add(1);
        unsafe { restart(self.cursor) };
    }
}

/// How many times `PERSIST` ran, and how many times `RENAME`, `RENAMENX`, `MOVE`, `COPY` and
/// `SWAPDB` did (`INFO commandstats`: `cmdstat_persist:calls=N,…`); 0 for a command that never
/// ran or a server that does not say.
fn calls(ctx: Ctx) -> (u64, u64) {
    let (Some(get), Some(field), Some(free)) = (
        unsafe { raw::RedisModule_GetServerInfo },
        unsafe { raw::RedisModule_ServerInfoGetFieldC },
        unsafe { raw::RedisModule_FreeServerInfo },
    ) else {
        return (0, 0);
    };
    let info = unsafe { get(ctx, c"commandstats".as_ptr()) };
    if info.is_null() {
        return (0, 0);
    }
    let count = |name: &CStr| {
        let value = unsafe { field(info, name.as_ptr()) };
        if value.is_null() {
            0
        } else {
            calls_of(unsafe { CStr::from_ptr(value) }.to_bytes())
        }
    };
    let persists = count(c"cmdstat_persist");
    let moves = [
        c"cmdstat_rename",
        c"cmdstat_renamenx",
        c"cmdstat_move",
        c"cmdstat_copy",
        c"cmdstat_swapdb",
    ]
    .into_iter()
    .map(count)
    .fold(0u64, u64::saturating_add);
    unsafe { free(ctx, info) };
    (persists, moves)
}

/// `calls=12,usec=…` → 12.
fn calls_of(stat: &[u8]) -> u64 {
    stat.split(|&b| b == b',')
        .find_map(|part| part.strip_prefix(b"calls="))
        .and_then(|n| std::str::from_utf8(n).ok()?.parse().ok())
        .unwrap_or(0)
}

extern "C" fn on_key(
    _ctx: Ctx,
    name: *mut raw::RedisModuleString,
    key: *mut raw::RedisModuleKey,
    data: *mut c_void,
) {
    guard((), || {
        // SAFETY: `data` is the `Step` that `scan` passed to this scan call, alive during it.
        let Some(step) = (unsafe { data.cast::<Step>().as_mut() }) else {
            return;
        };
        step.visited = step.visited.saturating_add(1);
        if !key.is_null() && !name.is_null() && is_limiter_without_ttl(key) {
            step.found.push((step.db, arg_bytes(name).to_vec()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::calls_of;

    #[test]
    fn persist_calls_from_commandstats() {
        assert_eq!(
            calls_of(b"calls=12,usec=40,usec_per_call=3.33,rejected_calls=0,failed_calls=0"),
            12
        );
        assert_eq!(calls_of(b"usec=1,calls=7"), 7);
        assert_eq!(calls_of(b"garbage"), 0);
        assert_eq!(calls_of(b""), 0);
    }
}
