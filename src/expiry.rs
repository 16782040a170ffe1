//! No limiter lives forever: every `ratelimit` key carries the TTL its state implies.
//!
//! Commands set it on every write. What can take it away, and what gives it back:
//! - `RESTORE key 0 …` creates a key without TTL. The type's `rdb_load` sees the key's name
//!   (RESTORE passes it, and says so in the module IO), so the key is queued and repaired by a
//!   module timer right after the command (see [`value_restored`]).
//! - `PERSIST key`: only a subscription to the server's generic keyspace events would see it,
//!   and such a subscription makes every `DEL`, `EXPIRE`, `SET … EX`, `RENAME` of *any* key enter
//!   the module (−5 to −6 % throughput measured on Redis 7.0). So by default the background sweep
//!   (`sweep`) finds such a key; module argument `ttl-hook yes` adds the subscription and repairs
//!   it right after the command.
//! - An RDB or AOF file that holds such keys (written by an older release, or replayed where no
//!   repair ran): while loading nothing may write; the sweep finds them afterwards.
//!
//! `COPY`, `RENAME`, `MOVE`, `SWAPDB` and `MIGRATE` carry the TTL along.
//!
//! **Where and when a repair runs.** On the master only (a node that is not loading and not a
//! replica), from a module timer — after the command that removed the TTL has been executed and
//! propagated, so replicas and the AOF receive `PEXPIREAT` (or `DEL`, for a state that is
//! already over) after the `PERSIST` / `RESTORE`, never before. (A write made inside a keyspace
//! notification would not do: Redis 7.0 replicates it *before* the command that caused it, and
//! the replica would apply `PEXPIREAT`, then `PERSIST`.) Replicas never repair on their own: the
//! master's effect reaches them, and a replica promoted to master starts repairing then.
//!
//! **Valkey.** On Valkey 8.1 up to the first release with valkey-io/valkey#4024, any module
//! subscribed to generic keyspace events makes `MOVE` and `COPY … DB n` leave the *calling*
//! connection on the destination database (the server runs subscribers on the executing client
//! and did not restore its database). There `ttl-hook yes` is refused with a log line, and the
//! sweep does the work (see [`hook_breaks_select`]).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Mutex;

use redis_module::raw;

use crate::datatype::key::LimiterKey;
use crate::ffi::{ceil_ms, wrote_generic, Arg, Ctx};
use crate::panic::guard;
use crate::replication::{replicate_del, replicate_pexpireat};
use crate::{clock, stats};

/// Most keys waiting for a repair after their command; more (a huge pipelined batch of
/// `RESTORE … 0`) are left to the sweep.
const QUEUE_CAP: usize = 65_536;
/// Most repairs one timer call does; the rest wait for the next event-loop turn.
const DRAIN_PER_CALL: usize = 1_024;

/// Gives the open (writable) limiter key `name` the expiry its state implies, if it has none,
/// and replicates that (`PEXPIREAT`, or `DEL` for a state that is over). Anything else — a
/// missing key, another type, a key with a TTL — is left alone. The caller is the master.
/// Returns whether the key held a limiter.
pub(crate) fn repair(ctx: Ctx, key: &mut LimiterKey, name: Arg, now_us: u64) -> bool {
    // The type, then the TTL, before the value: a packed state is unpacked only to be repaired.
    if !matches!(key.holds_limiter(), Ok(true)) {
        return false;
    }
    if key.expire_at_ms().is_some() {
        return true;
    }
    let expires_at_us = match key.get() {
        Ok(Some(limiter)) => limiter.expires_at_us(),
        _ => return false,
    };
    stats::TTL_REPAIRS.add(1);
    if expires_at_us <= now_us {
        key.delete();
        replicate_del(ctx, name);
        wrote_generic(ctx, name, c"del");
    } else {
        let at_ms = ceil_ms(expires_at_us);
        key.set_expire_at_ms(at_ms);
        replicate_pexpireat(ctx, name, at_ms);
        wrote_generic(ctx, name, c"expire");
    }
    true
}

/// Repairs the key `name` of database `db` (see [`repair`]); `ctx` is a timer's context.
/// Returns whether the key held a limiter.
pub(crate) fn repair_named(ctx: Ctx, db: c_int, name: &[u8]) -> bool {
    let (Some(select), Some(create), Some(free)) = (
        unsafe { raw::RedisModule_SelectDb },
        unsafe { raw::RedisModule_CreateString },
        unsafe { raw::RedisModule_FreeString },
    ) else {
        return false;
    };
    if unsafe { select(ctx, db) } != raw::REDISMODULE_OK as c_int {
        return false;
    }
    let arg = unsafe { create(ctx, name.as_ptr().cast::<c_char>(), name.len()) };
    if arg.is_null() {
        return false;
    }
    let held = {
        let mut key = LimiterKey::open(ctx, arg, true);
        repair(ctx, &mut key, arg, clock::now_us())
    };
    unsafe { free(ctx, arg) };
    held
}

