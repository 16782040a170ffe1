//! How a key's limiter lives in memory: the value word the server keeps for the key (the server
//! stores it in its module-value wrapper and hands it only to this type's callbacks). Three
//! forms, the smallest that holds the state:
//!
//! | form | value word | heap | holds |
//! |---|---|---|---|
//! | **word** | `1 \| id << 1 \| bits << 17` | nothing | a state packed into [`WORD_BITS`] bits |
//! | **block** | `pointer \| 2` | 16 bytes: `id \| bits << 16`, 128 bits | a state packed into [`BLOCK_BITS`] bits |
//! | **box** | `pointer` | a whole [`Limiter`] (64 bytes, plus a log's blocks) | anything |
//!
//! `id` names a [`rules`] entry — the rule and the high part of the state's anchor, stored once
//! for every key that shares them — and `bits` are the kind's packed state
//! ([`crate::algo::Kind::pack`]). A counter under a usual rule packs into the word and then
//! costs nothing beyond what the server spends on any key; a larger limit or a longer span
//! between keys' times needs the block; states that do not pack (a moving-window log of more
//! than one run, counts above the rule's limit after it was lowered, a full rule table, a
//! target whose pointers are not 64 bits) stay boxed.
//!
//! Every write packs again (see [`restore`]): a state moves between forms as it changes, and a
//! state that packs under the same entry as before keeps it without touching the table. The
//! payloads (RDB, AOF, replication, `DEBUG DIGEST`) hold the full limiter whatever the form (see
//! `codec`), so the form is invisible outside this process.

use std::ffi::c_void;
use std::mem::ManuallyDrop;

use super::rules::{self, ID_BITS};
use crate::algo::{Algorithm, GcraState, Limiter, Rule, State};
use crate::bits::{Packer, Unpacker};
use crate::stats;

/// Bits of a state packed into the value word.
pub(crate) const WORD_BITS: u32 = 64 - 1 - ID_BITS;
/// Bits of a state packed into a block.
pub(crate) const BLOCK_BITS: u32 = 128 - ID_BITS;

const PACKING: bool = cfg!(target_pointer_width = "64");
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const BLOCK_TAG: usize = 2;

/// The 16 bytes of a block: the entry id in the low [`ID_BITS`] bits, then the packed state.
type Block = u128;

/// A decoded value word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Word {
    /// A state packed into the word: rule table entry `id`, state `bits`.
    Packed { id: u32, bits: u64 },
    /// A state packed into a block.
    Block(*mut Block),
    /// A heap limiter.
    Boxed(*mut Limiter),
}

impl Word {
    /// Reads a value word; `None` for null.
    #[inline]
    pub(crate) fn of(value: *mut c_void) -> Option<Word> {
        if value.is_null() {
            return None;
        }
        let raw = value as usize;
        if !PACKING {
            return Some(Word::Boxed(value.cast()));
        }
        Some(if raw & 1 == 1 {
            let raw = raw as u64;
            Word::Packed {
                id: u32::try_from((raw >> 1) & ID_MASK).ok()?,
                bits: raw >> (1 + ID_BITS),
            }
        } else if raw & BLOCK_TAG == BLOCK_TAG {
            Word::Block((raw & !BLOCK_TAG) as *mut Block)
        } else {
            Word::Boxed(value.cast())
        })
    }

    /// The value word.
    #[inline]
    pub(crate) fn value(self) -> *mut c_void {
        match self {
            // An integer in the pointer's place: the server never dereferences it.
            Word::Packed { id, bits } => {
                (1 | u64::from(id) << 1 | bits << (1 + ID_BITS)) as usize as *mut c_void
            }
            Word::Block(p) => (p as usize | BLOCK_TAG) as *mut c_void,
            Word::Boxed(p) => p.cast(),
        }
    }
}

/// The rule table entry a packed state names: its id, and where its rule and anchor high part
/// live (an entry is not rewritten while a key names it), so that a write under the same rule
/// and high part keeps the entry and reads them in place, copying nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    id: u32,
    slot: *const (Rule, u64),
}

