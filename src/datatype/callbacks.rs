//! The server's hooks for the `ratelimit` type. Each one is `extern "C"`, so each one keeps
//! panics from crossing into the server (see [`crate::panic`]).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use redis_module::native_types::RedisType;
use redis_module::raw;

use super::codec::{decode, encode};
use super::value::{self, Word};
use super::ENCODING_VERSION;
use crate::algo::run_log::RunLog;
use crate::algo::{Limiter, State};
use crate::logging::{log_warning, Limited};
use crate::panic::guard;
use crate::stats;

/// The registered type. Its name is exactly nine characters, as the server requires.
pub(crate) static RATE_LIMIT_TYPE: RedisType = RedisType::new(
    "ratelimit",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: Some(free_effort),
        unlink: None,
        copy: Some(copy),
        defrag: Some(defrag),
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

/// The heap limiter of a boxed value word (`None` for a packed one or null).
///
/// # Safety
/// `value` is null or a live value word made by [`value`].
unsafe fn boxed<'a>(value: *mut c_void) -> Option<&'a mut Limiter> {
    match Word::of(value)? {
        Word::Boxed(p) => unsafe { p.as_mut() },
        Word::Packed { .. } | Word::Block(_) => None,
    }
}

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guard(ptr::null_mut(), || {
        // Every version so far stores one string buffer per value; the payload's own header
        // says whether this module can read it (see `codec`), so a later encoding version
        // whose payload declares itself readable by this release still loads.
        let (Some(load), Some(is_io_error), Some(free)) = (
            unsafe { raw::RedisModule_LoadStringBuffer },
            unsafe { raw::RedisModule_IsIOError },
            unsafe { raw::RedisModule_Free },
        ) else {
            return ptr::null_mut();
        };
        let mut len = 0usize;
        let buf = unsafe { load(rdb, &mut len) };
        // With REDISMODULE_OPTIONS_HANDLE_IO_ERRORS a short read sets the error flag and returns
        // here instead of killing the server; the server then refuses the value (RESTORE) or the
        // load (RDB, replication) with its own message.
        if unsafe { is_io_error(rdb) } != 0 || buf.is_null() {
            if !buf.is_null() {
                unsafe { free(buf.cast()) };
            }
            refused(
                rdb,
                &format!(
                    "ratelimit: short read of a ratelimit value (encoding version {encver}): \
                     refused"
                ),
            );
            return ptr::null_mut();
        }
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        let limiter = decode(bytes);
        let header = [bytes.first().copied(), bytes.get(1).copied()];
        unsafe { free(buf.cast()) };
        match limiter {
            Some(l) => {
                // A RESTORE may have created a key without TTL: have it checked after the command.
                crate::expiry::value_restored(rdb);
                value::into_value(l)
            }
            None if encver > ENCODING_VERSION => {
                // Refusing stops the whole load: better than misreading a newer layout.
                refused(
                    rdb,
                    &format!(
                        "ratelimit: a ratelimit value in encoding version {encver} (payload \
                         header {header:?}) needs a newer module (this one writes version \
                         {ENCODING_VERSION}): upgrade the module"
                    ),
                );
                ptr::null_mut()
            }
            None => {
                refused(
                    rdb,
                    &format!(
                        "ratelimit: an invalid ratelimit value ({len} bytes, encoding version \
                         {encver}): refused"
                    ),
                );
                ptr::null_mut()
            }
        }
    })
}

/// Says why a value was refused. Loading an RDB file or a replication stream stops at a refused
/// value, and the operator must learn why: always a warning. A refused `RESTORE` (or `MIGRATE`'s
/// restore on the target) is an error reply to a client that can repeat it at will: at most one
/// warning a minute, the others at `verbose` level, as the server logs its own `RESTORE` errors.
fn refused(rdb: *mut raw::RedisModuleIO, msg: &str) {
    static RESTORE_LOG: Limited = Limited::new();
    if loading(rdb) {
        log_warning(msg);
    } else {
        RESTORE_LOG.warning(&format!("{msg} (RESTORE)"));
    }
}

