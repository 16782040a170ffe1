//! The rule table: every `(rule, anchor high part)` that packed keys use, stored once and shared
//! by all of them (see [`super::value`]). A packed key keeps only the entry's 16-bit id.
//!
//! Most deployments use a handful of rules, and the anchors of keys alive at the same time share
//! their high parts (see [`crate::bits`]), so a few entries per rule serve any number of keys.
//!
//! **Threads.** Entries are reference-counted by the keys that name them. Keys are created,
//! copied and rewritten on the main thread, but freed also on the lazyfree thread (`FLUSHALL
//! ASYNC`, `UNLINK`, lazy expiry / eviction): so a release is one atomic decrement that touches
//! nothing else, and entries never move (chunks of 256, allocated once, never freed). Finding or
//! adding an entry runs under one lock, in practice on the main thread only — except the first
//! try of [`acquire`], which takes a recent entry without it, but only by adding to a count
//! above 0 (then checking the entry is the one wanted). An entry is reused for another rule only
//! after its count dropped to 0: no key names it then, and from 0 only the locked side adds
//! references. The recent entries are pinned (their slots hold a reference), so the first try
//! also serves a rule whose keys have all gone.
//!
//! **Bounds.** At most [`CAPACITY`] entries. Unused entries are reclaimed when the table would
//! otherwise grow past twice the entries in use; when it is full of used entries, a key that
//! needs a new one stays on the heap (correct, just not compact), and the table looks for
//! unused entries again only after some further misses.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::algo::Rule;

/// Bits of an entry id.
pub(crate) const ID_BITS: u32 = 16;
/// The most entries.
pub(crate) const CAPACITY: u32 = 1 << ID_BITS;
const CHUNK_BITS: u32 = 8;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 1 << (ID_BITS - CHUNK_BITS);
/// Misses to wait, once the table was found full of used entries, before looking again.
const FULL_BACKOFF: u32 = 4096;

/// One entry: the rule and the anchor's high part, and how many keys name it.
struct Entry {
    /// Written only under [`TABLE`]'s lock while `refs` is 0 (no key names the entry); read by
    /// holders of a reference, on any thread.
    slot: UnsafeCell<Option<(Rule, u64)>>,
    /// Keys naming the entry (64 bits: no number of keys can wrap it).
    refs: AtomicU64,
}

// SAFETY: `slot` is written only while no other thread can read it (see the field's docs);
// `refs` is atomic.
unsafe impl Sync for Entry {}

/// The chunks of entries, by `id >> CHUNK_BITS`; null until first needed.
static CHUNK_PTRS: [AtomicPtr<Entry>; CHUNKS] = [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS];

/// What finds and adds entries.
static TABLE: Mutex<Option<Interner>> = Mutex::new(None);

/// An entry's identity in the lookup map.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    tag: u8,
    limit: u64,
    window_us: u64,
    burst: u64,
    high: u64,
}

impl Key {
    fn new(rule: &Rule, high: u64) -> Key {
        Key {
            tag: rule.algorithm().tag(),
            limit: rule.limit(),
            window_us: rule.window_us(),
            burst: rule.burst(),
            high,
        }
    }
}

/// FxHash: the map's keys are a few integers, not attacker-chosen strings (a caller picks rules,
/// but the table holds at most [`CAPACITY`] of them), so a fast multiplicative hash serves.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

struct Interner {
    map: HashMap<Key, u32, BuildHasherDefault<Fx>>,
    /// Reclaimed ids, ready for reuse.
    free: Vec<u32>,
    /// Ids below this have been handed out at least once.
    next: u32,
    /// Reclaim unused entries before growing past this.
    sweep_at: u32,
    /// Misses left before looking for unused entries in a full table again.
    backoff: u32,
    /// The last entry found or added (fresh keys of one rule hit it again and again).
    last: Option<(Key, u32)>,
}

