//! Registration of the module configs (`ratelimit.*`) with the server and their callbacks: the
//! Redis glue of [`crate::config`].

use std::ffi::{c_char, c_int, c_longlong, c_uint, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw;

use super::*;

/// The `compat-commands` value as a server string (what `CONFIG GET` shows; ours to free).
static COMPAT_TEXT: AtomicPtr<raw::RedisModuleString> = AtomicPtr::new(std::ptr::null_mut());

/// Stores the arguments' values (what a server without module configs keeps), then registers
/// every config with them as defaults and loads the config file's / `LOADEX`'s values over
/// them. `Err` (a bad value in the config file) fails the load.
pub(crate) fn register(ctx: *mut raw::RedisModuleCtx, args: &ModuleArgs) -> Result<(), String> {
    DEBUG_COMMAND.store(args.debug_command, Ordering::Relaxed);
    TTL_HOOK.store(args.ttl_hook, Ordering::Relaxed);
    COMPAT.store(args.compat_commands.bits(), Ordering::Relaxed);
    set_compat_text(args.compat_commands);
    for (spec, &v) in NUMERIC.iter().zip(args.numeric.iter()) {
        spec.value.store(v, Ordering::Relaxed);
    }
    let (Some(numeric), Some(boolean), Some(string), Some(load)) = (
        unsafe { raw::RedisModule_RegisterNumericConfig },
        unsafe { raw::RedisModule_RegisterBoolConfig },
        unsafe { raw::RedisModule_RegisterStringConfig },
        unsafe { raw::RedisModule_LoadConfigs },
    ) else {
        return Ok(());
    };
    let immutable = raw::REDISMODULE_CONFIG_IMMUTABLE as c_uint;
    let ok = raw::REDISMODULE_OK as c_int;
    for (spec, &v) in NUMERIC.iter().zip(args.numeric.iter()) {
        let flags = if spec.mutable {
            raw::REDISMODULE_CONFIG_DEFAULT as c_uint
        } else {
            immutable
        };
        let status = unsafe {
            numeric(
                ctx,
                spec.name.as_ptr(),
                c_longlong::try_from(v).unwrap_or(c_longlong::MAX),
                flags,
                c_longlong::try_from(spec.min).unwrap_or(0),
                c_longlong::try_from(spec.max).unwrap_or(c_longlong::MAX),
                Some(get_numeric),
                Some(set_numeric),
                None,
                std::ptr::from_ref(spec).cast_mut().cast(),
            )
        };
        if status != ok {
            return Err(format!(
                "could not register config ratelimit.{}",
                spec.name.to_string_lossy()
            ));
        }
    }
    for (name, flag, default) in [
        (c"enable-debug-command", &DEBUG_COMMAND, args.debug_command),
        (c"ttl-hook", &TTL_HOOK, args.ttl_hook),
    ] {
        let status = unsafe {
            boolean(
                ctx,
                name.as_ptr(),
                c_int::from(default),
                immutable,
                Some(get_bool),
                Some(set_bool),
                None,
                std::ptr::from_ref(flag).cast_mut().cast(),
            )
        };
        if status != ok {
            return Err(format!(
                "could not register config ratelimit.{}",
                name.to_string_lossy()
            ));
        }
    }
    let default = std::ffi::CString::new(args.compat_commands.text()).unwrap_or_default();
    let status = unsafe {
        string(
            ctx,
            c"compat-commands".as_ptr(),
            default.as_ptr(),
            immutable,
            Some(get_compat),
            Some(set_compat),
            None,
            std::ptr::null_mut(),
        )
    };
    if status != ok {
        return Err("could not register config ratelimit.compat-commands".into());
    }
    if unsafe { load(ctx) } != ok {
        return Err("a ratelimit.* config in the config file has a bad value (see above)".into());
    }
    Ok(())
}

fn set_error(err: *mut *mut raw::RedisModuleString, msg: &str) {
    if err.is_null() {
        return;
    }
    if let Some(create) = unsafe { raw::RedisModule_CreateString } {
        unsafe { *err = create(std::ptr::null_mut(), msg.as_ptr().cast(), msg.len()) };
    }
}

extern "C" fn get_numeric(_name: *const c_char, privdata: *mut c_void) -> c_longlong {
    crate::panic::guard(0, || {
        // SAFETY: privdata is a `&'static Numeric` from `NUMERIC`.
        let spec = unsafe { &*privdata.cast::<Numeric>() };
        c_longlong::try_from(spec.value.load(Ordering::Relaxed)).unwrap_or(c_longlong::MAX)
    })
}

extern "C" fn set_numeric(
    _name: *const c_char,
    val: c_longlong,
    privdata: *mut c_void,
    err: *mut *mut raw::RedisModuleString,
) -> c_int {
    crate::panic::guard(raw::REDISMODULE_ERR as c_int, || {
        // SAFETY: as in `get_numeric`.
        let spec = unsafe { &*privdata.cast::<Numeric>() };
        match u64::try_from(val)
            .ok()
            .filter(|v| (spec.min..=spec.max).contains(v))
        {
            Some(v) => {
                spec.value.store(v, Ordering::Relaxed);
                raw::REDISMODULE_OK as c_int
            }
            None => {
                set_error(err, &range_error(spec));
                raw::REDISMODULE_ERR as c_int
            }
        }
    })
}

extern "C" fn get_bool(_name: *const c_char, privdata: *mut c_void) -> c_int {
    // SAFETY: privdata is one of this file's static flags.
    c_int::from(unsafe { &*privdata.cast::<AtomicBool>() }.load(Ordering::Relaxed))
}

extern "C" fn set_bool(
    _name: *const c_char,
    val: c_int,
    privdata: *mut c_void,
    _err: *mut *mut raw::RedisModuleString,
) -> c_int {
    // SAFETY: as in `get_bool`. Immutable: only the load sets it.
    unsafe { &*privdata.cast::<AtomicBool>() }.store(val != 0, Ordering::Relaxed);
    raw::REDISMODULE_OK as c_int
}

fn set_compat_text(value: CompatCommands) {
    let Some(create) = (unsafe { raw::RedisModule_CreateString }) else {
        return;
    };
    let text = value.text();
    let new = unsafe { create(std::ptr::null_mut(), text.as_ptr().cast(), text.len()) };
    let old = COMPAT_TEXT.swap(new, Ordering::Relaxed);
    if let (false, Some(free)) = (old.is_null(), unsafe { raw::RedisModule_FreeString }) {
        unsafe { free(std::ptr::null_mut(), old) };
    }
}

extern "C" fn get_compat(
    _name: *const c_char,
    _privdata: *mut c_void,
) -> *mut raw::RedisModuleString {
    COMPAT_TEXT.load(Ordering::Relaxed)
}

extern "C" fn set_compat(
    _name: *const c_char,
    val: *mut raw::RedisModuleString,
    _privdata: *mut c_void,
    err: *mut *mut raw::RedisModuleString,
) -> c_int {
    crate::panic::guard(
        raw::REDISMODULE_ERR as c_int,
        || match parse_compat_commands(crate::ffi::arg_bytes(val)) {
            Ok(c) => {
                COMPAT.store(c.bits(), Ordering::Relaxed);
                set_compat_text(c);
                raw::REDISMODULE_OK as c_int
            }
            Err(e) => {
                set_error(err, &e);
                raw::REDISMODULE_ERR as c_int
            }
        },
    )
}
