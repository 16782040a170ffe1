//! The leases of one key as a data structure: sorted by `(end, id)` in chunks of at most
//! [`CHUNK`], with 32-bit fingerprints side by side for the scan for an id. What the leases mean
//! — which are held, what a request does, what a write stores — is in the parent module.

use super::id::{fingerprint, Lease, LeaseId};

/// The most leases one chunk of a table holds: inserting or removing a lease shifts at most
/// this many entries (5 KiB).
pub(super) const CHUNK: usize = 128;

/// How full [`LeasesState::from_parts`](super::LeasesState::from_parts) and decoding fill chunks (room to insert without a
/// split right away).
pub(super) const FILL: usize = CHUNK * 3 / 4;

/// The leases of one key.
#[derive(Clone, Debug)]
pub(super) struct Table {
    /// The leases sorted by `(end, id)`, ids unique, in chunks of 1 to [`CHUNK`] leases (none
    /// empty), any two neighbours together holding more than `CHUNK / 2` (so at most
    /// `4N / CHUNK + 1` chunks). May still hold leases that ended: every write drops the
    /// earliest [`DROP_PER_WRITE`](super::DROP_PER_WRITE) of them.
    pub(super) chunks: Vec<Chunk>,
    /// The longest lease granted since the key was created (or last held nothing): no lease can
    /// end after `now + longest_us`.
    pub(super) longest_us: u64,
    /// The last id the server made for this key (0: none).
    pub(super) last_id: u64,
}

/// The same leases, however chunked (a reloaded key is chunked unlike the live one).
impl PartialEq for Table {
    fn eq(&self, other: &Table) -> bool {
        self.longest_us == other.longest_us
            && self.last_id == other.last_id
            && self.len() == other.len()
            && self.iter().eq(other.iter())
    }
}

impl Eq for Table {}

/// Up to [`CHUNK`] leases in order, with 32 bits of their fingerprints side by side: finding an
/// id reads 4 bytes a lease in one array (compared four at a time), not 40 bytes a lease.
#[derive(Clone, Debug, Default)]
pub(super) struct Chunk {
    pub(super) leases: Vec<Lease>,
    /// `prints[i] == short(leases[i].print)`.
    pub(super) prints: Vec<u32>,
}

/// 32 bits of a fingerprint (what a chunk keeps side by side).
pub(super) fn short(print: u64) -> u32 {
    // The high half folded onto the low one: the truncation is the point.
    #[allow(clippy::cast_possible_truncation)]
    let folded = (print ^ (print >> 32)) as u32;
    folded
}

impl std::ops::Deref for Chunk {
    type Target = [Lease];
    fn deref(&self) -> &[Lease] {
        &self.leases
    }
}

impl Chunk {
    pub(super) fn with_capacity(n: usize) -> Chunk {
        Chunk {
            leases: Vec::with_capacity(n),
            prints: Vec::with_capacity(n),
        }
    }

    pub(super) fn from_vec(leases: Vec<Lease>) -> Chunk {
        let prints = leases.iter().map(|l| short(l.print)).collect();
        Chunk { leases, prints }
    }

    pub(super) fn insert(&mut self, i: usize, lease: Lease) {
        self.prints.insert(i, short(lease.print));
        self.leases.insert(i, lease);
    }

    pub(super) fn remove(&mut self, i: usize) -> Lease {
        self.prints.remove(i);
        self.leases.remove(i)
    }

    /// Drops the first `n` leases.
    pub(super) fn drop_front(&mut self, n: usize) {
        let n = n.min(self.leases.len());
        self.prints.drain(..n);
        self.leases.drain(..n);
    }

    pub(super) fn split_off(&mut self, at: usize) -> Chunk {
        Chunk {
            leases: self.leases.split_off(at),
            prints: self.prints.split_off(at),
        }
    }

    pub(super) fn append(&mut self, mut other: Chunk) {
        self.leases.append(&mut other.leases);
        self.prints.append(&mut other.prints);
    }

    /// Takes the leases from `at` on out.
    pub(super) fn take_tail(&mut self, at: usize) -> Vec<Lease> {
        self.prints.truncate(at);
        self.leases.split_off(at.min(self.leases.len()))
    }

    pub(super) fn extend(&mut self, leases: impl Iterator<Item = Lease>) {
        for l in leases {
            self.prints.push(short(l.print));
            self.leases.push(l);
        }
    }