impl Interner {
    fn new() -> Interner {
        Interner {
            map: HashMap::default(),
            free: Vec::new(),
            next: 0,
            sweep_at: 256,
            backoff: 0,
            last: None,
        }
    }

    fn find(&mut self, key: Key) -> Option<u32> {
        if let Some((k, id)) = self.last {
            if k == key {
                return Some(id);
            }
        }
        let id = *self.map.get(&key)?;
        self.last = Some((key, id));
        Some(id)
    }

    /// An id for a new entry: a reclaimed one, a never used one, or none (full).
    fn allocate(&mut self) -> Option<u32> {
        if self.free.is_empty() && self.next >= self.sweep_at {
            self.sweep();
        }
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        if self.next < CAPACITY {
            let id = self.next;
            entry_or_new(id)?;
            self.next = id.saturating_add(1);
            return Some(id);
        }
        if self.backoff > 0 {
            self.backoff = self.backoff.saturating_sub(1);
            return None;
        }
        self.sweep();
        let id = self.free.pop();
        if id.is_none() {
            self.backoff = FULL_BACKOFF;
        }
        id
    }

    /// Moves every entry no key names to the free list.
    fn sweep(&mut self) {
        let mut used = 0u32;
        for id in 0..self.next {
            let Some(entry) = entry(id) else { continue };
            if entry.refs.load(Ordering::Acquire) > 0 {
                used = used.saturating_add(1);
                continue;
            }
            // SAFETY: no key names the entry (refs 0) and only this locked side adds names.
            let slot = unsafe { &mut *entry.slot.get() };
            if let Some((rule, high)) = slot.take() {
                self.map.remove(&Key::new(&rule, high));
                self.free.push(id);
            }
        }
        self.last = None;
        self.sweep_at = used.saturating_mul(2).clamp(256, CAPACITY);
    }
}

/// The entry `id`, if its chunk exists.
#[inline(always)]
fn entry(id: u32) -> Option<&'static Entry> {
    let chunk = CHUNK_PTRS.get(usize::try_from(id >> CHUNK_BITS).ok()?)?;
    let base = chunk.load(Ordering::Acquire);
    if base.is_null() {
        return None;
    }
    let index = usize::try_from(id).ok()? & (CHUNK_LEN - 1);
    // SAFETY: a chunk is an array of CHUNK_LEN entries that is never freed; index < CHUNK_LEN.
    Some(unsafe { &*base.add(index) })
}

/// The entry `id`, allocating its chunk (under the lock) if needed.
fn entry_or_new(id: u32) -> Option<&'static Entry> {
    if let Some(e) = entry(id) {
        return Some(e);
    }
    let chunk = CHUNK_PTRS.get(usize::try_from(id >> CHUNK_BITS).ok()?)?;
    let entries: Box<[Entry]> = (0..CHUNK_LEN)
        .map(|_| Entry {
            slot: UnsafeCell::new(None),
            refs: AtomicU64::new(0),
        })
        .collect();
    // Never freed: entries must stay where they are for the module's lifetime.
    chunk.store(Box::into_raw(entries).cast::<Entry>(), Ordering::Release);
    entry(id)
}

/// The entries [`acquire`] found or added lately, by a hash of what they hold: fresh keys of a
/// few rules name the same few entries again and again, so [`acquire`] tries the one its rule
/// and high part hash to first, without the lock. Each slot holds a reference to its entry (a
/// pin, taken and given back under the lock: see [`pin`]), so the entry stays in use — and so
/// unchanged — also while no key names it (a rule whose keys expire before the next is made).
/// `INFO`'s count of entries in use leaves the pins out ([`usage`]).
static RECENT: [AtomicU32; RECENT_LEN] = [const { AtomicU32::new(u32::MAX) }; RECENT_LEN];
const RECENT_LEN: usize = 64;