/// Whether this server writes and replicates on its own: a master that is not loading data.
pub(crate) fn acts_as_master() -> bool {
    let Some(flags) = (unsafe { raw::RedisModule_GetContextFlags }) else {
        return false;
    };
    // SAFETY: a NULL context asks for the server-wide flags only (Redis 7.0+, Valkey).
    let flags = unsafe { flags(std::ptr::null_mut()) } as u32;
    flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
        && flags & (raw::REDISMODULE_CTX_FLAGS_LOADING | raw::REDISMODULE_CTX_FLAGS_ASYNC_LOADING)
            == 0
}

// ---- keys waiting for a repair right after their command ----------------------------------------

struct Queue {
    keys: Vec<(c_int, Vec<u8>)>,
    /// A timer that drains the queue is pending.
    armed: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    keys: Vec::new(),
    armed: false,
});

/// Queues `name` of database `db` for a repair by a timer that fires right after the current
/// command (at the end of this event-loop turn). `ctx`: any context of this module.
fn enqueue(ctx: Ctx, db: c_int, name: &[u8]) {
    let Ok(mut queue) = QUEUE.lock() else {
        return;
    };
    if queue.keys.len() < QUEUE_CAP {
        queue.keys.push((db, name.to_vec()));
    } else {
        crate::sweep::request();
    }
    if !queue.armed {
        queue.armed = arm(ctx);
    }
}

fn arm(ctx: Ctx) -> bool {
    let Some(create_timer) = (unsafe { raw::RedisModule_CreateTimer }) else {
        return false;
    };
    unsafe { create_timer(ctx, 0, Some(drain), std::ptr::null_mut()) };
    true
}

extern "C" fn drain(ctx: Ctx, _data: *mut c_void) {
    guard((), || {
        let batch: Vec<(c_int, Vec<u8>)> = {
            let Ok(mut queue) = QUEUE.lock() else {
                return;
            };
            let n = queue.keys.len().min(DRAIN_PER_CALL);
            let batch = queue.keys.drain(..n).collect();
            queue.armed = !queue.keys.is_empty() && arm(ctx);
            batch
        };
        if acts_as_master() {
            for (db, name) in &batch {
                if !repair_named(ctx, *db, name) {
                    // Gone from where the command left it: renamed or moved in the same
                    // event-loop turn (MULTI, a script, a pipeline), maybe still without a TTL.
                    crate::sweep::request();
                }
            }
        }
    })
}

/// Called by the type's `copy` callback: a `COPY` in the same event-loop turn as a `RESTORE` or
/// `PERSIST` still waiting for its repair may have copied a key without TTL, which only a sweep
/// pass would find.
pub(crate) fn value_copied() {
    if QUEUE.lock().is_ok_and(|q| !q.keys.is_empty()) {
        crate::sweep::request();
    }
}

/// Called by the type's `rdb_load` for each value it decoded: during `RESTORE` (the module IO
/// then names the key, and the server is not loading a file or a full sync) on a master, the key
/// is queued for a repair right after the command — a `RESTORE … 0` leaves it without TTL.
pub(crate) fn value_restored(io: *mut raw::RedisModuleIO) {
    if stats::KEYSPACE_HOOK.get() == 1 || !acts_as_master() {
        return; // the hook sees `restore` events itself; replicas and loads never repair
    }
    let (Some(name_of), Some(db_of), Some(ctx_of)) = (
        unsafe { raw::RedisModule_GetKeyNameFromIO },
        unsafe { raw::RedisModule_GetDbIdFromIO },
        unsafe { raw::RedisModule_GetContextFromIO },
    ) else {
        return;
    };
    let name = unsafe { name_of(io) };
    if name.is_null() {
        return; // not a key of the keyspace (e.g. another module's RM_LoadDataTypeFromString)
    }
    let db = unsafe { db_of(io) };
    let ctx = unsafe { ctx_of(io) };
    if !ctx.is_null() {
        enqueue(ctx, db, crate::ffi::arg_bytes(name.cast_mut()));
    }
}

// ---- the optional keyspace hook -----------------------------------------------------------------

/// Valkey releases `[from, to)` on which a module subscribed to generic keyspace events breaks
/// `MOVE` / `COPY … DB` for its callers: introduced by valkey-io/valkey#1819 (first released in
/// 8.1.0), fixed by valkey-io/valkey#4024 (merged into `unstable` on 2026-06-23, so first
/// released in 9.2.0; no backport to 8.1, 9.0 or 9.1 appears in their release notes).
const HOOK_BREAKS_SELECT: [(Version, Version); 1] = [((8, 1, 0), (9, 2, 0))];

