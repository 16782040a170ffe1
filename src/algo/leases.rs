//! Concurrency leases: at most `limit` holders at once, each for at most its lease.
//!
//! Rate limits cap how often; leases cap how many at once (a pool of 20 DB connections, a
//! provider's concurrent-request quota), and stay safe when a holder crashes: every lease ends
//! by itself. The state is a set of leases `id → end` (µs). At `now` a lease is **held** iff
//! `end > now` (one ending at `now` is free at `now`).
//!
//! * `acquire(limit, lease, id?)` at `now`: if `id` is given and holds a lease, the lease is
//!   **renewed**: it now ends at `now + lease` (earlier or later than before) and takes no second
//!   slot; always admitted. Otherwise it is admitted iff fewer than `limit` leases are held, and
//!   the new lease `id → now + lease` is added (`id` the caller's, or one the server makes).
//! * `release(id)` at `now`: frees the lease if `id` holds one (`true`), else changes nothing
//!   (`false`): releasing twice, or after the lease ended, is harmless.
//! * `in_flight` = leases held after the call; `reset_after` = until the last held lease ends
//!   (the key's expiry: the key goes with its last lease); `retry_after` (denied) = until enough
//!   leases end for fewer than `limit` to be held — the earliest end when `limit` are held, the
//!   `(held − limit + 1)`-th earliest when the limit was lowered below what is held.
//!
//! **Ids.** A caller's id is 1 to [`MAX_ID_LEN`] bytes. The server makes ids for callers that
//! pass none: the master's time in µs, made strictly increasing per key (the last one is kept
//! in the state) and skipping any number a caller holds, so two holders never share an id while
//! the key lives, and across the key's lives unless the master's clock steps back. An id that is
//! a canonical decimal number (`"42"`, not `"042"`) is the same id whoever made it.
//!
//! **Bound and cost.** A key holds at most `limit` leases and `limit` ≤ [`MAX_LEASES`], so every
//! call is O(N) in the worst case with N ≤ [`MAX_LEASES`], and only a scan for an id is linear.
//! The leases are sorted by `(end, id)` in chunks of at most 128 (two neighbours together hold
//! more than 64, so at most `4N / 128 + 1` chunks): what is held is a binary search; an id is a
//! scan of 32-bit fingerprints kept side by side in each chunk (4 bytes a lease, sixteen compared
//! at once); inserting or removing a lease shifts one chunk (a full one splits, a small one
//! merges into its neighbour). Ended leases are dropped lazily: each write drops at most
//! [`DROP_PER_WRITE`] (the earliest-ending), so no call frees thousands of ids at once. They
//! count for nothing meanwhile (not held, no slot, not renewable, their ids free to take), and
//! they never make a key store more than it could hold: a write adds at most one lease and
//! drops at least one while any ended lease is stored, so a key stores at most the largest
//! `limit` it admitted under. Deleting a key (its last held lease released, or its expiry) frees
//! whatever it stores, ended leases included, as deleting any key does.
//!
//! **Clock steps.** No lease can legitimately end after `now + longest`, `longest` being the
//! longest lease granted since the key was created. Ends beyond that (a clock that stepped back,
//! a promoted replica whose clock is behind) are read as `now + longest`, and every write stores
//! them so: a step back of a day costs at most one lease duration of waiting.
//!
//! **Writes and replication.** A write is one [`Effect`] — acquire (new or renewal), release, or
//! storing a clamped state after a denial — carrying the master's time and the id; the master
//! applies it with the same function a replica or an AOF replay runs ([`replay`]): first the
//! earliest [`DROP_PER_WRITE`] leases that ended by then are dropped, then clamped ends are
//! stored, then the effect. The drop depends only on the stored leases and the master's time, so
//! every node ends with the same set (ended leases not dropped yet included, and they are in the
//! RDB and `DEBUG DIGEST`), the same ends and the same expiry, and the replicated form stays O(1)
//! in the number of leases. Denials, renewals of nothing, releases of nothing and peeks write
//! nothing (and drop nothing).
//!
//! Worked example: limit 2, lease 10 s. At 0 s `a` acquires (ends 10 s), at 1 s the server makes
//! an id for a second holder (ends 11 s). At 2 s a third is denied: `retry_after` 8 s (when `a`
//! ends), `reset_after` 9 s. At 3 s `a` renews: it now ends at 13 s. At 4 s `a` releases; a third
//! holder is admitted.
//!
//! ```
//! use redis_ratelimit::algo::leases::{acquire, release, Acquire, LeaseId};
//! use redis_ratelimit::algo::Outcome;
//! const S: u64 = 1_000_000;
//! let a = LeaseId::parse(b"a").unwrap();
//! let req = |id: Option<&LeaseId>| Acquire::new(2, 10 * S, id.cloned()).unwrap();
//! let v = acquire(None, &req(Some(&a)), 0).unwrap();
//! let Outcome::Created(mut key) = v.outcome else { unreachable!() };
//! let v = acquire(Some(&mut key), &req(None), S).unwrap();
//! assert_eq!(v.grant.id, Some(LeaseId::Num(S)));
//! let v = acquire(Some(&mut key), &req(None), 2 * S).unwrap();
//! assert!(!v.grant.allowed && v.effect.is_none());
//! assert_eq!((v.grant.retry_after_us, v.grant.reset_after_us), (8 * S, 9 * S));
//! let v = acquire(Some(&mut key), &req(Some(&a)), 3 * S).unwrap();
//! assert!(v.grant.allowed && v.grant.in_flight == 2 && v.grant.reset_after_us == 10 * S);
//! assert!(release(Some(&mut key), &a, 4 * S).unwrap().released);
//! assert!(acquire(Some(&mut key), &req(None), 4 * S).unwrap().grant.allowed);
//! ```