/// Where in [`RECENT`] the entry for `rule` and `high` goes.
#[inline(always)]
fn recent_slot(rule: &Rule, high: u64) -> &'static AtomicU32 {
    let mut h = Fx::default();
    h.write_u64(rule.limit());
    h.write_u64(rule.window_us() ^ u64::from(rule.algorithm().tag()) << 56);
    h.write_u64(rule.burst() ^ high.rotate_left(32));
    let index = usize::try_from(h.finish() >> 58).unwrap_or(0);
    // (`>> 58` leaves 6 bits: always in range.)
    RECENT.get(index).unwrap_or(&RECENT[0])
}

/// A reference to the entry for `rule` and `high`, added if missing; `None` when the table is
/// full of entries in use.
#[inline]
pub(crate) fn acquire(rule: &Rule, high: u64) -> Option<u32> {
    // A recent entry: a reference is taken only on an entry in use (refs > 0, as a pinned one
    // is), which is never rewritten, so with ours taken its slot is stable and says whether it
    // is the one wanted (if not, the reference is given back).
    let recent = recent_slot(rule, high);
    let last = recent.load(Ordering::Relaxed);
    if let Some(e) = entry(last) {
        let taken = e
            .refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then(|| n.saturating_add(1))
            })
            .is_ok();
        if taken {
            // SAFETY: we hold a reference to the entry (see above).
            if unsafe { *e.slot.get() } == Some((*rule, high)) {
                return Some(last);
            }
            release(last);
        }
    }
    acquire_locked(rule, high, recent)
}

/// [`acquire`] under the lock: finds or adds the entry.
#[inline(never)]
fn acquire_locked(rule: &Rule, high: u64, recent: &AtomicU32) -> Option<u32> {
    let mut table = TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let table = table.get_or_insert_with(Interner::new);
    let key = Key::new(rule, high);
    if let Some(id) = table.find(key) {
        entry(id)?.refs.fetch_add(1, Ordering::AcqRel);
        pin(recent, id);
        return Some(id);
    }
    let id = table.allocate()?;
    let e = entry(id)?;
    // SAFETY: a new or reclaimed entry: no key names it (refs 0), and we hold the lock.
    unsafe { *e.slot.get() = Some((*rule, high)) };
    e.refs.store(1, Ordering::Release);
    table.map.insert(key, id);
    table.last = Some((key, id));
    pin(recent, id);
    Some(id)
}

/// Makes `id` (an entry in use) the entry of `recent`, with a reference held for the slot, and
/// gives back the slot's reference to the entry it held before. Under the lock.
fn pin(recent: &AtomicU32, id: u32) {
    let old = recent.load(Ordering::Relaxed);
    if old != id {
        retain(id);
        recent.store(id, Ordering::Relaxed);
        release(old);
    }
}

/// The entries pinned by [`RECENT`].
fn pinned() -> impl Iterator<Item = u32> {
    RECENT
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .filter(|&id| id < CAPACITY)
}

/// Adds a reference to entry `id` (a copy of a key that names it).
pub(crate) fn retain(id: u32) {
    if let Some(e) = entry(id) {
        e.refs.fetch_add(1, Ordering::AcqRel);
    }
}