/// Whether the server is loading a dataset (an RDB file at start-up or `DEBUG RELOAD`, a
/// replica's full sync, also asynchronously): the value is not from `RESTORE`. When the server
/// cannot say, a load is assumed (its line must not be lost).
fn loading(rdb: *mut raw::RedisModuleIO) -> bool {
    let (Some(context_of), Some(flags_of)) =
        (unsafe { raw::RedisModule_GetContextFromIO }, unsafe {
            raw::RedisModule_GetContextFlags
        })
    else {
        return true;
    };
    // The server owns the context it creates for the IO and frees it after the load callback.
    let ctx = unsafe { context_of(rdb) };
    if ctx.is_null() {
        return true;
    }
    let flags = u32::try_from(unsafe { flags_of(ctx) }).unwrap_or(u32::MAX);
    flags & (raw::REDISMODULE_CTX_FLAGS_LOADING | raw::REDISMODULE_CTX_FLAGS_ASYNC_LOADING) != 0
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guard((), || {
        let (Some(l), Some(save)) = (unsafe { value::open(value) }, unsafe {
            raw::RedisModule_SaveStringBuffer
        }) else {
            return;
        };
        let bytes = encode(l.limiter());
        unsafe { save(rdb, bytes.as_ptr().cast::<c_char>(), bytes.len()) };
    })
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    guard((), || {
        let (Some(l), Some(emit)) = (unsafe { value::open(value) }, unsafe {
            raw::RedisModule_EmitAOF
        }) else {
            return;
        };
        let bytes = encode(l.limiter());
        // The server appends PEXPIREAT for the key's TTL after what we emit.
        unsafe {
            emit(
                aof,
                c"RL.SETSTATE".as_ptr(),
                c"sb".as_ptr(),
                key,
                bytes.as_ptr().cast::<c_char>(),
                bytes.len(),
            )
        };
    })
}

/// The real allocation: nothing for a state packed into the value word, the block of one packed
/// into a block; the boxed limiter, and for a moving-window log with older runs their log, its
/// chunk array and each chunk.
extern "C" fn mem_usage(value: *const c_void) -> usize {
    guard(0, || {
        let Some(size) = (unsafe { raw::RedisModule_MallocSize }) else {
            return 0;
        };
        let l = match Word::of(value.cast_mut()) {
            None | Some(Word::Packed { .. }) => return 0,
            Some(Word::Block(b)) => return unsafe { size(b.cast()) },
            Some(Word::Boxed(p)) => match unsafe { p.as_ref() } {
                Some(l) => l,
                None => return 0,
            },
        };
        let mut total = unsafe { size(value.cast_mut()) };
        // A block lives in a box of its own.
        if let State::Blocked(b) = &l.state {
            let boxed: *const crate::algo::block::Blocked = &**b;
            total = total.saturating_add(unsafe { size(boxed.cast_mut().cast()) });
        }
        if let State::MovingWindow(log) = l.state.kind() {
            if let Some(older) = log.older() {
                let header: *const RunLog = older;
                total = total.saturating_add(unsafe { size(header.cast_mut().cast()) });
                for block in older.heap_blocks() {
                    total = total.saturating_add(unsafe { size(block.cast_mut().cast()) });
                }
            }
        }
        // Leases: the table, its array and each text id.
        if let State::Leases(leases) = &l.state {
            for block in leases.heap_blocks() {
                total = total.saturating_add(unsafe { size(block.cast_mut().cast()) });
            }
        }
        total
    })
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard((), || {
        let (Some(l), Some(add), Some(end)) = (
            unsafe { value::open(value) },
            unsafe { raw::RedisModule_DigestAddStringBuffer },
            unsafe { raw::RedisModule_DigestEndSequence },
        ) else {
            return;
        };
        let bytes = encode(l.limiter());
        unsafe {
            add(md, bytes.as_ptr().cast::<c_char>(), bytes.len());
            end(md);
        }
    })
}

