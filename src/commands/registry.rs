//! The command table: names, flags, arity and key specs, registered with the raw API.
//!
//! `RedisModule_SetCommandInfo` (7.0+) gives the server the real arity (so it answers wrong
//! arities with its standard error) and a key spec per command, which is what makes RL.PEEK's key
//! read-only for ACL `%R~` selectors and replicas.

use std::ffi::{c_int, CStr};

use redis_module::raw;

use super::apply::rl_apply;
use super::debug::rl_debug;
use super::inspect::rl_inspect;
use super::lease::{rl_acquire, rl_release};
use super::limit::{rl_allow, rl_peek};
use super::multi::{rl_allowall, rl_peekall};
use super::setstate::rl_setstate;
use super::settle::{rl_charge, rl_refund};
use super::throttle::{cl_throttle, gcra, rl_throttle};
use crate::config::CompatCommands;
use crate::ffi::{Arg, Ctx};
use crate::logging::log_notice;

type Handler = extern "C" fn(Ctx, *mut Arg, c_int) -> c_int;

/// Where a command's one key is.
#[derive(Clone, Copy)]
enum KeyAt {
    /// Argument 1.
    First,
    /// The argument after this keyword (none when the keyword is absent).
    After(&'static CStr),
    /// `numkeys` at argument 1, then that many keys (found through `getkeys-api`).
    NumKeys,
}

struct CommandSpec {
    name: &'static CStr,
    handler: Handler,
    flags: &'static CStr,
    arity: c_int,
    key_at: KeyAt,
    key_flags: u32,
    summary: &'static CStr,
    complexity: &'static CStr,
}

/// The cost of a request against one key, whatever its arguments (the moving window's log is
/// indexed: see `algo::run_log`).
const PER_KEY: &CStr = c"O(1) for sliding-window, fixed-window and gcra; O(log N) for \
    moving-window, N the runs the key stores (at most its run cap)";

const RO_KEY: u32 = raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS;

/// The cost of a lease command: the leases are sorted by end in chunks (see `algo::leases`).
const LEASES: &CStr = c"O(N) worst case, N the leases the key holds (at most 10000, the \
    limit's bound): a binary search for what is held, a scan for the id, one chunk of at most \
    128 shifted, at most 64 ended leases dropped; the replicated effect is O(1)";

/// A key a command reads and updates.
const RW_KEY: u32 =
    raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE;

/// The cost of a multi-key call: per key as `PER_KEY`, at most `multi::MAX_KEYS` keys.
const PER_CALL: &CStr = c"O(K) for K keys (at most 16) of sliding-window, fixed-window and gcra; \
    O(K log N) with moving-window keys, N the runs a key stores";

const COMMANDS: [CommandSpec; 12] = [
    CommandSpec {
        name: c"rl.allow",
        handler: rl_allow,
        flags: c"write deny-oom fast",
        arity: -4,
        key_at: KeyAt::First,
        key_flags: raw::REDISMODULE_CMD_KEY_RW
            | raw::REDISMODULE_CMD_KEY_ACCESS
            | raw::REDISMODULE_CMD_KEY_UPDATE,
        summary: c"Admits and charges a request if the key's rate limit allows it",
        complexity: PER_KEY,
    },
    CommandSpec {
        name: c"rl.peek",
        handler: rl_peek,
        flags: c"readonly fast",
        arity: -4,
        key_at: KeyAt::First,
        key_flags: RO_KEY,
        summary: c"Tells what RL.ALLOW would reply, without charging or writing",
        complexity: PER_KEY,
    },
    CommandSpec {
        name: c"rl.inspect",
        handler: rl_inspect,
        flags: c"readonly fast",
        arity: 2,
        key_at: KeyAt::First,
        key_flags: RO_KEY,
        summary: c"Shows a limiter's rule and its state as it stands now",
        complexity: c"O(1) for sliding-window, fixed-window and gcra; O(log N) for \
            moving-window and leases, N the runs or leases the key stores",
    },
    CommandSpec {
        name: c"rl.setstate",
        handler: rl_setstate,
        flags: c"write deny-oom",
        arity: 3,
        key_at: KeyAt::First,
        key_flags: raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
        summary: c"Sets a limiter's whole state (what replicas and AOF files receive)",
        complexity: c"O(N), N the runs or leases in the payload (1 for the counters)",
    },
    CommandSpec {
        name: c"rl.apply",
        handler: rl_apply,
        flags: c"write deny-oom fast",
        arity: 3,
        key_at: KeyAt::First,
        key_flags: raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE,
        summary: c"Replays a moving-window hit at the master's time (what replicas receive)",
        complexity: c"O(log N), N the runs the key stores; a lease effect O(N), N the leases \
            (at most 10000)",
    },
    CommandSpec {
        name: c"rl.allowall",
        handler: rl_allowall,
        flags: c"write deny-oom getkeys-api",
        arity: -5,
        key_at: KeyAt::NumKeys,
        key_flags: RW_KEY,
        summary: c"Admits a request only if every key's limit allows it, and then charges \
            every key (all or nothing): numkeys key [key ...] limit window [options] ...",
        complexity: PER_CALL,
    },
    CommandSpec {
        name: c"rl.peekall",
        handler: rl_peekall,
        flags: c"readonly getkeys-api",
        arity: -5,
        key_at: KeyAt::NumKeys,
        key_flags: RO_KEY,
        summary: c"Tells what RL.ALLOWALL would reply, without charging or writing",
        complexity: PER_CALL,
    },
    CommandSpec {
        name: c"rl.charge",
        handler: rl_charge,
        flags: c"write deny-oom fast",
        arity: -5,
        key_at: KeyAt::First,
        key_flags: RW_KEY,
        summary: c"Charges a cost unconditionally (settling after the work): past the \
            capacity the excess is a debt that later requests wait out",
        complexity: PER_KEY,
    },
    CommandSpec {
        name: c"rl.refund",
        handler: rl_refund,
        flags: c"write fast",
        arity: -5,
        key_at: KeyAt::First,
        key_flags: RW_KEY,
        summary: c"Gives back up to n of what was charged, never below empty",
        complexity: PER_KEY,
    },
    CommandSpec {
        name: c"rl.throttle",
        handler: rl_throttle,
        flags: c"write deny-oom fast",
        arity: -5,
        key_at: KeyAt::First,
        key_flags: THROTTLE_KEY,
        summary: c"redis-cell's CL.THROTTLE on the module's gcra limiter: \
            key max_burst count_per_period period [quantity]",
        complexity: c"O(1)",
    },
    CommandSpec {
        name: c"rl.acquire",
        handler: rl_acquire,
        flags: c"write deny-oom",
        arity: -4,
        key_at: KeyAt::First,
        key_flags: raw::REDISMODULE_CMD_KEY_RW
            | raw::REDISMODULE_CMD_KEY_ACCESS
            | raw::REDISMODULE_CMD_KEY_UPDATE,
        summary: c"Takes (or renews) one of limit concurrency leases of the key for lease: \
            key limit lease [ID id]",
        complexity: LEASES,
    },
    CommandSpec {
        name: c"rl.release",
        handler: rl_release,
        flags: c"write",
        arity: 3,
        key_at: KeyAt::First,
        key_flags: raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_DELETE,
        summary: c"Gives a concurrency lease back before it ends: key id",
        complexity: LEASES,
    },
];

const THROTTLE_KEY: u32 =
    raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE;

/// redis-cell's name: registered unless `compat-commands` leaves it out or the name is taken.
const CL_THROTTLE: CommandSpec = CommandSpec {
    name: c"cl.throttle",
    handler: cl_throttle,
    flags: c"write deny-oom fast",
    arity: -5,
    key_at: KeyAt::First,
    key_flags: THROTTLE_KEY,
    summary: c"redis-cell's GCRA command, served by the ratelimit module (same as RL.THROTTLE)",
    complexity: c"O(1)",
};

/// Redis 8.8's pulled GCRA: registered unless `compat-commands` leaves it out or the server
/// has its own.
const GCRA: CommandSpec = CommandSpec {
    name: c"gcra",
    handler: gcra,
    flags: c"write deny-oom fast",
    arity: -5,
    key_at: KeyAt::First,
    key_flags: THROTTLE_KEY,
    summary: c"Redis's GCRA rate limiter, served by the ratelimit module: \
        key max_burst tokens_per_period period [TOKENS n]",
    complexity: c"O(1)",
};

static INFO_VERSION: raw::RedisModuleCommandInfoVersion = raw::RedisModuleCommandInfoVersion {
    version: 1,
    sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
    sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
    sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
};

fn key_spec(at: KeyAt, flags: u32) -> raw::RedisModuleCommandKeySpec {
    let (begin_search_type, bs) = match at {
        KeyAt::First | KeyAt::NumKeys => (
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX,
            raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
                index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 1 },
            },
        ),
        KeyAt::After(keyword) => (
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD,
            raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
                keyword: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_2 {
                    keyword: keyword.as_ptr(),
                    startfrom: 1,
                },
            },
        ),
    };
    let (find_keys_type, fk) = match at {
        // numkeys at argument 1, the keys right after it.
        KeyAt::NumKeys => (
            raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_KEYNUM,
            raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
                keynum: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_2 {
                    keynumidx: 0,
                    firstkey: 1,
                    keystep: 1,
                },
            },
        ),
        KeyAt::First | KeyAt::After(_) => (
            raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE,
            raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
                range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                    lastkey: 0,
                    keystep: 1,
                    limit: 0,
                },
            },
        ),
    };
    raw::RedisModuleCommandKeySpec {
        notes: std::ptr::null(),
        flags: u64::from(flags),
        begin_search_type,
        bs,
        find_keys_type,
        fk,
    }
}