use super::kind::{Bounds, Change, Fields, Kind, Replication};
use super::limiter::{AlgorithmMismatch, Limiter, Outcome};
use super::{Algorithm, Decision, Rule, State, MAX_TIMESTAMP_US, MAX_WINDOW_US};
use crate::varint::{put_u64, Reader, Sink};

mod effect;
mod id;
mod table;

pub use effect::{decode_effect, encode_effect, is_effect, EFFECT_VERSION};
use id::fingerprint;
pub use id::{Lease, LeaseId, MAX_ID_LEN};
use table::{short, Chunk, Pos, Table, CHUNK, FILL, START};

/// The most leases one key holds: the largest `limit` `RL.ACQUIRE` accepts (a config later).
pub const MAX_LEASES: u64 = 10_000;

/// The most leases a payload may hold, whatever a node's bound: a fixed format bound, so nodes
/// with different bounds read each other's states.
pub const FORMAT_MAX_LEASES: usize = 1_000_000;

/// The most ended leases one write drops (each a text id to free at most): the rest go in
/// later writes, so a write never frees 10,000 ids at once.
pub const DROP_PER_WRITE: usize = 64;

/// The state of one leases key (boxed: one pointer in [`State`]). Never empty when stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasesState(Box<Table>);

/// An `RL.ACQUIRE` request: the rule (`limit` leases of `lease` µs) and the caller's id if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquire {
    /// `limit` = how many may be held at once, `window_us` = the lease's duration.
    pub rule: Rule,
    /// The caller's id (`None`: the server makes one).
    pub id: Option<LeaseId>,
}

/// Why a request is refused (the key is left unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseError {
    /// `limit` outside `1..=MAX_LEASES`.
    Limit,
    /// `lease` outside `1..=MAX_WINDOW_US`.
    Lease,
    /// The key holds a rate limiter, not leases.
    Mismatch(AlgorithmMismatch),
    /// The server could not make an id (numbers up to `u64::MAX` taken): pass `ID`.
    NoId,
    /// Replaying would hold more than [`FORMAT_MAX_LEASES`].
    Full,
}

impl From<AlgorithmMismatch> for LeaseError {
    fn from(m: AlgorithmMismatch) -> Self {
        LeaseError::Mismatch(m)
    }
}

impl Acquire {
    /// A validated request.
    ///
    /// ```
    /// use redis_ratelimit::algo::leases::{Acquire, LeaseError, MAX_LEASES};
    /// assert!(Acquire::new(10, 30_000_000, None).is_ok());
    /// assert_eq!(Acquire::new(MAX_LEASES + 1, 1, None), Err(LeaseError::Limit));
    /// ```
    pub fn new(limit: u64, lease_us: u64, id: Option<LeaseId>) -> Result<Acquire, LeaseError> {
        if !(1..=MAX_LEASES).contains(&limit) {
            return Err(LeaseError::Limit);
        }
        let rule = Rule::new(Algorithm::Leases, limit, lease_us, None).map_err(|e| match e {
            super::RuleError::Limit => LeaseError::Limit,
            _ => LeaseError::Lease,
        })?;
        Ok(Acquire { rule, id })
    }
}

