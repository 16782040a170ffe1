//! The server's hooks for the `ratelimit` type. Each one is `extern "C"`, so each one keeps
//! panics from crossing into the server (see [`crate::panic`]).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use redis_module::native_types::RedisType;
use redis_module::raw;

use super::codec::{decode, encode, PAYLOAD_LEN};
use super::ENCODING_VERSION;
use crate::algo::Limiter;
use crate::logging::log_warning;
use crate::panic::guard;

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
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

/// Moves a limiter to the heap as a module value (freed by [`free`]).
pub(crate) fn into_value(limiter: Limiter) -> *mut c_void {
    Box::into_raw(Box::new(limiter)).cast()
}

/// Reads a module value. `None` for a null pointer.
///
/// # Safety
/// `value` is null or a pointer made by [`into_value`] that is still alive.
pub(crate) unsafe fn limiter_ref<'a>(value: *mut c_void) -> Option<&'a mut Limiter> {
    unsafe { value.cast::<Limiter>().as_mut() }
}

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    guard(ptr::null_mut(), || {
        if encver != ENCODING_VERSION {
            // Refusing stops the whole load: better than misreading a newer layout.
            log_warning(&format!(
                "ratelimit: RDB holds a ratelimit key in encoding version {encver}, \
                 this module reads only version {ENCODING_VERSION}: upgrade the module"
            ));
            return ptr::null_mut();
        }
        let Some(load) = (unsafe { raw::RedisModule_LoadStringBuffer }) else {
            return ptr::null_mut();
        };
        let mut len = 0usize;
        let buf = unsafe { load(rdb, &mut len) };
        if buf.is_null() {
            return ptr::null_mut();
        }
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        let limiter = decode(bytes);
        if let Some(free) = unsafe { raw::RedisModule_Free } {
            unsafe { free(buf.cast()) };
        }
        match limiter {
            Some(l) => into_value(l),
            None => {
                log_warning(&format!(
                    "ratelimit: RDB holds an invalid ratelimit value ({len} bytes): load stopped"
                ));
                ptr::null_mut()
            }
        }
    })
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    guard((), || {
        let (Some(l), Some(save)) = (unsafe { limiter_ref(value) }, unsafe {
            raw::RedisModule_SaveStringBuffer
        }) else {
            return;
        };
        let bytes = encode(l);
        unsafe { save(rdb, bytes.as_ptr().cast::<c_char>(), bytes.len()) };
    })
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    guard((), || {
        let (Some(l), Some(emit)) = (unsafe { limiter_ref(value) }, unsafe {
            raw::RedisModule_EmitAOF
        }) else {
            return;
        };
        let bytes = encode(l);
        // The server appends PEXPIREAT for the key's TTL after what we emit.
        unsafe {
            emit(
                aof,
                c"RL.SETSTATE".as_ptr(),
                c"sb".as_ptr(),
                key,
                bytes.as_ptr().cast::<c_char>(),
                PAYLOAD_LEN,
            )
        };
    })
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    guard(0, || match unsafe { raw::RedisModule_MallocSize } {
        Some(size) if !value.is_null() => unsafe { size(value.cast_mut()) },
        _ => std::mem::size_of::<Limiter>(),
    })
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    guard((), || {
        let (Some(l), Some(add), Some(end)) = (
            unsafe { limiter_ref(value) },
            unsafe { raw::RedisModule_DigestAddStringBuffer },
            unsafe { raw::RedisModule_DigestEndSequence },
        ) else {
            return;
        };
        let bytes = encode(l);
        unsafe {
            add(md, bytes.as_ptr().cast::<c_char>(), bytes.len());
            end(md);
        }
    })
}

extern "C" fn free(value: *mut c_void) {
    guard((), || {
        if !value.is_null() {
            drop(unsafe { Box::from_raw(value.cast::<Limiter>()) });
        }
    })
}

extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    guard(ptr::null_mut(), || {
        match unsafe { limiter_ref(value.cast_mut()) } {
            Some(l) => into_value(*l),
            None => ptr::null_mut(),
        }
    })
}