/// How many blocks freeing the value releases: a long moving-window log is many chunks (a key of
/// leases one block per text id), so with
/// `lazyfree-lazy-user-del` / `-expire` / `-eviction` the server frees it on its background
/// thread instead of in the command (it does so above 64).
extern "C" fn free_effort(_key: *mut raw::RedisModuleString, value: *const c_void) -> usize {
    guard(1, || {
        match unsafe { boxed(value.cast_mut()) }.map(|l| l.state.kind()) {
            Some(State::MovingWindow(log)) => log
                .older()
                .map_or(1, |o| o.heap_blocks().count().saturating_add(2)),
            Some(State::Leases(leases)) => leases.heap_blocks().count().saturating_add(1),
            _ => 1,
        }
    })
}

/// Frees a value: on the main thread or the lazyfree thread (see `rules`).
extern "C" fn free(value: *mut c_void) {
    guard((), || unsafe { value::free(value) })
}

extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    guard(ptr::null_mut(), || {
        let copy = unsafe { value::duplicate(value.cast_mut()) };
        if !copy.is_null() {
            crate::expiry::value_copied();
        }
        copy
    })
}

/// Active defrag (Redis 7.0 module API): moves the value to a fresh allocation when the
/// allocator asks for it; a packed value word has nothing to move. Returns 0: the value is
/// always done in one call.
extern "C" fn defrag(
    ctx: *mut raw::RedisModuleDefragCtx,
    _key: *mut raw::RedisModuleString,
    value: *mut *mut c_void,
) -> c_int {
    guard(0, || {
        let Some(defrag_alloc) = (unsafe { raw::RedisModule_DefragAlloc }) else {
            return 0;
        };
        // SAFETY: the server passes a pointer to the key's value slot.
        let Some(slot) = (unsafe { value.as_mut() }) else {
            return 0;
        };
        match Word::of(*slot) {
            Some(Word::Boxed(_)) => {}
            Some(Word::Block(b)) => {
                let moved = unsafe { defrag_alloc(ctx, b.cast()) };
                if !moved.is_null() {
                    *slot = Word::Block(moved.cast()).value();
                    stats::DEFRAG_MOVES.add(1);
                }
                return 0;
            }
            None | Some(Word::Packed { .. }) => return 0,
        }
        let moved = unsafe { defrag_alloc(ctx, *slot) };
        if !moved.is_null() {
            // The old block was freed by the server: only the new pointer is valid now.
            *slot = moved;
            stats::DEFRAG_MOVES.add(1);
        }
        // A moving-window log with older runs has more blocks: its run log, the chunk array and
        // each chunk's bytes. (A penalty block's box is left where it is: blocks are few and
        // short-lived.)
        if let Some(State::MovingWindow(log)) = unsafe { boxed(*slot) }.map(|l| l.state.kind_mut())
        {
            if let Some(older) = log.older_mut() {
                let header: *mut RunLog = &mut **older;
                let moved = unsafe { defrag_alloc(ctx, header.cast()) };
                if !moved.is_null() {
                    // SAFETY: the server copied the log to `moved` and freed the old block:
                    // adopt the new one, and never drop the old Box.
                    let old = std::mem::replace(older, unsafe { Box::from_raw(moved.cast()) });
                    std::mem::forget(old);
                }
                // SAFETY: RM_DefragAlloc copies a block into one of the same size class from the
                // server's allocator (our global allocator) and frees the old one.
                unsafe { older.relocate_chunks(|block| defrag_alloc(ctx, block.cast()).cast()) };
            }
        }
        // Leases: the table, its array and each text id.
        if let Some(Limiter {
            state: State::Leases(leases),
            ..
        }) = unsafe { boxed(*slot) }
        {
            // SAFETY: as for the chunks above.
            unsafe { leases.relocate(|block| defrag_alloc(ctx, block.cast()).cast()) };
        }
        0
    })
}