/// What `RL.ACQUIRE` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Whether the lease was granted (or renewed).
    pub allowed: bool,
    /// The lease's id when granted; `None` when denied.
    pub id: Option<LeaseId>,
    /// Leases held after the call.
    pub in_flight: u64,
    /// Denied: µs until enough leases end for one more (≥ 1); 0 when granted.
    pub retry_after_us: u64,
    /// µs until the last held lease ends (the key's TTL); 0 when none is held.
    pub reset_after_us: u64,
}

/// One write, as the master made it and as replicas and the AOF replay it ([`replay`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A lease `id` until `now + rule.window_us()`, new or renewed; the key's rule becomes `rule`.
    Acquire {
        /// The master's time.
        now_us: u64,
        /// The request's rule.
        rule: Rule,
        /// The lease's id.
        id: LeaseId,
        /// The server made the id (the key remembers the last one it made).
        server_made: bool,
    },
    /// The lease `id` freed.
    Release {
        /// The master's time.
        now_us: u64,
        /// The lease's id.
        id: LeaseId,
    },
    /// Nothing but the ended leases dropped and the clamped ends stored (a denial that found a
    /// state ahead of the clock).
    Clamp {
        /// The master's time.
        now_us: u64,
    },
}

impl Effect {
    /// The master's time.
    pub fn now_us(&self) -> u64 {
        match self {
            Effect::Acquire { now_us, .. }
            | Effect::Release { now_us, .. }
            | Effect::Clamp { now_us } => *now_us,
        }
    }
}

/// What [`acquire`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseVerdict {
    /// The reply.
    pub grant: Grant,
    /// What to store.
    pub outcome: Outcome,
    /// The write to replicate (`None`: nothing written).
    pub effect: Option<Effect>,
    /// The stored state lay ahead of the clock and was read clamped.
    pub clamped: bool,
}

/// What [`release`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// A held lease was freed.
    pub released: bool,
    /// What to store ([`Outcome::Emptied`]: the last lease went, delete the key).
    pub outcome: Outcome,
    /// The write to replicate.
    pub effect: Option<Effect>,
}

/// The empty table an absent key is read as.
static EMPTY: Table = Table::empty();

/// What a request will do, decided without changing anything.
enum Plan {
    Write(Effect),
    Deny { grant: Grant, clamp: bool },
}

impl Table {
    /// The id the server makes at `now_us`: the first number from `max(now, last + 1)` on that
    /// no held lease has.
    fn next_id(&self, now_us: u64, first_held: Pos) -> Option<u64> {
        let mut candidate = now_us.max(self.last_id.checked_add(1)?);
        let mut taken: Vec<u64> = self
            .iter_from(first_held)
            .filter_map(|l| match l.id {
                LeaseId::Num(n) if n >= candidate => Some(n),
                _ => None,
            })
            .collect();
        taken.sort_unstable();
        for n in taken {
            if n == candidate {
                candidate = candidate.checked_add(1)?;
            } else if n > candidate {
                break;
            }
        }
        Some(candidate)
    }

    /// Decides an acquire at `now_us`.
    fn plan(&self, req: &Acquire, now_us: u64) -> Result<Plan, LeaseError> {
        let first = self.first_held(now_us);
        let held = self.count_from(first);
        let write = |id: LeaseId, server_made: bool| {
            Plan::Write(Effect::Acquire {
                now_us,
                rule: req.rule,
                id,
                server_made,
            })
        };
        if let Some(id) = &req.id {
            if self.position(id, first).is_some() {
                return Ok(write(id.clone(), false)); // a renewal
            }
        }
        let limit = usize::try_from(req.rule.limit()).unwrap_or(usize::MAX);
        if held < limit {
            return Ok(match &req.id {
                Some(id) => write(id.clone(), false),
                None => write(
                    LeaseId::Num(self.next_id(now_us, first).ok_or(LeaseError::NoId)?),
                    true,
                ),
            });
        }
        // Held ≥ limit ≥ 1: the (held − limit)-th held lease (0-based) must end first.
        let horizon = self.horizon(now_us);
        let frees_at = self
            .nth_from(first, held.saturating_sub(limit))
            .map_or(now_us, |l| l.end_us.min(horizon));
        Ok(Plan::Deny {
            grant: Grant {
                allowed: false,
                id: None,
                in_flight: u64::try_from(held).unwrap_or(u64::MAX),
                retry_after_us: frees_at.saturating_sub(now_us).max(1),
                reset_after_us: self.last_end().min(horizon).saturating_sub(now_us),
            },
            clamp: self.is_ahead(now_us),
        })
    }