impl Entry {
    /// Whether `rule` and `high` are the entry's.
    #[inline(always)]
    fn holds(&self, rule: &Rule, high: u64) -> bool {
        // SAFETY: the key this entry was read from names it (holds a reference) while an
        // `Opened` lives, so the slot is not rewritten (see `rules`).
        let (r, h) = unsafe { &*self.slot };
        *h == high && r == rule
    }

    /// Whether `rule` is the entry's.
    #[inline(always)]
    fn has_rule(&self, rule: &Rule) -> bool {
        // SAFETY: as in `holds`.
        unsafe { &(*self.slot).0 == rule }
    }
}

/// Packs `limiter` into `cap` bits if its kind can: the bits and the entry to name, which is
/// `current` (no new reference) when the state packs under the same rule and high part, else a
/// new reference. (Always inlined: with `cap` known the word's fields are 64-bit code.)
#[inline(always)]
fn pack(limiter: &Limiter, cap: u32, current: Option<&Entry>) -> Option<(u128, u32)> {
    let mut packer = Packer::new(cap);
    if !limiter.state.pack(&limiter.rule, &mut packer) {
        return None;
    }
    let packed = packer.finish();
    let id = match current {
        Some(e) if e.holds(&limiter.rule, packed.high) => e.id,
        _ => rules::acquire(&limiter.rule, packed.high)?,
    };
    Some((packed.bits, id))
}

/// The limiter of a packed state naming entry `id` (which the caller holds a reference to).
/// (Always inlined: the hot path opens a key once per command, and a call would move the
/// unpacked limiter through several temporaries.)
#[inline(always)]
fn unpack(id: u32, bits: u128, cap: u32) -> Option<(Limiter, Entry)> {
    let slot = rules::slot(id)?;
    // SAFETY: the caller holds a reference to the entry.
    let (rule, high) = unsafe { *slot };
    let mut unpacker = Unpacker::new(bits, cap, high);
    let state = rule.algorithm().unpack_state(&rule, &mut unpacker)?;
    Some((Limiter { rule, state }, Entry { id, slot }))
}

fn new_block(id: u32, bits: u128) -> *mut Block {
    Box::into_raw(Box::new(block_bits(id, bits)))
}

fn block_bits(id: u32, bits: u128) -> Block {
    u128::from(id) | bits << ID_BITS
}

/// A limiter read from a value word: unpacked into a copy, or the heap one in place.
#[derive(Debug)]
pub(crate) enum Opened<'a> {
    /// A copy of a state packed into the word, and the entry it named.
    Packed {
        limiter: ManuallyDrop<Limiter>,
        entry: Entry,
    },
    /// A copy of a state packed into a block, the entry it named, and the block.
    Block {
        limiter: ManuallyDrop<Limiter>,
        entry: Entry,
        block: *mut Block,
    },
    /// The heap limiter.
    Boxed(&'a mut Limiter),
}

impl Drop for Opened<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.release_copy();
    }
}

impl Opened<'_> {
    /// Drops an unpacked copy that may own heap data (a state that grew while the handle was
    /// open and was not stored: a packed state owns none, and [`restore`] moves one that does
    /// to the heap). The copies of the plain kinds skip the out-of-line drop: this is on every
    /// command's path.
    #[inline(always)]
    pub(crate) fn release_copy(&mut self) {
        if let Opened::Packed { limiter, .. } | Opened::Block { limiter, .. } = self {
            if !matches!(
                limiter.state,
                State::SlidingWindow(_)
                    | State::FixedWindow(_)
                    | State::Gcra(_)
                    | State::LimitsSlidingWindow(_)
            ) {
                // The rule is `Copy`: the state is all there is to drop.
                drop(std::mem::replace(
                    &mut limiter.state,
                    State::Gcra(GcraState {
                        tat_scaled: 0,
                        debt: false,
                    }),
                ));
            }
        }
    }

    /// The limiter.
    #[inline]
    pub(crate) fn limiter(&self) -> &Limiter {
        match self {
            Opened::Packed { limiter, .. } | Opened::Block { limiter, .. } => limiter,
            Opened::Boxed(l) => l,
        }
    }

    /// The rule table entry of a packed state.
    pub(crate) fn entry_id(&self) -> Option<u32> {
        match self {
            Opened::Packed { entry, .. } | Opened::Block { entry, .. } => Some(entry.id),
            Opened::Boxed(_) => None,
        }
    }

    /// The limiter, to change (then [`restore`] it).
    #[inline]
    pub(crate) fn limiter_mut(&mut self) -> &mut Limiter {
        match self {
            Opened::Packed { limiter, .. } | Opened::Block { limiter, .. } => limiter,
            Opened::Boxed(l) => l,
        }
    }
}

