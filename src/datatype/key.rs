//! Opening a key that holds (or will hold) a limiter. The handle is closed on drop, also when a
//! command unwinds from a panic.

use std::ffi::{c_int, c_void};
use std::ops::{Deref, DerefMut};

use redis_module::raw;

use super::callbacks::RATE_LIMIT_TYPE;
use super::value::{self, Opened};
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

    #[inline(always)]
    fn value_ptr(&self) -> Result<*mut c_void, WrongType> {
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
        // Our type first (null for an empty key or another type): one call on the hot path.
        let mt = unsafe { get_type(self.key) };
        if !mt.is_null() && mt == *RATE_LIMIT_TYPE.raw_type.borrow() {
            return Ok(unsafe { get_value(self.key) });
        }
        match unsafe { key_type(self.key) } as isize {
            raw::REDISMODULE_KEYTYPE_EMPTY => Ok(std::ptr::null_mut()),
            _ => Err(WrongType),
        }
    }

    /// Whether the key holds a limiter (`false`: it does not exist), without reading it.
    #[inline]
    pub(crate) fn holds_limiter(&self) -> Result<bool, WrongType> {
        Ok(!self.value_ptr()?.is_null())
    }

    /// The stored limiter; `None` when the key does not exist. Change it through the handle and
    /// [`Held::store`] it (a key opened for writing). One handle per key at a time.
    #[inline(always)]
    pub(crate) fn get(&self) -> Result<Option<Held<'_>>, WrongType> {
        let value = self.value_ptr()?;
        Ok(self.held(value))
    }

    /// The hot path's read–decide–write (`RL.ALLOW`, `RL.PEEK`): `f` gets the stored limiter
    /// (`None`: the key does not exist) to read or change, and says whether to keep its changes
    /// (`true`; the key must then be open for writing), as [`Held::store`] keeps them; `false`
    /// leaves the key as it was (as [`Held::unchanged`]).
    ///
    /// A state packed into the value word (a counter's usual form) is unpacked on the stack and,
    /// when it packs there again under the same rule table entry, only its word is replaced: no
    /// handle is built, moved or re-read. Every other form goes through a [`Held`] handle.
    #[inline(always)]
    pub(crate) fn update<R>(
        &self,
        f: impl FnOnce(Option<&mut Limiter>) -> (R, bool),
    ) -> Result<R, WrongType> {
        let value = self.value_ptr()?;
        // SAFETY: a value of our type was made by `value`; it lives while the key is open.
        let mut unpacked = unsafe { value::unpack_word(value) };
        let mut held = match unpacked {
            Some(_) => None,
            None => self.held(value),
        };
        // (Not through `DerefMut`: what is kept is `f`'s to say, also if it unwinds.)
        let stored = match (&mut unpacked, &mut held) {
            (Some(u), _) => Some(u.limiter_mut()),
            (None, Some(h)) => Some(h.opened.limiter_mut()),
            (None, None) => None,
        };
        let (r, keep) = f(stored);
        if keep {
            if let Some(u) = &unpacked {
                // The usual write: the word names the entry the old one named and holds nothing
                // else (nothing to free, nor to discard if the server refuses it).
                match u.repack() {
                    Some(word) if word == value => {}
                    Some(word) => self.replace(word)?,
                    None => {
                        if let Some(u) = unpacked.take() {
                            self.store_unpacked_forms(value, u)?;
                        }
                    }
                }
            } else if let Some(h) = held.as_mut() {
                h.store()?;
            }
        }
        Ok(r)
    }

    /// Stores a changed [`value::Unpacked`] read from `value` that does not pack into the word
    /// under its entry again: to whatever form it takes now, through a handle.
    #[inline(never)]
    fn store_unpacked_forms(
        &self,
        value: *mut c_void,
        unpacked: value::Unpacked,
    ) -> Result<(), WrongType> {
        let (opened, footprint) = unpacked.into_opened();
        let mut held = Held {
            key: self,
            value,
            footprint,
            opened,
            dirty: false,
        };
        held.commit_forms()
    }

    /// A handle on the value `value` read from this key.
    #[inline(always)]
    fn held(&self, value: *mut c_void) -> Option<Held<'_>> {
        // SAFETY: a value of our type was made by `value`; it lives while the key is open, and
        // the caller keeps one handle at a time.
        unsafe { value::open(value) }.map(|opened| Held {
            key: self,
            value,
            footprint: value::footprint(opened.limiter()),
            opened,
            dirty: false,
        })
    }

    /// Puts `new` in place of the key's value word (the key holds one of our type), without
    /// freeing the old one.
    fn replace(&self, new: *mut c_void) -> Result<(), WrongType> {
        let Some(replace) = (unsafe { raw::RedisModule_ModuleTypeReplaceValue }) else {
            return Err(WrongType);
        };
        let mt = *RATE_LIMIT_TYPE.raw_type.borrow();
        let status = unsafe { replace(self.key, mt, new, std::ptr::null_mut()) };
        if status == raw::REDISMODULE_OK as c_int {
            Ok(())
        } else {
            Err(WrongType)
        }
    }

    /// Stores a new limiter at a key opened for writing (which held none). (`&mut self`, as
    /// for [`LimiterKey::put`] and [`LimiterKey::delete`]: no [`Held`] handle of the key may
    /// outlive the value it read.)
    pub(crate) fn create(&mut self, limiter: Limiter) -> Result<(), WrongType> {
        let Some(set_value) = (unsafe { raw::RedisModule_ModuleTypeSetValue }) else {
            return Err(WrongType);
        };
        let new = value::into_value(limiter);
        let status = unsafe { set_value(self.key, *RATE_LIMIT_TYPE.raw_type.borrow(), new) };
        if status != raw::REDISMODULE_OK as c_int {
            // SAFETY: the server did not take ownership; free it ourselves.
            unsafe { value::free(new) };
            return Err(WrongType);
        }
        crate::stats::KEYS_CREATED.add(1);
        Ok(())
    }

    /// Stores `limiter` (in place of the key's value when it holds one already).
    pub(crate) fn put(&mut self, limiter: Limiter) -> Result<(), WrongType> {
        let old = self.value_ptr()?;
        if old.is_null() {
            return self.create(limiter);
        }
        let new = value::into_value(limiter);
        match self.replace(new) {
            // SAFETY: the server no longer holds the old value word.
            Ok(()) => unsafe { value::free(old) },
            // SAFETY: the server did not take the new one.
            Err(e) => {
                unsafe { value::free(new) };
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sets the key to expire at `at_ms` (absolute Unix ms). The key must be open for writing.
    pub(crate) fn set_expire_at_ms(&self, at_ms: i64) {
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

/// The limiter of an open key: a copy of a state packed into the value word, or the heap limiter
/// itself (see `value`). Read it and change it as a [`Limiter`]. A change is kept when the
/// handle is stored ([`Held::store`]) or dropped, as changes in place always were; a caller that
/// knows nothing changed says so ([`Held::unchanged`]) and skips packing it again.
pub(crate) struct Held<'k> {
    key: &'k LimiterKey,
    value: *mut c_void,
    opened: Opened<'k>,
    /// What the limiter added to the INFO gauges when it was opened or last stored
    /// (`value::footprint`).
    footprint: (u64, u64),
    /// Borrowed mutably since it was opened or last stored.
    dirty: bool,
}

impl Held<'_> {
    /// Keeps the changes made through this handle: the limiter is packed again (or moves to or
    /// from the heap) and the key's value word replaced when it changed. The key must be open
    /// for writing.
    /// (In place: the handle is large, and the hot path keeps it where it is.)
    #[inline]
    pub(crate) fn store(&mut self) -> Result<(), WrongType> {
        self.commit()
    }

    /// Marks the limiter unchanged, so that dropping the handle does not pack it again: the
    /// caller knows it did not change (a denial, a peek).
    #[inline]
    pub(crate) fn unchanged(&mut self) {
        self.dirty = false;
    }

    #[inline(always)]
    fn commit(&mut self) -> Result<(), WrongType> {
        self.dirty = false;
        // The usual write (a counter in the value word): the new word names the same entry and
        // the footprint is the same (a counter's nothing, a one-run log's one run).
        if let Some(word) = value::repack(&self.opened) {
            if word != self.value {
                self.key.replace(word)?;
                self.value = word;
            }
            return Ok(());
        }
        self.commit_forms()
    }

    /// [`Held::commit`] from any form to any form.
    #[inline]
    fn commit_forms(&mut self) -> Result<(), WrongType> {
        // (Before `restore`, which may move the limiter out of `opened`.)
        let now = value::footprint(self.opened.limiter());
        let old_entry = self.opened.entry_id();
        let (new, retired) = value::restore(self.value, &mut self.opened);
        let moved = new != self.value;
        if moved {
            if let Err(e) = self.key.replace(new) {
                // The old value stays, with everything it names (`retired` is not freed); the
                // new word goes.
                // SAFETY: the server did not take `new`, and it differs from the old word.
                unsafe { value::discard(new, old_entry) };
                return Err(e);
            }
            self.value = new;
        }
        retired.free();
        // A handle that read a packed state reads the stored value again: the entry it named
        // may have been given back, and a state moved to the heap has left its copy.
        if moved || old_entry.is_some() {
            // SAFETY: the key's value, made by `value`, with no other handle in use.
            if let Some(opened) = unsafe { value::open(new) } {
                self.opened = opened;
            }
        }
        if now != self.footprint {
            value::shift_gauges(self.footprint.0, self.footprint.1, true);
            value::shift_gauges(now.0, now.1, false);
            self.footprint = now;
        }
        Ok(())
    }
}

impl Drop for Held<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.dirty {
            self.commit_on_drop();
        }
    }
}