    /// Drops the earliest leases that ended by `now_us`, at most `budget` of them (the rest
    /// stay until later writes: they count for nothing meanwhile); a table holding nothing at
    /// `now_us` forgets its longest lease. O(budget + CHUNK + N / CHUNK).
    fn drop_ended(&mut self, now_us: u64, budget: usize) {
        let mut left = budget;
        while left > 0 {
            let Some(chunk) = self.chunks.first_mut() else {
                break;
            };
            let n = chunk.partition_point(|l| l.end_us <= now_us).min(left);
            if n == 0 {
                break;
            }
            chunk.drop_front(n);
            left = left.saturating_sub(n);
            if chunk.is_empty() {
                self.chunks.remove(0);
            } else {
                chunk.shrink();
                self.merge_at(1);
                break;
            }
        }
        self.shrink();
        if self.held(now_us) == 0 {
            self.longest_us = 0;
        }
    }

    /// Stores ends after `now + longest` as `now + longest` (a clock step back).
    fn clamp(&mut self, now_us: u64) {
        if !self.is_ahead(now_us) {
            return;
        }
        let horizon = self.horizon(now_us);
        // The clamped leases join those ending at the horizon already: sort them all by id,
        // each chunk keeping as many as it had.
        let from = self.partition(|l| l.end_us < horizon);
        let mut tail = Vec::new();
        let mut counts = Vec::new();
        for (c, chunk) in self.chunks.iter_mut().enumerate().skip(from.c) {
            let at = if c == from.c { from.i } else { 0 };
            let before = tail.len();
            tail.extend(chunk.take_tail(at));
            counts.push(tail.len().saturating_sub(before));
        }
        for l in &mut tail {
            l.end_us = horizon;
        }
        tail.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let mut tail = tail.into_iter();
        for (chunk, n) in self.chunks.iter_mut().skip(from.c).zip(counts) {
            chunk.extend(tail.by_ref().take(n));
        }
    }

    /// Applies a write (see [`replay`]).
    fn apply(&mut self, effect: &Effect) -> Result<Change, LeaseError> {
        let now_us = effect.now_us();
        self.drop_ended(now_us, DROP_PER_WRITE);
        self.clamp(now_us);
        match effect {
            Effect::Acquire {
                rule,
                id,
                server_made,
                ..
            } => {
                // The id's lease, held or ended, gives way (and its id's bytes are reused).
                let old = self.position(id, START).and_then(|p| self.remove(p));
                if old.is_none() && self.len() >= FORMAT_MAX_LEASES {
                    return Err(LeaseError::Full);
                }
                let end_us = now_us.saturating_add(rule.window_us());
                let lease = match old {
                    Some(mut l) => {
                        l.end_us = end_us;
                        l
                    }
                    None => Lease::new(end_us, id.clone()),
                };
                self.insert(lease);
                self.longest_us = self.longest_us.max(rule.window_us());
                if let (true, LeaseId::Num(n)) = (server_made, id) {
                    self.last_id = self.last_id.max(*n);
                }
            }
            Effect::Release { id, .. } => {
                if let Some(p) = self.position(id, START) {
                    self.remove(p);
                }
            }
            Effect::Clamp { .. } => {}
        }
        Ok(if self.held(now_us) == 0 {
            Change::Emptied
        } else {
            Change::Updated
        })
    }
}

impl LeasesState {
    /// A state from its parts; `None` unless it keeps every invariant (what decoding accepts).
    pub fn from_parts(leases: Vec<Lease>, longest_us: u64, last_id: u64) -> Option<LeasesState> {
        let s = LeasesState(Box::new(Table::from_sorted(leases, longest_us, last_id)));
        s.is_valid().then_some(s)
    }