/// `(major, minor, patch)`.
type Version = (u32, u32, u32);

/// Whether subscribing to generic keyspace events would break `MOVE` / `COPY … DB` on this
/// server (`valkey`: its `valkey_version`, `None` for Redis).
pub fn hook_breaks_select(valkey: Option<Version>) -> bool {
    valkey.is_some_and(|v| {
        HOOK_BREAKS_SELECT
            .iter()
            .any(|(from, to)| *from <= v && v < *to)
    })
}

/// Subscribes [`on_generic_event`] to the server's generic keyspace events (module argument
/// `ttl-hook yes`), unless the server is one where that breaks `MOVE` / `COPY … DB` for every
/// client (see [`hook_breaks_select`]): then it logs why and leaves the work to the sweep.
pub(crate) fn subscribe(ctx: Ctx) -> Result<(), String> {
    let version = valkey_version(ctx);
    if hook_breaks_select(version) {
        let (a, b, c) = version.unwrap_or_default();
        crate::logging::log_warning(&format!(
            "ratelimit: ttl-hook yes ignored on Valkey {a}.{b}.{c}: a module subscribed to \
             generic keyspace events breaks MOVE / COPY … DB for every client there \
             (valkey-io/valkey#4024, fixed in 9.2.0); the TTL sweep repairs PERSIST instead"
        ));
        return Ok(());
    }
    let Some(subscribe) = (unsafe { raw::RedisModule_SubscribeToKeyspaceEvents }) else {
        return Err("the server lacks RedisModule_SubscribeToKeyspaceEvents".into());
    };
    let status = unsafe { subscribe(ctx, raw::REDISMODULE_NOTIFY_GENERIC, Some(on_generic_event)) };
    if status == raw::REDISMODULE_OK as c_int {
        stats::KEYSPACE_HOOK.set(1);
        Ok(())
    } else {
        Err("could not subscribe to keyspace events".into())
    }
}

/// `(major, minor, patch)` of a Valkey server (`None` for Redis), from `INFO server`.
fn valkey_version(ctx: Ctx) -> Option<Version> {
    let (Some(get), Some(field), Some(free)) = (
        unsafe { raw::RedisModule_GetServerInfo },
        unsafe { raw::RedisModule_ServerInfoGetFieldC },
        unsafe { raw::RedisModule_FreeServerInfo },
    ) else {
        return None;
    };
    let info = unsafe { get(ctx, c"server".as_ptr()) };
    if info.is_null() {
        return None;
    }
    let value = unsafe { field(info, c"valkey_version".as_ptr()) };
    let version = (!value.is_null())
        .then(|| parse_version(&unsafe { CStr::from_ptr(value) }.to_string_lossy()));
    unsafe { free(ctx, info) };
    version
}

/// `"8.1.8"` → `(8, 1, 8)`; missing or unreadable parts are 0.
fn parse_version(text: &str) -> Version {
    let mut parts = text
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

extern "C" fn on_generic_event(
    ctx: Ctx,
    _class: c_int,
    event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    guard(0, || {
        if event.is_null() || key.is_null() {
            return 0;
        }
        let event = unsafe { CStr::from_ptr(event) }.to_bytes();
        if !matches!(event, b"persist" | b"restore") || !acts_as_master() {
            return 0;
        }
        // Only a limiter left without a TTL is queued: the repair of a key that is gone by then
        // asks for a sweep pass (it may have been renamed), which other keys must not cause.
        let without_ttl = {
            let open = LimiterKey::open(ctx, key, false);
            matches!(open.holds_limiter(), Ok(true)) && open.expire_at_ms().is_none()
        };
        let db = match unsafe { raw::RedisModule_GetSelectedDb } {
            Some(selected) => unsafe { selected(ctx) },
            None => return 0,
        };
        if without_ttl {
            enqueue(ctx, db, crate::ffi::arg_bytes(key));
        }
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valkey_range_that_breaks_select() {
        assert!(!hook_breaks_select(None)); // Redis
        assert!(!hook_breaks_select(Some((8, 0, 9))));
        assert!(hook_breaks_select(Some((8, 1, 0))));
        assert!(hook_breaks_select(Some((8, 1, 8))));
        assert!(hook_breaks_select(Some((9, 1, 1))));
        assert!(!hook_breaks_select(Some((9, 2, 0))));
        assert!(!hook_breaks_select(Some((255, 255, 255)))); // unstable builds
        assert_eq!(parse_version("8.1.8"), (8, 1, 8));
        assert_eq!(parse_version("9.2.0-rc1"), (9, 2, 0));
        assert_eq!(parse_version("x"), (0, 0, 0));
    }
}