impl Held<'_> {
    /// A handle dropped with changes not stored (the hot path stores, or says nothing changed,
    /// so that dropping a handle stays a few instructions inline).
    #[cold]
    #[inline(never)]
    fn commit_on_drop(&mut self) {
        // Nothing to report to: a failure leaves the old value in place.
        let _ = self.commit();
    }
}

impl Deref for Held<'_> {
    type Target = Limiter;
    #[inline]
    fn deref(&self) -> &Limiter {
        self.opened.limiter()
    }
}

impl DerefMut for Held<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Limiter {
        self.dirty = true;
        self.opened.limiter_mut()
    }
}

/// Whether `key`, a handle the server opened and lends (a scan callback's), holds a limiter that
/// has no TTL.
pub(crate) fn is_limiter_without_ttl(key: *mut raw::RedisModuleKey) -> bool {
    // Borrowed: the server closes it, so this view must never run `Drop`.
    let view = std::mem::ManuallyDrop::new(LimiterKey { key });
    matches!(view.holds_limiter(), Ok(true)) && view.expire_at_ms().is_none()
}

impl Drop for LimiterKey {
    fn drop(&mut self) {
        if let (false, Some(close)) = (self.key.is_null(), unsafe { raw::RedisModule_CloseKey }) {
            unsafe { close(self.key) };
        }
    }
}
