//! No limiter lives forever: every `ratelimit` key carries the TTL its state implies.
//!
//! **Valkey 8.1 and later.** There, a module subscribed to generic keyspace events makes
//! `MOVE` and `COPY … DB n` leave the *calling* connection on the destination database (the
//! server runs subscribers on the executing client and does not restore its database:
//! valkey-io/valkey#4024, fixed upstream after 8.1). Breaking every client's `MOVE` is worse than
//! a weaker guard, so on Valkey ≥ 8.1 the module does not subscribe: a key left without a TTL
//! gets it back from the next `RL.ALLOW` on it (see `INFO ratelimit`, `keyspace_hook`).
//!
//! Commands set it on every write. Two server commands can take it away: `PERSIST key` and
//! `RESTORE key 0 …` (which creates a key without TTL); `COPY`, `RENAME`, `MOVE`, `SWAPDB` and
//! `MIGRATE` carry the TTL along. So the module listens to the generic keyspace events
//! `persist` and `restore` and gives such a key its TTL back at once, on the master (the
//! replicas and the AOF receive `PEXPIREAT`, or `DEL` for a state that is already over). An
//! `RL.ALLOW` that finds a key without TTL does the same, as a second line of defence.
//!
//! On servers with `RedisModule_AddPostNotificationJob` (Redis 7.2+, Valkey) the repair runs on
//! the master as a post-notification job — the place those servers allow a write triggered by a
//! notification — and replicates after the command that caused it. Redis 7.0 has no such jobs,
//! and a write replicated from inside a notification reaches the replicas *before* that command
//! (the replica would apply `PEXPIREAT`, then `PERSIST`). There the repair runs inside the
//! callback on every node — master, replicas, AOF replay — and replicates nothing: the TTL is a
//! function of the state alone (`ceil(expires_at / 1 ms)`, also when that is already past, so
//! that the server's own expiry removes such a key everywhere), so every node sets the same.

use std::ffi::{c_char, c_int, c_void, CStr};

use redis_module::raw;

use crate::datatype::key::LimiterKey;
use crate::ffi::{ceil_ms, wrote_generic, Arg, Ctx};
use crate::panic::guard;
use crate::replication::{replicate_del, replicate_pexpireat};
use crate::{clock, stats};

/// How a repair reaches replicas and the AOF.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// Replicate the effect (`PEXPIREAT`, or `DEL` for a state that is over).
    Replicate,
    /// Every node repairs by itself (Redis 7.0 notifications): set the state's expiry, even a
    /// past one, and replicate nothing.
    EachNode,
}

/// Gives the open (writable) limiter key `name` the expiry its state implies, if it has none.
/// Anything else — a missing key, another type, a key with a TTL — is left alone.
pub(crate) fn repair(
    ctx: Ctx,
    key: &mut LimiterKey,
    name: Arg,
    now_us: u64,
    propagation: Propagation,
) {
    // The TTL first: it is there on every call but the rare repair, and cheaper to read.
    if key.expire_at_ms().is_some() {
        return;
    }
    let expires_at_us = match key.get() {
        Ok(Some(limiter)) => limiter.expires_at_us(),
        _ => return,
    };
    stats::TTL_REPAIRS.add(1);
    if propagation == Propagation::EachNode {
        key.set_expire_at_ms(ceil_ms(expires_at_us));
        wrote_generic(ctx, name, c"expire");
    } else if expires_at_us <= now_us {
        key.delete();
        replicate_del(ctx, name);
        wrote_generic(ctx, name, c"del");
    } else {
        let at_ms = ceil_ms(expires_at_us);
        key.set_expire_at_ms(at_ms);
        replicate_pexpireat(ctx, name, at_ms);
        wrote_generic(ctx, name, c"expire");
    }
}

/// Subscribes [`on_generic_event`] to the server's generic keyspace events, unless the server
/// is one where any such subscriber breaks `MOVE` / `COPY … DB` for its callers (see above).
pub(crate) fn subscribe(ctx: Ctx) -> Result<(), String> {
    if let Some(version) = valkey_version(ctx) {
        if version >= (8, 1) {
            crate::logging::log_notice(
                "ratelimit: Valkey 8.1+: not subscribing to generic keyspace events \
                 (valkey-io/valkey#4024); RL.ALLOW repairs a missing TTL instead",
            );
            return Ok(());
        }
    }
    let Some(subscribe) = (unsafe { raw::RedisModule_SubscribeToKeyspaceEvents }) else {
        return Err("the server lacks RedisModule_SubscribeToKeyspaceEvents".into());
    };
    let status = unsafe { subscribe(ctx, raw::REDISMODULE_NOTIFY_GENERIC, Some(on_generic_event)) };
    if status == raw::REDISMODULE_OK as c_int {
        stats::KEYSPACE_HOOK.add(1);
        Ok(())
    } else {
        Err("could not subscribe to keyspace events".into())
    }
}

/// `(major, minor)` of a Valkey server (`None` for Redis), from `INFO server`.
fn valkey_version(ctx: Ctx) -> Option<(u32, u32)> {
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
    let version = (!value.is_null()).then(|| {
        let text = unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned();
        let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    });
    unsafe { free(ctx, info) };
    version
}

/// Whether this server writes and replicates on its own (a master that is not loading data).
fn acts_as_master(ctx: Ctx) -> bool {
    let Some(flags) = (unsafe { raw::RedisModule_GetContextFlags }) else {
        return false;
    };
    let flags = unsafe { flags(ctx) } as u32;
    flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
        && flags & raw::REDISMODULE_CTX_FLAGS_LOADING == 0
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
        if !matches!(event, b"persist" | b"restore") {
            return 0;
        }
        let (Some(add_job), Some(hold)) =
            (unsafe { raw::RedisModule_AddPostNotificationJob }, unsafe {
                raw::RedisModule_HoldString
            })
        else {
            // Redis 7.0: here, on every node.
            repair_key(ctx, key, Propagation::EachNode);
            return 0;
        };
        if !acts_as_master(ctx) {
            return 0; // the master's job replicates the repair
        }
        let held = unsafe { hold(std::ptr::null_mut(), key) };
        let status = unsafe { add_job(ctx, Some(repair_job), held.cast(), Some(free_held)) };
        if status != raw::REDISMODULE_OK as c_int {
            free_held(held.cast());
        }
        0
    })
}

fn repair_key(ctx: Ctx, name: Arg, propagation: Propagation) {
    let mut key = LimiterKey::open(ctx, name, true);
    repair(ctx, &mut key, name, clock::now_us(), propagation);
}

extern "C" fn repair_job(ctx: Ctx, key: *mut c_void) {
    guard((), || {
        if !key.is_null() && acts_as_master(ctx) {
            repair_key(ctx, key.cast(), Propagation::Replicate);
        }
    })
}

extern "C" fn free_held(key: *mut c_void) {
    guard((), || {
        if let (false, Some(free)) = (key.is_null(), unsafe { raw::RedisModule_FreeString }) {
            unsafe { free(std::ptr::null_mut(), key.cast()) };
        }
    })
}