/// Reads a value word. `None` for null (or a packed state whose entry is gone or that does not
/// unpack, which cannot happen while the key holds its reference).
///
/// # Safety
/// `value` is null or a value word made by this module that is still alive; for a boxed one,
/// no other reference to its limiter is in use while the result lives.
#[inline(always)]
pub(crate) unsafe fn open<'a>(value: *mut c_void) -> Option<Opened<'a>> {
    match Word::of(value)? {
        Word::Packed { id, bits } => {
            let (limiter, entry) = unpack(id, u128::from(bits), WORD_BITS)?;
            Some(Opened::Packed {
                limiter: ManuallyDrop::new(limiter),
                entry,
            })
        }
        Word::Block(block) => {
            let raw = unsafe { *block };
            let id = u32::try_from(raw & u128::from(ID_MASK)).ok()?;
            let (limiter, entry) = unpack(id, raw >> ID_BITS, BLOCK_BITS)?;
            Some(Opened::Block {
                limiter: ManuallyDrop::new(limiter),
                entry,
                block,
            })
        }
        Word::Boxed(p) => unsafe { p.as_mut() }.map(Opened::Boxed),
    }
}

/// What a replaced value word leaves to free once the server holds the new one.
#[must_use]
#[derive(Debug, Default)]
pub(crate) struct Retired {
    entry: Option<u32>,
    block: Option<*mut Block>,
    boxed: Option<*mut Limiter>,
}

impl Retired {
    /// Frees it.
    #[inline]
    pub(crate) fn free(self) {
        if let Some(id) = self.entry {
            rules::release(id);
        }
        if let Some(b) = self.block {
            // SAFETY: a block no value word holds any more.
            drop(unsafe { Box::from_raw(b) });
        }
        if let Some(l) = self.boxed {
            // SAFETY: a limiter no value word holds any more.
            drop(unsafe { Box::from_raw(l) });
        }
    }
}

/// What a limiter adds to the `INFO` gauges: `(moving-window runs, leases stored)`. Kept exact
/// by adding it when a value is made ([`into_value`]: create, load, RESTORE; [`duplicate`]:
/// COPY), taking it away when one is freed ([`free`], maybe on the lazyfree thread), and moving
/// it by the difference when a command changes a value (`key::Held`).
#[inline]
pub(crate) fn footprint(limiter: &Limiter) -> (u64, u64) {
    match limiter.state.kind() {
        State::MovingWindow(log) => (u64::try_from(log.run_count()).unwrap_or(0), 0),
        State::Leases(t) => (0, u64::try_from(t.stored()).unwrap_or(0)),
        _ => (0, 0),
    }
}

/// Adds (or with `sub`, takes away) a footprint from the gauges; nothing for a counter.
pub(crate) fn shift_gauges(runs: u64, leases: u64, sub: bool) {
    for (n, gauge) in [(runs, &stats::RUNS), (leases, &stats::LEASES)] {
        if n != 0 {
            if sub {
                gauge.sub_shared(n);
            } else {
                gauge.add_shared(n);
            }
        }
    }
}

/// The footprint of a live value word, without unpacking it: a packed state is a counter or a
/// moving-window log of one run (`Kind::may_pack`); leases never pack.
///
/// # Safety
/// As for [`open`].
unsafe fn footprint_of(value: *mut c_void) -> (u64, u64) {
    let id = match Word::of(value) {
        None => return (0, 0),
        Some(Word::Boxed(p)) => return unsafe { p.as_ref() }.map_or((0, 0), footprint),
        Some(Word::Packed { id, .. }) => id,
        Some(Word::Block(block)) => match u32::try_from(unsafe { *block } & u128::from(ID_MASK)) {
            Ok(id) => id,
            Err(_) => return (0, 0),
        },
    };
    // SAFETY: the value names the entry (holds a reference), so its slot is not rewritten.
    match rules::slot(id).map(|slot| unsafe { (*slot).0.algorithm() }) {
        Some(Algorithm::MovingWindow) => (1, 0),
        _ => (0, 0),
    }
}