    /// The stored leases, sorted by `(end, id)` (some may have ended and not been dropped yet).
    pub fn leases(&self) -> impl Iterator<Item = &Lease> + '_ {
        self.0.iter()
    }

    /// How many leases are stored (ended ones not dropped yet included).
    pub fn stored(&self) -> usize {
        self.0.len()
    }

    /// The longest lease granted since the key was created, µs.
    pub fn longest_us(&self) -> u64 {
        self.0.longest_us
    }

    /// The last id the server made (0: none).
    pub fn last_id(&self) -> u64 {
        self.0.last_id
    }

    /// Leases held at `now_us`.
    pub fn held(&self, now_us: u64) -> u64 {
        u64::try_from(self.0.held(now_us)).unwrap_or(u64::MAX)
    }

    /// Whether `id` holds a lease at `now_us`.
    pub fn holds(&self, id: &LeaseId, now_us: u64) -> bool {
        self.0.position(id, self.0.first_held(now_us)).is_some()
    }

    /// When the last lease ends (the key's expiry).
    pub fn expires_at_us(&self) -> u64 {
        self.0.last_end()
    }

    /// Whether some lease ends after anything possible at `now_us` (a clock step back).
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.0.is_ahead(now_us)
    }

    /// Whether every invariant holds: 1 to [`FORMAT_MAX_LEASES`] leases sorted by `(end, id)`
    /// with unique valid ids, ends in `1..=MAX_TIMESTAMP_US`, a longest lease in
    /// `1..=MAX_WINDOW_US`, chunks of 1 to `CHUNK`. O(N log N): for decoded states.
    pub fn is_valid(&self) -> bool {
        let t = &self.0;
        let mut previous: Option<&Lease> = None;
        let sorted = t.iter().all(|l| {
            let ok = previous.is_none_or(|p| p.before(l.end_us, &l.id));
            previous = Some(l);
            ok
        });
        let mut ids: Vec<&LeaseId> = t.iter().map(|l| &l.id).collect();
        ids.sort_unstable();
        let unique = ids.windows(2).all(|w| matches!(w, [a, b] if a != b));
        t.chunks.iter().all(|c| {
            (1..=CHUNK).contains(&c.len())
                && c.prints.len() == c.len()
                && c.prints
                    .iter()
                    .zip(c.iter())
                    .all(|(p, l)| *p == short(l.print))
        }) && (1..=FORMAT_MAX_LEASES).contains(&t.len())
            && sorted
            && unique
            && t.iter().all(|l| {
                (1..=MAX_TIMESTAMP_US).contains(&l.end_us)
                    && l.id.is_valid()
                    && l.print == fingerprint(&l.id)
            })
            && (1..=MAX_WINDOW_US).contains(&t.longest_us)
    }

    /// The heap blocks it owns besides itself: the table, its chunk array, each chunk's leases
    /// and fingerprints, each text id (for `MEMORY USAGE`): each the start of an allocation.
    pub fn heap_blocks(&self) -> impl Iterator<Item = *const u8> + '_ {
        let table: *const Table = &*self.0;
        let chunks = &self.0.chunks;
        let array = (chunks.capacity() > 0).then_some(chunks.as_ptr().cast::<u8>());
        std::iter::once(table.cast::<u8>())
            .chain(array)
            .chain(chunks.iter().flat_map(|c| {
                let leases = (c.leases.capacity() > 0).then_some(c.leases.as_ptr().cast::<u8>());
                let prints = (c.prints.capacity() > 0).then_some(c.prints.as_ptr().cast::<u8>());
                leases.into_iter().chain(prints)
            }))
            .chain(self.0.iter().filter_map(|l| l.id.heap_block()))
    }

    /// Moves its heap blocks to the ones `relocate` returns (active defrag); a null return leaves
    /// that block.
    ///
    /// # Safety
    /// `relocate` receives a block of the global allocator; a non-null return must be a block of
    /// the same size class holding the same bytes, the old one freed (`RM_DefragAlloc`).
    pub unsafe fn relocate(&mut self, mut relocate: impl FnMut(*mut u8) -> *mut u8) {
        let table: *mut Table = &mut *self.0;
        let moved = relocate(table.cast());
        if !moved.is_null() {
            // SAFETY: the table's bytes now live at `moved` and the old block is freed: adopt
            // the new one and never drop the old Box.
            let old = std::mem::replace(&mut self.0, unsafe { Box::from_raw(moved.cast()) });
            std::mem::forget(old);
        }
        // SAFETY (each vector below): as above; its elements moved with its buffer.
        unsafe { relocate_vec(&mut self.0.chunks, &mut relocate) };
        for chunk in &mut self.0.chunks {
            unsafe { relocate_vec(&mut chunk.leases, &mut relocate) };
            unsafe { relocate_vec(&mut chunk.prints, &mut relocate) };
            for l in chunk.leases.iter_mut() {
                let LeaseId::Text(t) = &mut l.id else {
                    continue;
                };
                let moved = relocate(t.as_mut_ptr());
                if !moved.is_null() {
                    let len = t.len();
                    let old = std::mem::replace(t, Box::new([]));
                    std::mem::forget(old);
                    // SAFETY: as above, a block of `len` bytes.
                    *t = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(moved, len)) };
                }
            }
        }
    }
}