fn end_of_key_specs() -> raw::RedisModuleCommandKeySpec {
    // SAFETY: the terminator is an all-zero key spec (a plain C struct of integers and pointers).
    unsafe { std::mem::zeroed() }
}

/// Fault injection for the tests (see `debug`); registered only on request.
const DEBUG_COMMAND: CommandSpec = CommandSpec {
    name: c"rl.debug",
    handler: rl_debug,
    flags: c"write getkeys-api",
    arity: -2,
    key_at: KeyAt::After(c"PANIC-OPEN"),
    key_flags: raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE,
    summary: c"Fault injection for tests (enable-debug-command yes at load)",
    complexity: c"O(1)",
};

/// Registers every command (`RL.DEBUG` when `with_debug`, the `compat` names that are wanted and
/// free); `Err` names what failed (the module then refuses to load).
pub(crate) fn register_all(
    ctx: Ctx,
    with_debug: bool,
    compat: CompatCommands,
) -> Result<(), String> {
    let debug = with_debug.then_some(&DEBUG_COMMAND);
    let category = add_acl_category(ctx);
    for spec in COMMANDS.iter().chain(debug) {
        if !create(ctx, spec)? {
            return Err(format!(
                "could not create command {}",
                spec.name.to_string_lossy()
            ));
        }
        set_info(ctx, spec)?;
        set_category(ctx, spec, category);
    }
    for (wanted, spec) in [(compat.cl_throttle, &CL_THROTTLE), (compat.gcra, &GCRA)] {
        if !wanted {
            continue;
        }
        // The server refuses a name it already has: its own command (a Redis built with GCRA),
        // another module's (redis-cell's CL.THROTTLE) or a rename-command target.
        if create(ctx, spec)? {
            set_info(ctx, spec)?;
            set_category(ctx, spec, category);
        } else {
            log_notice(&format!(
                "ratelimit: {} is already a command on this server, left as it is \
                 (RL.THROTTLE serves the same limiters)",
                spec.name.to_string_lossy().to_uppercase()
            ));
        }
    }
    Ok(())
}