/// Makes the value word for a new key holding `limiter` (freed by [`free`]). Counted in
/// `INFO ratelimit` `keys` until then.
pub(crate) fn into_value(limiter: Limiter) -> *mut c_void {
    stats::KEYS.add_shared(1);
    let (runs, leases) = footprint(&limiter);
    shift_gauges(runs, leases, false);
    if PACKING {
        // Packed, the limiter is done with: dropped as an unpacked copy is (a plain kind's
        // state owns nothing, so no drop call on a fresh key's path).
        let limiter = NoEntry::new(limiter);
        if let Some((bits, id)) = pack(&limiter.limiter, WORD_BITS, None) {
            let bits = u64::try_from(bits).unwrap_or(0);
            return Word::Packed { id, bits }.value();
        }
        if let Some((bits, id)) = pack(&limiter.limiter, BLOCK_BITS, None) {
            return Word::Block(new_block(id, bits)).value();
        }
        return Word::Boxed(Box::into_raw(Box::new(limiter.into_inner()))).value();
    }
    Word::Boxed(Box::into_raw(Box::new(limiter))).value()
}

/// The usual write, alone: a state read from the value word that packs there again under the
/// same entry (same rule, same anchor high part) gives its new word, which names what the old
/// one named and holds nothing else (so nothing is retired, and nothing is to discard if the
/// server refuses it); `None` for every other case ([`restore`]).
#[inline(always)]
pub(crate) fn repack(opened: &Opened<'_>) -> Option<*mut c_void> {
    match opened {
        Opened::Packed { limiter, entry } => repack_word(limiter, entry),
        _ => None,
    }
}

/// [`repack`] of a limiter unpacked from the word naming `entry`.
#[inline(always)]
fn repack_word(limiter: &Limiter, entry: &Entry) -> Option<*mut c_void> {
    if !PACKING || !entry.has_rule(&limiter.rule) {
        return None;
    }
    let mut packer = Packer::new(WORD_BITS);
    if !limiter.state.pack(&limiter.rule, &mut packer) {
        return None;
    }
    let packed = packer.finish();
    // SAFETY: as in `Entry::holds`.
    if packed.high != unsafe { (*entry.slot).1 } {
        return None;
    }
    let bits = u64::try_from(packed.bits).ok()?;
    Some(Word::Packed { id: entry.id, bits }.value())
}

/// A state packed into the value word, unpacked on the stack for the hot path
/// (`LimiterKey::update`): no handle is built or moved around it.
pub(crate) struct Unpacked {
    /// The copy (plain data, unless the state grew heap data while unpacked: see its `Drop`).
    limiter: ManuallyDrop<Limiter>,
    entry: Entry,
}

impl Unpacked {
    /// The limiter.
    #[inline(always)]
    pub(crate) fn limiter_mut(&mut self) -> &mut Limiter {
        &mut self.limiter
    }

    /// The new value word when the (changed) state packs into the word under the same entry,
    /// as [`repack`] decides; `None`: [`Unpacked::into_opened`] and the general path.
    #[inline(always)]
    pub(crate) fn repack(&self) -> Option<*mut c_void> {
        repack_word(&self.limiter, &self.entry)
    }

    /// The handle's form of it, and what the stored value added to the gauges (a packed state
    /// is a counter or a one-run log, as [`free`] counts it): for the general path.
    pub(crate) fn into_opened<'a>(self) -> (Opened<'a>, (u64, u64)) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the limiter moves into the result.
        let limiter = unsafe { std::ptr::read(&this.limiter) };
        // SAFETY: as in `Entry::holds`.
        let moving = unsafe { (*this.entry.slot).0.algorithm() } == Algorithm::MovingWindow;
        let footprint = if moving { (1, 0) } else { (0, 0) };
        (
            Opened::Packed {
                limiter,
                entry: this.entry,
            },
            footprint,
        )
    }
}