/// Moves a vector's buffer (if it has one) to the block `relocate` returns.
///
/// # Safety
/// As [`LeasesState::relocate`].
unsafe fn relocate_vec<T>(v: &mut Vec<T>, relocate: &mut impl FnMut(*mut u8) -> *mut u8) {
    if v.capacity() == 0 {
        return;
    }
    let moved = relocate(v.as_mut_ptr().cast());
    if !moved.is_null() {
        let (len, cap) = (v.len(), v.capacity());
        std::mem::forget(std::mem::take(v));
        // SAFETY: the buffer's bytes now live at `moved`, a block of the same size class.
        *v = unsafe { Vec::from_raw_parts(moved.cast(), len, cap) };
    }
}
fn leases_of(l: &Limiter) -> Result<&LeasesState, AlgorithmMismatch> {
    match &l.state {
        State::Leases(s) => Ok(s),
        other => Err(mismatch(other.algorithm())),
    }
}

fn leases_of_mut(l: &mut Limiter) -> Result<&mut LeasesState, AlgorithmMismatch> {
    match &mut l.state {
        State::Leases(s) => Ok(s),
        other => Err(mismatch(other.algorithm())),
    }
}

fn mismatch(stored: Algorithm) -> AlgorithmMismatch {
    AlgorithmMismatch {
        stored,
        requested: Algorithm::Leases,
    }
}

/// `RL.ACQUIRE`: decides `req` at `now_us` against the key (`None` = absent) and applies the
/// write, if any, with [`replay`] (so the master stores exactly what replicas will).
pub fn acquire(
    mut stored: Option<&mut Limiter>,
    req: &Acquire,
    now_us: u64,
) -> Result<LeaseVerdict, LeaseError> {
    let state = stored.as_deref().map(leases_of).transpose()?;
    let table = state.map_or(&EMPTY, |s| &*s.0);
    let clamped = table.is_ahead(now_us);
    let effect = match table.plan(req, now_us)? {
        Plan::Write(effect) => effect,
        Plan::Deny { grant, clamp } => {
            let effect = clamp.then_some(Effect::Clamp { now_us });
            let outcome = match &effect {
                Some(e) => replay(stored, e)?,
                None => Outcome::Unchanged,
            };
            return Ok(LeaseVerdict {
                grant,
                outcome,
                effect,
                clamped,
            });
        }
    };
    let outcome = replay(stored.as_deref_mut(), &effect)?;
    let after = match (&outcome, stored.as_deref()) {
        (Outcome::Created(l), _) => leases_of(l)?,
        (_, Some(l)) => leases_of(l)?,
        (_, None) => return Err(LeaseError::Full), // unreachable: an acquire always stores
    };
    let id = match &effect {
        Effect::Acquire { id, .. } => Some(id.clone()),
        _ => None,
    };
    let grant = Grant {
        allowed: true,
        id,
        in_flight: after.held(now_us),
        retry_after_us: 0,
        reset_after_us: after.expires_at_us().saturating_sub(now_us),
    };
    Ok(LeaseVerdict {
        grant,
        outcome,
        effect: Some(effect),
        clamped,
    })
}