    /// Gives memory back once mostly empty.
    pub(super) fn shrink(&mut self) {
        let (len, cap) = (self.leases.len(), self.leases.capacity());
        if cap > 16 && cap / 4 > len {
            self.leases.shrink_to(len.saturating_mul(2));
            self.prints.shrink_to(len.saturating_mul(2));
        }
    }

    /// Where `id` (fingerprint `print`) is from index `from` on: compares short fingerprints
    /// sixteen at a time (branch-free, so the compiler vectorises it), then the ids where one
    /// matched.
    pub(super) fn find(&self, print: u64, id: &LeaseId, from: usize) -> Option<usize> {
        let print = short(print);
        let prints = self.prints.get(from..)?;
        let check = |start: usize, block: &[u32]| {
            block.iter().enumerate().find_map(|(k, &p)| {
                let i = start.checked_add(k)?;
                (p == print && self.leases.get(i).is_some_and(|l| l.id == *id)).then_some(i)
            })
        };
        let blocks = prints.chunks_exact(16);
        let rest = blocks.remainder();
        let mut base = from;
        for block in blocks {
            let hits = block.iter().fold(0u32, |n, &p| n | u32::from(p == print));
            if hits != 0 {
                if let Some(i) = check(base, block) {
                    return Some(i);
                }
            }
            base = base.saturating_add(16);
        }
        check(base, rest)
    }
}

/// A place in a table: chunk `c`, index `i` in it (`c` = the chunk count: past the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) c: usize,
    pub(super) i: usize,
}

pub(super) const START: Pos = Pos { c: 0, i: 0 };

impl Table {
    pub(super) const fn empty() -> Table {
        Table {
            chunks: Vec::new(),
            longest_us: 0,
            last_id: 0,
        }
    }

    /// A table of `leases` (sorted), in chunks of [`FILL`].
    pub(super) fn from_sorted(leases: Vec<Lease>, longest_us: u64, last_id: u64) -> Table {
        let mut chunks = Vec::with_capacity(leases.len().div_ceil(FILL));
        let mut rest = leases.into_iter();
        loop {
            let chunk: Vec<Lease> = rest.by_ref().take(FILL).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(Chunk::from_vec(chunk));
        }
        Table {
            chunks,
            longest_us,
            last_id,
        }
    }