impl Drop for Unpacked {
    /// As `Opened::release_copy`: a plain kind's copy owns nothing.
    #[inline(always)]
    fn drop(&mut self) {
        release_plain(&mut self.limiter);
    }
}

/// A limiter about to be packed (a new value's): dropped as an [`Unpacked`] copy is, without a
/// call when its state is plain data.
struct NoEntry {
    limiter: ManuallyDrop<Limiter>,
}

impl NoEntry {
    /// Holds `limiter`.
    #[inline(always)]
    fn new(limiter: Limiter) -> NoEntry {
        NoEntry {
            limiter: ManuallyDrop::new(limiter),
        }
    }

    /// The limiter, to keep.
    fn into_inner(self) -> Limiter {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the limiter moves out.
        unsafe { std::ptr::read(&*this.limiter) }
    }
}

impl Drop for NoEntry {
    #[inline(always)]
    fn drop(&mut self) {
        release_plain(&mut self.limiter);
    }
}

/// Drops a limiter copy, without a call when its state is plain data (the counters: a packed
/// state owns nothing; a moving-window log or anything else may own heap blocks).
#[inline(always)]
fn release_plain(limiter: &mut ManuallyDrop<Limiter>) {
    if !matches!(
        limiter.state,
        State::SlidingWindow(_)
            | State::FixedWindow(_)
            | State::Gcra(_)
            | State::LimitsSlidingWindow(_)
    ) {
        // SAFETY: the caller drops the copy once, here.
        unsafe { ManuallyDrop::drop(limiter) };
    }
}

/// The state packed into value word `value`, unpacked; `None` for any other form (or null).
///
/// # Safety
/// As for [`open`].
#[inline(always)]
pub(crate) unsafe fn unpack_word(value: *mut c_void) -> Option<Unpacked> {
    match Word::of(value)? {
        Word::Packed { id, bits } => {
            let (limiter, entry) = unpack(id, u128::from(bits), WORD_BITS)?;
            Some(Unpacked {
                limiter: ManuallyDrop::new(limiter),
                entry,
            })
        }
        _ => None,
    }
}

/// After `opened` (read from `value`) may have changed: the value word to store now — `value`
/// itself when the form did not change (a boxed limiter or a block changed in place, the same
/// packed word) — and what to free once the server holds it. A packed limiter that has to go to
/// the heap is moved there: `opened` is done afterwards.
#[inline(always)]
pub(crate) fn restore(value: *mut c_void, opened: &mut Opened<'_>) -> (*mut c_void, Retired) {
    // The usual writes, without the general case's work: a state in the word that packs there
    // again under the same entry (what `restore_forms` decides too), or a boxed state that
    // cannot pack.
    if let Some(word) = repack(opened) {
        return (word, Retired::default());
    }
    if let Opened::Boxed(l) = &*opened {
        if !l.state.may_pack() {
            return (value, Retired::default());
        }
    }
    restore_forms(value, opened)
}