/// `RL.RELEASE`: frees the lease `id` holds at `now_us`, if any.
pub fn release(
    stored: Option<&mut Limiter>,
    id: &LeaseId,
    now_us: u64,
) -> Result<Released, LeaseError> {
    let nothing = Released {
        released: false,
        outcome: Outcome::Unchanged,
        effect: None,
    };
    let Some(limiter) = stored else {
        return Ok(nothing);
    };
    if !leases_of(limiter)?.holds(id, now_us) {
        return Ok(nothing);
    }
    let effect = Effect::Release {
        now_us,
        id: id.clone(),
    };
    let outcome = replay(Some(limiter), &effect)?;
    Ok(Released {
        released: true,
        outcome,
        effect: Some(effect),
    })
}

/// Applies a write at the master's time, unconditionally (the master decided): drops the leases
/// that ended by then, stores clamped ends, then acquires, releases or does nothing more. The
/// one function master, replicas and AOF replay run, so all end with the same state.
pub fn replay(stored: Option<&mut Limiter>, effect: &Effect) -> Result<Outcome, LeaseError> {
    let Some(limiter) = stored else {
        let Effect::Acquire { rule, .. } = effect else {
            return Ok(Outcome::Unchanged);
        };
        let mut table = Table::empty();
        table.apply(effect)?;
        return Ok(Outcome::Created(Limiter {
            rule: *rule,
            state: State::Leases(LeasesState(Box::new(table))),
        }));
    };
    let change = leases_of_mut(limiter)?.0.apply(effect)?;
    if let Effect::Acquire { rule, .. } = effect {
        limiter.rule = *rule;
    }
    Ok(match change {
        Change::Emptied => Outcome::Emptied,
        Change::Updated | Change::Unchanged => Outcome::Updated,
    })
}

impl Kind for LeasesState {
    const REPLICATION: Replication = Replication::Effects;
    const RATE_LIMIT: bool = false;

    /// Leases are not a rate limit: `RL.ALLOW` never reaches here (its `ALGO` refuses
    /// `leases`); a look that writes nothing.
    fn decide_absent(rule: &Rule, _cost: u64, _now_us: u64) -> (Decision, Option<Self>) {
        (Decision::look(rule.limit(), rule.limit(), 0), None)
    }

    fn decide(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        _bounds: &Bounds,
    ) -> (Decision, Change) {
        (self.peek(stored, rule, cost, now_us), Change::Unchanged)
    }

    /// The leases in a rate limiter's terms: capacity = limit, remaining = limit − in flight,
    /// reset after = until the last lease ends.
    fn peek(&self, _stored: &Rule, rule: &Rule, _cost: u64, now_us: u64) -> Decision {
        let t = &self.0;
        let reset = t.last_end().min(t.horizon(now_us)).saturating_sub(now_us);
        Decision::look(
            rule.limit(),
            rule.limit().saturating_sub(self.held(now_us)),
            reset,
        )
    }

    /// Leases are never charged: `RL.CHARGE` refuses `ALGO leases` while parsing; a charge that
    /// reached here anyway changes nothing.
    fn charge(
        &mut self,
        _stored: &Rule,
        _rule: &Rule,
        _cost: u64,
        _now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        Change::Unchanged
    }

    /// No leases (see [`Kind::charge`]: never reached from a command).
    fn charge_absent(_rule: &Rule, _cost: u64, _now_us: u64) -> Self {
        LeasesState(Box::new(Table::empty()))
    }

    /// Leases are given back with `RL.RELEASE`, never refunded: changes nothing.
    fn refund(
        &mut self,
        _stored: &Rule,
        _rule: &Rule,
        _amount: u64,
        _now_us: u64,
        _bounds: &Bounds,
    ) -> Change {
        Change::Unchanged
    }

    /// No leases held (leases take no `BLOCK`, so no key lives on for a block alone).
    fn nothing(_rule: &Rule, _now_us: u64) -> Self {
        LeasesState(Box::new(Table::empty()))
    }

    fn carried_over(&self, _stored: &Rule, _rule: &Rule, now_us: u64) -> Option<Self> {
        let mut t = (*self.0).clone();
        t.drop_ended(now_us, usize::MAX);
        t.clamp(now_us);
        (!t.is_empty()).then(|| LeasesState(Box::new(t)))
    }