    /// Leases stored (ended ones included). O(N / CHUNK).
    pub(super) fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Every stored lease, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Lease> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The leases from `p` on, in order.
    pub(super) fn iter_from(&self, p: Pos) -> impl Iterator<Item = &Lease> + '_ {
        let first = self
            .chunks
            .get(p.c)
            .and_then(|c| c.get(p.i..))
            .unwrap_or(&[]);
        let rest = self
            .chunks
            .get(p.c.saturating_add(1)..)
            .unwrap_or(&[])
            .iter()
            .flat_map(|c| c.iter());
        first.iter().chain(rest)
    }

    /// The lease at `p`.
    pub(super) fn get(&self, p: Pos) -> Option<&Lease> {
        self.chunks.get(p.c)?.get(p.i)
    }

    /// How many leases lie from `p` on. O(N / CHUNK).
    pub(super) fn count_from(&self, p: Pos) -> usize {
        let first = self
            .chunks
            .get(p.c)
            .map_or(0, |c| c.len().saturating_sub(p.i));
        let rest: usize = self
            .chunks
            .get(p.c.saturating_add(1)..)
            .unwrap_or(&[])
            .iter()
            .map(|c| c.len())
            .sum();
        first.saturating_add(rest)
    }

    /// The `n`-th lease (0-based) from `p` on. O(N / CHUNK).
    pub(super) fn nth_from(&self, p: Pos, mut n: usize) -> Option<&Lease> {
        let mut i = p.i;
        for chunk in self.chunks.get(p.c..)? {
            let left = chunk.len().saturating_sub(i);
            if n < left {
                return chunk.get(i.checked_add(n)?);
            }
            n = n.saturating_sub(left);
            i = 0;
        }
        None
    }

    /// The first place whose lease is not `below` (which holds for a prefix). O(log N).
    pub(super) fn partition(&self, below: impl Fn(&Lease) -> bool) -> Pos {
        let c = self
            .chunks
            .partition_point(|chunk| chunk.last().is_some_and(&below));
        let i = self
            .chunks
            .get(c)
            .map_or(0, |chunk| chunk.partition_point(&below));
        Pos { c, i }
    }

    /// The first lease held at `now_us` (all before it have ended).
    pub(super) fn first_held(&self, now_us: u64) -> Pos {
        self.partition(|l| l.end_us <= now_us)
    }

    /// Leases held at `now_us`.
    pub(super) fn held(&self, now_us: u64) -> usize {
        self.count_from(self.first_held(now_us))
    }

    /// The latest a lease may end at `now_us`.
    pub(super) fn horizon(&self, now_us: u64) -> u64 {
        now_us.saturating_add(self.longest_us)
    }

    /// Where `id` is among the leases from `from` on. O(N): compares fingerprints inline.
    pub(super) fn position(&self, id: &LeaseId, from: Pos) -> Option<Pos> {
        let print = fingerprint(id);
        let first = self.chunks.get(from.c)?;
        if let Some(i) = first.find(print, id, from.i) {
            return Some(Pos { c: from.c, i });
        }
        let next = from.c.checked_add(1)?;
        for (c, chunk) in self.chunks.get(next..)?.iter().enumerate() {
            if let Some(i) = chunk.find(print, id, 0) {
                return Some(Pos {
                    c: c.checked_add(next)?,
                    i,
                });
            }
        }
        None
    }

    /// Gives the chunk array's memory back once it is mostly empty.
    pub(super) fn shrink(&mut self) {
        let (len, cap) = (self.chunks.len(), self.chunks.capacity());
        if cap > 16 && cap / 4 > len {
            self.chunks.shrink_to(len.saturating_mul(2));
        }
    }

    /// Merges chunk `c` into chunk `c - 1` when the two hold at most `CHUNK / 2` together
    /// (restoring the bound on the chunk count after a removal). O(CHUNK + N / CHUNK).
    pub(super) fn merge_at(&mut self, c: usize) {
        let Some(left) = c.checked_sub(1) else {
            return;
        };
        let (Some(a), Some(b)) = (self.chunks.get(left), self.chunks.get(c)) else {
            return;
        };
        if a.len().saturating_add(b.len()) > CHUNK / 2 {
            return;
        }
        let right = self.chunks.remove(c);
        if let Some(a) = self.chunks.get_mut(left) {
            a.append(right);
        }
    }

    /// Removes the lease at `p`. O(CHUNK + N / CHUNK): one chunk shifts.
    pub(super) fn remove(&mut self, p: Pos) -> Option<Lease> {
        let chunk = self.chunks.get_mut(p.c)?;
        if p.i >= chunk.len() {
            return None;
        }
        let lease = chunk.remove(p.i);
        if chunk.is_empty() {
            self.chunks.remove(p.c);
            self.merge_at(p.c);
        } else {
            chunk.shrink();
            self.merge_at(p.c.saturating_add(1));
            self.merge_at(p.c);
        }
        self.shrink();
        Some(lease)
    }

    /// Inserts a lease whose id the table does not hold. O(CHUNK + N / CHUNK): one chunk
    /// shifts, or splits in two.
    pub(super) fn insert(&mut self, lease: Lease) {
        let below = |l: &Lease| l.before(lease.end_us, &lease.id);
        let mut c = self
            .chunks
            .partition_point(|chunk| chunk.last().is_some_and(below))
            .min(self.chunks.len().saturating_sub(1));
        if self.chunks.is_empty() {
            // Most keys hold one lease: no room for four.
            self.chunks.reserve_exact(1);
            self.chunks.push(Chunk::with_capacity(1));
        }
        if self.chunks.get(c).is_some_and(|chunk| chunk.len() >= CHUNK) {
            let last = c.saturating_add(1) == self.chunks.len();
            let Some(chunk) = self.chunks.get_mut(c) else {
                return;
            };
            // After the last lease (most inserts: `now + lease`) a new chunk starts, leaving
            // this one full; elsewhere the chunk splits in halves.
            let tail = if last && chunk.last().is_some_and(below) {
                Chunk::with_capacity(1)
            } else {
                chunk.split_off(CHUNK / 2)
            };
            let goes_after = chunk.last().is_some_and(below);
            let at = c.saturating_add(1);
            self.chunks.insert(at, tail);
            if goes_after {
                c = at;
            }
        }
        if let Some(chunk) = self.chunks.get_mut(c) {
            let i = chunk.partition_point(below);
            chunk.insert(i, lease);
        }
    }

    pub(super) fn last_end(&self) -> u64 {
        self.chunks
            .last()
            .and_then(|c| c.last())
            .map_or(0, |l| l.end_us)
    }

    pub(super) fn is_ahead(&self, now_us: u64) -> bool {
        self.last_end() > self.horizon(now_us)
    }
}