/// Drops a reference to entry `id` (any thread).
pub(crate) fn release(id: u32) {
    if let Some(e) = entry(id) {
        // Never below 0, whatever happens.
        let _ = e
            .refs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// The rule and anchor high part of entry `id`, which the caller holds a reference to (the
/// module reads them in place: [`slot`]).
#[cfg(test)]
pub(crate) fn get(id: u32) -> Option<(Rule, u64)> {
    let e = entry(id)?;
    // SAFETY: the caller's reference keeps the entry from being rewritten (refs > 0).
    unsafe { *e.slot.get() }
}

/// Where entry `id`'s rule and anchor high part live, which the caller holds a reference to: read
/// it only while that reference is held (an entry is rewritten only once no key names it). A
/// pointer, not a copy: the hot path reads the fields it needs in place.
#[inline(always)]
pub(crate) fn slot(id: u32) -> Option<*const (Rule, u64)> {
    let e = entry(id)?;
    // SAFETY: the caller's reference keeps the entry from being rewritten (refs > 0); the
    // pointer is into a chunk that is never freed.
    unsafe { (*e.slot.get()).as_ref() }.map(|s| s as *const (Rule, u64))
}

/// `(entries in use, bytes the table takes)` for `INFO`.
pub(crate) fn usage() -> (u64, u64) {
    let table = TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let Some(table) = table.as_ref() else {
        return (0, 0);
    };
    let refs = |id: u32| entry(id).map_or(0, |e| e.refs.load(Ordering::Acquire));
    // Entries that keys name: in use, but not by their pin alone.
    let pins_alone = pinned().filter(|&id| refs(id) == 1).count();
    let used = (0..table.next)
        .filter(|&id| refs(id) > 0)
        .count()
        .saturating_sub(pins_alone);
    let chunks = CHUNK_PTRS
        .iter()
        .filter(|c| !c.load(Ordering::Acquire).is_null())
        .count();
    let bytes = chunks
        .saturating_mul(CHUNK_LEN)
        .saturating_mul(std::mem::size_of::<Entry>())
        .saturating_add(
            table
                .map
                .capacity()
                .saturating_mul(std::mem::size_of::<(Key, u32)>().saturating_add(1)),
        )
        .saturating_add(table.free.capacity().saturating_mul(4));
    (
        u64::try_from(used).unwrap_or(u64::MAX),
        u64::try_from(bytes).unwrap_or(u64::MAX),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::algo::Algorithm;

    /// Gives back every pin (see `RECENT`), as if the recent slots had moved on.
    fn unpin_all() {
        let _t = TABLE.lock().unwrap();
        for r in &RECENT {
            release(r.swap(u32::MAX, Ordering::Relaxed));
        }
    }

    // One test: the table is process-wide (other tests use it too, so only what this test
    // added is checked).
    #[test]
    fn entries_are_shared_counted_and_reused() {
        let r1 = Rule::new(Algorithm::FixedWindow, 100, 3_600_000_001, None).unwrap();
        let r2 = Rule::new(Algorithm::Gcra, 100, 3_600_000_001, Some(10)).unwrap();
        let a = acquire(&r1, 7).unwrap();
        let b = acquire(&r1, 7).unwrap();
        assert_eq!(a, b);
        assert_eq!(get(a), Some((r1, 7)));
        let c = acquire(&r1, 8).unwrap();
        let d = acquire(&r2, 7).unwrap();
        assert!(c != a && d != a && d != c);
        assert_eq!(get(d), Some((r2, 7)));
        // A rule whose keys are all gone keeps its entry while its recent slot pins it (the
        // lock-free path serves it again; other tests may move the slot on, then the lock does).
        release(d);
        assert_eq!(acquire(&r2, 7), Some(d));
        unpin_all();
        retain(d);
        release(d);
        release(d);
        release(d); // never below 0
        assert_eq!(entry(d).unwrap().refs.load(Ordering::Acquire), 0);
        release(a);
        release(a);
        release(c);
        // Unused now: a sweep reclaims them, and the ids serve other entries.
        {
            let mut t = TABLE.lock().unwrap();
            let t = t.as_mut().unwrap();
            t.sweep();
            for (rule, high) in [(r1, 7), (r1, 8), (r2, 7)] {
                assert!(!t.map.contains_key(&Key::new(&rule, high)));
            }
            assert!(t.free.contains(&a) && t.free.contains(&c) && t.free.contains(&d));
        }
        let mut ids = Vec::new();
        for i in 0..300u64 {
            ids.push(acquire(&r1, 1000 + i).unwrap());
        }
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(get(id), Some((r1, 1000 + i as u64)));
        }
        let (used, bytes) = usage();
        assert!(used >= 300 && bytes > 0);
        unpin_all();
        for &id in &ids {
            release(id);
            assert_eq!(entry(id).unwrap().refs.load(Ordering::Acquire), 0);
        }
    }
}