    fn is_ahead(&self, _rule: &Rule, now_us: u64) -> bool {
        LeasesState::is_ahead(self, now_us)
    }

    fn expires_at_us(&self, _rule: &Rule) -> u64 {
        LeasesState::expires_at_us(self)
    }

    /// Also: the rule's lease (the last one granted) is at most the longest.
    fn is_valid(&self, rule: &Rule) -> bool {
        LeasesState::is_valid(self) && rule.window_us() <= self.0.longest_us
    }

    /// `longest_us last_id n`, then each lease's end (the first absolute, then the gap to the
    /// previous one) and id (a length, 0 for a number followed by the number, else the bytes).
    fn encode(&self, out: &mut impl Sink) {
        let t = &self.0;
        put_u64(out, t.longest_us);
        put_u64(out, t.last_id);
        put_u64(out, u64::try_from(t.len()).unwrap_or(u64::MAX));
        let mut previous = 0;
        for l in t.iter() {
            put_u64(out, l.end_us.saturating_sub(previous));
            l.id.encode(out);
            previous = l.end_us;
        }
    }

    /// Built lease by lease as the bytes are read, in chunks of `FILL`: each vector is
    /// reserved once, for the leases declared or as many as the bytes left can hold, whichever
    /// is fewer (a lease takes at least `MIN_LEASE_BYTES`), so a payload never reserves more
    /// than its own length allows and a real one is read without regrowing (found by fuzzing
    /// `decode`: growing by doubling held up to 24 bytes per payload byte at once).
    fn decode(bytes: &mut Reader<'_>, _rule: &Rule) -> Option<Self> {
        let longest_us = bytes.u64()?;
        let last_id = bytes.u64()?;
        let n = usize::try_from(bytes.u64()?).ok()?;
        if n == 0 || n > FORMAT_MAX_LEASES {
            return None;
        }
        let fits = |bytes: &Reader<'_>, left: usize| left.min(bytes.remaining() / MIN_LEASE_BYTES);
        let mut chunks: Vec<Chunk> = Vec::with_capacity(fits(bytes, n).div_ceil(FILL));
        let mut end_us: u64 = 0;
        let mut left = n;
        while left > 0 {
            let mut chunk = Vec::with_capacity(fits(bytes, left.min(FILL)));
            for _ in 0..left.min(FILL) {
                end_us = end_us.checked_add(bytes.u64()?)?;
                let id = LeaseId::decode(bytes)?;
                chunk.push(Lease::new(end_us, id));
            }
            left = left.saturating_sub(chunk.len());
            chunks.push(Chunk::from_vec(chunk));
        }
        let s = LeasesState(Box::new(Table {
            chunks,
            longest_us,
            last_id,
        }));
        s.is_valid().then_some(s)
    }

    /// `in_flight next_end_us last_end_us stored longest_us last_id`: the leases held at
    /// `now_us`, the earliest and latest end among them (clamped; 0 when none), the leases
    /// stored (ended ones included until writes drop them), the longest lease granted and the
    /// last id the server made.
    fn inspect(state: Option<&Self>, _stored: &Rule, now_us: u64, out: &mut Fields) {
        let t = state.map_or(&EMPTY, |s| &*s.0);
        let first = t.first_held(now_us);
        let horizon = t.horizon(now_us);
        let end = |l: Option<&Lease>| l.map_or(0, |l| l.end_us.min(horizon));
        let held = t.count_from(first);
        out.push(("in_flight", u64::try_from(held).unwrap_or(u64::MAX)));
        out.push(("next_end_us", end(t.get(first))));
        out.push((
            "last_end_us",
            if held > 0 {
                end(t.chunks.last().and_then(|c| c.last()))
            } else {
                0
            },
        ));
        out.push(("stored", u64::try_from(t.len()).unwrap_or(u64::MAX)));
        out.push(("longest_us", t.longest_us));
        out.push(("last_id", t.last_id));
    }
}

/// The fewest payload bytes a stored lease takes: its end (a varint gap) and its id (a number:
/// tag 0 and the varint; bytes: the length and at least one byte).
const MIN_LEASE_BYTES: usize = 3;

/// The reference model (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod reference;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests;
