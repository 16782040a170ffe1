//! Opening a key that holds (or will hold) a limiter. The handle is closed on drop, also when a
//! command unwinds from a panic.

use std::ffi::c_int;

use redis_module::raw;

use super::callbacks::{drop_value, into_value, limiter_ref, RATE_LIMIT_TYPE};
use crate::algo::Limiter;

/// The key holds a value of another type.
#[derive(Debug)]
pub(crate) struct WrongType;

/// An open key.
pub(crate) struct LimiterKey {
    key: *mut raw::RedisModuleKey,
}

impl LimiterKey {
    /// Opens `name` for reading only (never creates it) or for writing.
    pub(crate) fn open(
        ctx: *mut raw::RedisModuleCtx,
        name: *mut raw::RedisModuleString,
        write: bool,
    ) -> LimiterKey {
        let mode = if write {
            raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
        } else {
            raw::REDISMODULE_READ
        };
        // SAFETY: ctx and name come from the server for this command. In read mode a missing
        // key gives NULL, which every method treats as empty.
        let key = match unsafe { raw::RedisModule_OpenKey } {
            Some(open) => unsafe { open(ctx, name, mode as c_int) },
            None => std::ptr::null_mut(),
        };
        LimiterKey { key }
    }

    fn value_ptr(&self) -> Result<*mut std::ffi::c_void, WrongType> {
        if self.key.is_null() {
            return Ok(std::ptr::null_mut());
        }
        let (Some(key_type), Some(get_type), Some(get_value)) = (
            unsafe { raw::RedisModule_KeyType },
            unsafe { raw::RedisModule_ModuleTypeGetType },
            unsafe { raw::RedisModule_ModuleTypeGetValue },
        ) else {
            return Err(WrongType);
        };
        match unsafe { key_type(self.key) } as isize {
            raw::REDISMODULE_KEYTYPE_EMPTY => Ok(std::ptr::null_mut()),
            raw::REDISMODULE_KEYTYPE_MODULE
                if unsafe { get_type(self.key) } == *RATE_LIMIT_TYPE.raw_type.borrow() =>
            {
                Ok(unsafe { get_value(self.key) })
            }
            _ => Err(WrongType),
        }
    }

    /// The stored limiter; `None` when the key does not exist.
    pub(crate) fn get(&self) -> Result<Option<&Limiter>, WrongType> {
        let value = self.value_ptr()?;
        // SAFETY: a value of our type was made by `into_value`; it lives while the key is open.
        Ok(unsafe { limiter_ref(value) }.map(|l| &*l))
    }

    /// The stored limiter, to change in place; `None` when the key does not exist.
    pub(crate) fn get_mut(&mut self) -> Result<Option<&mut Limiter>, WrongType> {
        let value = self.value_ptr()?;
        // SAFETY: as for `get`; `&mut self` keeps a second borrow from being made.
        Ok(unsafe { limiter_ref(value) })
    }

    /// Stores a new limiter at a key opened for writing (which held none).
    pub(crate) fn create(&mut self, limiter: Limiter) -> Result<(), WrongType> {
        let Some(set_value) = (unsafe { raw::RedisModule_ModuleTypeSetValue }) else {
            return Err(WrongType);
        };
        let boxed = into_value(limiter);
        let status = unsafe { set_value(self.key, *RATE_LIMIT_TYPE.raw_type.borrow(), boxed) };
        if status != raw::REDISMODULE_OK as c_int {
            // SAFETY: the server did not take ownership; free it ourselves.
            unsafe { drop_value(boxed) };
            return Err(WrongType);
        }
        Ok(())
    }

    /// Stores `limiter` (in place when the key holds one already).
    pub(crate) fn put(&mut self, limiter: Limiter) -> Result<(), WrongType> {
        match self.get_mut()? {
            Some(slot) => {
                *slot = limiter;
                Ok(())
            }
            None => self.create(limiter),
        }
    }

    /// Sets the key to expire at `at_ms` (absolute Unix ms). The key must be open for writing.
    pub(crate) fn set_expire_at_ms(&mut self, at_ms: i64) {
        if let Some(set_abs_expire) = unsafe { raw::RedisModule_SetAbsExpire } {
            unsafe { set_abs_expire(self.key, at_ms) };
        }
    }

    /// The key's absolute expiry in Unix ms; `None` when it has no TTL (or does not exist).
    pub(crate) fn expire_at_ms(&self) -> Option<i64> {
        let get = unsafe { raw::RedisModule_GetAbsExpire }?;
        if self.key.is_null() {
            return None;
        }
        let at = unsafe { get(self.key) };
        (at != raw::REDISMODULE_NO_EXPIRE as i64).then_some(at)
    }

    /// Deletes the key (open for writing).
    pub(crate) fn delete(&mut self) {
        if let Some(del) = unsafe { raw::RedisModule_DeleteKey } {
            unsafe { del(self.key) };
        }
    }
}

/// Whether `key`, a handle the server opened and lends (a scan callback's), holds a limiter that
/// has no TTL.
pub(crate) fn is_limiter_without_ttl(key: *mut raw::RedisModuleKey) -> bool {
    // Borrowed: the server closes it, so this view must never run `Drop`.
    let view = std::mem::ManuallyDrop::new(LimiterKey { key });
    matches!(view.get(), Ok(Some(_))) && view.expire_at_ms().is_none()
}

impl Drop for LimiterKey {
    fn drop(&mut self) {
        if let (false, Some(close)) = (self.key.is_null(), unsafe { raw::RedisModule_CloseKey }) {
            unsafe { close(self.key) };
        }
    }
}