/// [`restore`] in general: from every form to every form.
#[inline(never)]
fn restore_forms(value: *mut c_void, opened: &mut Opened<'_>) -> (*mut c_void, Retired) {
    let (limiter, entry, block, boxed) = match &*opened {
        Opened::Packed { limiter, entry } => (&**limiter, Some(*entry), None, None),
        Opened::Block {
            limiter,
            entry,
            block,
        } => (&**limiter, Some(*entry), Some(*block), None),
        Opened::Boxed(l) => (&**l, None, None, Some(value.cast::<Limiter>())),
    };
    let mut retired = Retired::default();
    let old_id = entry.map(|e| e.id);
    let retire_entry = |retired: &mut Retired, new_id: u32| {
        if old_id != Some(new_id) {
            retired.entry = old_id;
        }
    };
    if PACKING {
        if let Some((bits, id)) = pack(limiter, WORD_BITS, entry.as_ref()) {
            retire_entry(&mut retired, id);
            retired.block = block;
            retired.boxed = boxed;
            let bits = u64::try_from(bits).unwrap_or(0);
            return (Word::Packed { id, bits }.value(), retired);
        }
        if let Some((bits, id)) = pack(limiter, BLOCK_BITS, entry.as_ref()) {
            retire_entry(&mut retired, id);
            retired.boxed = boxed;
            let block = match block {
                Some(b) => {
                    // SAFETY: the key's own block, which nothing else uses.
                    unsafe { *b = block_bits(id, bits) };
                    b
                }
                None => new_block(id, bits),
            };
            return (Word::Block(block).value(), retired);
        }
    }
    if boxed.is_some() {
        return (value, retired);
    }
    retired.entry = old_id;
    retired.block = block;
    // Moved, not cloned: a log that just grew a second run has heap blocks of its own. The
    // handle is done with it.
    let placeholder = State::Gcra(GcraState {
        tat_scaled: 0,
        debt: false,
    });
    let limiter = opened.limiter_mut();
    let state = std::mem::replace(&mut limiter.state, placeholder);
    let boxed = Limiter {
        rule: limiter.rule,
        state,
    };
    (Word::Boxed(Box::into_raw(Box::new(boxed))).value(), retired)
}

/// Frees a value word made by [`into_value`] or [`duplicate`] (any thread: the server may free
/// on its lazyfree thread).
///
/// # Safety
/// `value` is null or a live value word made by this module, not used afterwards.
pub(crate) unsafe fn free(value: *mut c_void) {
    if !value.is_null() {
        stats::KEYS.sub_shared(1);
        let (runs, leases) = unsafe { footprint_of(value) };
        shift_gauges(runs, leases, true);
    }
    unsafe { free_word(value) }
}

/// Frees what a value word holds, whatever made it.
///
/// # Safety
/// As for [`free`].
unsafe fn free_word(value: *mut c_void) {
    match Word::of(value) {
        None => {}
        Some(Word::Packed { id, .. }) => rules::release(id),
        Some(Word::Block(block)) => {
            let raw = unsafe { Box::from_raw(block) };
            if let Ok(id) = u32::try_from(*raw & u128::from(ID_MASK)) {
                rules::release(id);
            }
        }
        Some(Word::Boxed(p)) => drop(unsafe { Box::from_raw(p) }),
    }
}

/// Frees a value word [`restore`] made that the server did not take, except a reference to
/// entry `kept` (which the old value still holds when the new one reused it).
///
/// # Safety
/// `new` differs from the old value word and was never stored.
pub(crate) unsafe fn discard(new: *mut c_void, kept: Option<u32>) {
    match Word::of(new) {
        Some(Word::Packed { id, .. }) if Some(id) == kept => {}
        Some(Word::Block(block)) => {
            let raw = unsafe { Box::from_raw(block) };
            match u32::try_from(*raw & u128::from(ID_MASK)) {
                Ok(id) if Some(id) != kept => rules::release(id),
                _ => {}
            }
        }
        _ => unsafe { free_word(new) },
    }
}

/// A second value word equal to `value` (`COPY`), counted as [`into_value`] counts.
///
/// # Safety
/// As for [`open`].
pub(crate) unsafe fn duplicate(value: *mut c_void) -> *mut c_void {
    let copy = unsafe { copy_word(value) };
    if !copy.is_null() {
        stats::KEYS.add_shared(1);
        let (runs, leases) = unsafe { footprint_of(copy) };
        shift_gauges(runs, leases, false);
    }
    copy
}