/// The module's ACL category, `@ratelimit`, where the server can add one (Redis 7.4+, Valkey 8+;
/// checked at run time: on Redis 7.0 the API is absent). `false` where it cannot: the commands
/// are then only in the categories their flags imply (`@write`, `@read`, `@fast`).
fn add_acl_category(ctx: Ctx) -> bool {
    let Some(add) = (unsafe { raw::RedisModule_AddACLCategory }) else {
        return false;
    };
    let ok = unsafe { add(ctx, c"ratelimit".as_ptr()) } == raw::REDISMODULE_OK as c_int;
    if !ok {
        log_notice("ratelimit: could not add the ACL category @ratelimit; commands go without it");
    }
    ok
}

/// Puts the command in `@ratelimit` (when the category exists).
fn set_category(ctx: Ctx, spec: &CommandSpec, category: bool) {
    let (true, Some(get), Some(set)) = (category, unsafe { raw::RedisModule_GetCommand }, unsafe {
        raw::RedisModule_SetCommandACLCategories
    }) else {
        return;
    };
    let command = unsafe { get(ctx, spec.name.as_ptr()) };
    if !command.is_null() {
        unsafe { set(command, c"ratelimit".as_ptr()) };
    }
}

/// Creates the command; `Ok(false)` when the server refuses it (its name is taken).
fn create(ctx: Ctx, spec: &CommandSpec) -> Result<bool, String> {
    let Some(create) = (unsafe { raw::RedisModule_CreateCommand }) else {
        return Err("the server lacks RedisModule_CreateCommand".into());
    };
    // Legacy key positions for servers without key specs; a keyword key and `numkeys` keys
    // have none (`getkeys-api` answers for them).
    let first = match spec.key_at {
        KeyAt::First => 1,
        KeyAt::After(_) | KeyAt::NumKeys => 0,
    };
    let status = unsafe {
        create(
            ctx,
            spec.name.as_ptr(),
            Some(spec.handler),
            spec.flags.as_ptr(),
            first,
            first,
            first,
        )
    };
    Ok(status == raw::REDISMODULE_OK as c_int)
}

/// Gives the server the command's arity, summary, complexity and key spec (COMMAND DOCS,
/// COMMAND INFO, ACL key checks).
fn set_info(ctx: Ctx, spec: &CommandSpec) -> Result<(), String> {
    let name = spec.name.to_string_lossy();
    let Some(set_info) = (unsafe { raw::RedisModule_SetCommandInfo }) else {
        return Ok(()); // before 7.0: the legacy first/last/step key positions still apply
    };
    let Some(get) = (unsafe { raw::RedisModule_GetCommand }) else {
        return Err("the server lacks RedisModule_GetCommand".into());
    };
    let command = unsafe { get(ctx, spec.name.as_ptr()) };
    if command.is_null() {
        return Err(format!("could not look up command {name}"));
    }
    let mut key_specs = [key_spec(spec.key_at, spec.key_flags), end_of_key_specs()];
    let info = raw::RedisModuleCommandInfo {
        version: &INFO_VERSION,
        summary: spec.summary.as_ptr(),
        complexity: spec.complexity.as_ptr(),
        since: c"0.1.0".as_ptr(),
        history: std::ptr::null_mut(),
        tips: std::ptr::null(),
        arity: spec.arity,
        key_specs: key_specs.as_mut_ptr(),
        args: std::ptr::null_mut(),
    };
    // The server copies what it keeps.
    if unsafe { set_info(command, &info) } != raw::REDISMODULE_OK as c_int {
        return Err(format!("could not set command info of {name}"));
    }
    Ok(())
}