/// A second value word equal to `value`.
///
/// # Safety
/// As for [`open`].
unsafe fn copy_word(value: *mut c_void) -> *mut c_void {
    match Word::of(value) {
        None => std::ptr::null_mut(),
        Some(Word::Packed { id, .. }) => {
            rules::retain(id);
            value
        }
        Some(Word::Block(block)) => {
            let raw = unsafe { *block };
            if let Ok(id) = u32::try_from(raw & u128::from(ID_MASK)) {
                rules::retain(id);
            }
            Word::Block(Box::into_raw(Box::new(raw))).value()
        }
        Some(Word::Boxed(p)) => match unsafe { p.as_ref() } {
            Some(l) => Word::Boxed(Box::into_raw(Box::new(l.clone()))).value(),
            None => std::ptr::null_mut(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::algo::{Algorithm, Outcome, Rule};

    fn created(rule: &Rule, cost: u64, now: u64) -> Limiter {
        match Limiter::decide(None, rule, cost, now).unwrap().1 {
            Outcome::Created(l) => l,
            o => panic!("{o:?}"),
        }
    }

    fn form(v: *mut c_void) -> &'static str {
        match Word::of(v).unwrap() {
            Word::Packed { .. } => "word",
            Word::Block(_) => "block",
            Word::Boxed(_) => "box",
        }
    }

    fn check_round_trip(l: &Limiter, expected_form: &str) {
        let v = into_value(l.clone());
        assert_eq!(form(v), expected_form, "{l:?}");
        let mut opened = unsafe { open(v) }.unwrap();
        assert_eq!(opened.limiter(), l);
        let (same, retired) = restore(v, &mut opened);
        assert_eq!(same, v);
        retired.free();
        let copy = unsafe { duplicate(v) };
        assert_eq!(unsafe { open(copy) }.unwrap().limiter(), l);
        unsafe { free(copy) };
        unsafe { free(v) };
    }

    #[test]
    fn counters_pack_into_the_word_or_a_block_and_come_back_whole() {
        let now = 1_780_000_000_123_456;
        const H: u64 = 3_600_000_000;
        const D: u64 = 86_400_000_000;
        for (algo, limit, window, burst, expected) in [
            (Algorithm::SlidingWindow, 100, H, None, "word"),
            (Algorithm::SlidingWindow, 10, 1_000_000, None, "word"),
            (Algorithm::SlidingWindow, 1000, D, None, "word"),
            (Algorithm::SlidingWindow, 1 << 40, 1, None, "block"),
            (Algorithm::FixedWindow, 100, H, None, "word"),
            (Algorithm::FixedWindow, 1000, D, None, "word"),
            (Algorithm::FixedWindow, 10_000, D, None, "block"),
            (Algorithm::Gcra, 100, H, None, "word"),
            (Algorithm::Gcra, 100, H, Some(10), "word"),
            (Algorithm::Gcra, 1000, D, None, "word"),
            (Algorithm::Gcra, 100_000, D, None, "block"),
            (Algorithm::MovingWindow, 100, H, None, "word"),
            (Algorithm::LimitsSlidingWindow, 100, H, None, "word"),
            (Algorithm::LimitsSlidingWindow, 1000, D, None, "block"),
        ] {
            let rule = Rule::new(algo, limit, window, burst).unwrap();
            check_round_trip(&created(&rule, 3, now), expected);
        }
    }

    /// The state forms of `RL.CHARGE` / `BLOCK` / `RL.ACQUIRE`: a gcra debt packs (the word
    /// under `100 1h`, a block under `1000 1d`), a counter's debt (a count above the limit), a
    /// penalty block and leases stay boxed; each form comes back whole and moves back to the
    /// word when the debt or the block is gone.
    #[test]
    fn debts_blocks_and_leases() {
        let now = 1_780_000_000_123_456;
        const H: u64 = 3_600_000_000;
        const D: u64 = 86_400_000_000;
        let bounds = crate::algo::Bounds::DEFAULT;
        let charged = |rule: &Rule, cost: u64| match Limiter::charge(None, rule, cost, now, &bounds)
            .unwrap()
            .outcome
        {
            Outcome::Created(l) => l,
            o => panic!("{o:?}"),
        };
        for (limit, window, expected) in [(100, H, "word"), (1000, D, "block")] {
            let rule = Rule::new(Algorithm::Gcra, limit, window, None).unwrap();
            let l = charged(&rule, limit + limit / 2);
            assert!(matches!(l.state, State::Gcra(g) if g.debt));
            check_round_trip(&l, expected);
        }
        let fixed = Rule::new(Algorithm::FixedWindow, 100, H, None).unwrap();
        check_round_trip(&charged(&fixed, 150), "box");
        check_round_trip(&charged(&fixed, 50), "word");

        // A penalty block: boxed while stored, the word again once a write drops it.
        let mut l = created(&fixed, 1, now);
        l.state
            .set_block(Some(crate::algo::Block::new(now, 1_000_000).unwrap()));
        check_round_trip(&l, "box");
        let v = into_value(l);
        let mut opened = unsafe { open(v) }.unwrap();
        opened.limiter_mut().state.set_block(None);
        let expected = opened.limiter().clone();
        let (w, retired) = restore(v, &mut opened);
        retired.free();
        assert_eq!(form(w), "word");
        assert_eq!(unsafe { open(w) }.unwrap().limiter(), &expected);
        unsafe { free(w) };

        let lease = crate::algo::leases::Lease::new(now + H, crate::algo::leases::LeaseId::Num(7));
        let leases = crate::algo::LeasesState::from_parts(vec![lease], H, 7).unwrap();
        let l = Limiter {
            rule: Rule::new(Algorithm::Leases, 10, H, None).unwrap(),
            state: State::Leases(leases),
        };
        check_round_trip(&l, "box");
    }

    #[test]
    fn states_move_between_forms() {
        let now = 1_780_000_000_123_456;
        const H: u64 = 3_600_000_000;
        let rule = Rule::new(Algorithm::MovingWindow, 100, H, None).unwrap();
        let v = into_value(created(&rule, 1, now));
        // A second run: boxed.
        let mut opened = unsafe { open(v) }.unwrap();
        Limiter::decide(Some(opened.limiter_mut()), &rule, 1, now + 5).unwrap();
        let expected = opened.limiter().clone();
        let (boxed, retired) = restore(v, &mut opened);
        retired.free();
        assert_eq!(form(boxed), "box");
        assert_eq!(unsafe { open(boxed) }.unwrap().limiter(), &expected);
        // Back to one run (the older ones left the window): in the word again.
        let mut opened = unsafe { open(boxed) }.unwrap();
        let later = now + 5 + H;
        Limiter::decide(Some(opened.limiter_mut()), &rule, 1, later).unwrap();
        let expected = opened.limiter().clone();
        let (v2, retired) = restore(boxed, &mut opened);
        retired.free();
        assert_eq!(form(v2), "word");
        assert_eq!(unsafe { open(v2) }.unwrap().limiter(), &expected);
        unsafe { free(v2) };

        // A count above a lowered limit does not fit its field; a block holds it.
        let big = Rule::new(Algorithm::FixedWindow, 100, 1_000_000, None).unwrap();
        let small = Rule::new(Algorithm::FixedWindow, 10, 1_000_000, None).unwrap();
        let mut l = created(&big, 50, now);
        l.rule = small;
        check_round_trip(&l, "box");
        // Word → block → word under rule changes, in place for the block.
        let wide = Rule::new(Algorithm::FixedWindow, 1 << 40, 1_000_000, None).unwrap();
        let v = into_value(created(&big, 1, now));
        assert_eq!(form(v), "word");
        let mut opened = unsafe { open(v) }.unwrap();
        Limiter::decide(Some(opened.limiter_mut()), &wide, 1 << 35, now + 1).unwrap();
        let expected = opened.limiter().clone();
        let (b, retired) = restore(v, &mut opened);
        retired.free();
        assert_eq!(form(b), "block");
        assert_eq!(unsafe { open(b) }.unwrap().limiter(), &expected);
        let mut opened = unsafe { open(b) }.unwrap();
        Limiter::decide(Some(opened.limiter_mut()), &wide, 1, now + 2).unwrap();
        let expected = opened.limiter().clone();
        let (b2, retired) = restore(b, &mut opened);
        retired.free();
        assert_eq!(b2, b, "a block is rewritten in place");
        assert_eq!(unsafe { open(b2) }.unwrap().limiter(), &expected);
        let mut opened = unsafe { open(b2) }.unwrap();
        Limiter::decide(Some(opened.limiter_mut()), &big, 1, now + 2_000_000).unwrap();
        let expected = opened.limiter().clone();
        let (w, retired) = restore(b2, &mut opened);
        retired.free();
        assert_eq!(form(w), "word");
        assert_eq!(unsafe { open(w) }.unwrap().limiter(), &expected);
        unsafe { free(w) };
    }
}
