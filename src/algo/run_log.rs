//! The moving window's log of older runs: varint-encoded chunks with a header each, so that every
//! question the algorithm asks costs a binary search over chunk headers plus a scan of at most one
//! chunk — never a walk of the whole log.
//!
//! A run is `(timestamp, count)`; timestamps strictly increase. Runs are stored in chunks of at
//! most [`CHUNK_RUNS`] runs and about [`CHUNK_BYTES`] bytes: each run as two LEB128 varints, the
//! gap to the previous run's timestamp (0 for a chunk's first run, whose timestamp is in the
//! header) and the count. A chunk's header also holds the *running sum* of every count encoded
//! before it (wrapping `u64`: differences are exact because the live total never exceeds
//! `MAX_COUNT`), so the sum of any stretch of runs is a difference of running sums plus at most
//! one partial chunk scan.
//!
//! Costs, `n` runs in `c = n / CHUNK_RUNS` chunks: append O(1) amortised; find the first run
//! after a time, or the run where a running sum reaches a value: O(log c + CHUNK_RUNS); drop a
//! prefix, a suffix or everything: O(1) — the log only moves the bounds of its live chunks.
//!
//! Dead runs at the front of the first live chunk stay in its bytes until the chunk is dropped:
//! the head is a position inside it.
//!
//! **Frees are bounded too.** Freeing one chunk costs the server's allocator about 300
//! instructions and a cache miss or two; a clock step or an expired burst can drop hundreds of
//! chunks at once. Dropped chunks stay where they are, outside the live bounds: the next chunks
//! the log opens reuse their buffers, and each write frees at most [`FREE_BUDGET`] of them
//! ([`RunLog::release_retired`]); the rest stay counted in `MEMORY USAGE` until then, or until
//! the key is deleted or expires. A log that holds no run keeps existing while it has dropped
//! chunks to free. (An earlier layout moved every dropped chunk's buffer into a list at the drop:
//! O(dropped chunks) plus an allocation, 20,000 instructions and ~50 µs for an expired burst of
//! 100,000 runs.)

use crate::varint::{put_u64, read_u64};

/// Most runs in one chunk: bounds every in-chunk scan.
pub const CHUNK_RUNS: u32 = 256;
/// A chunk takes no new run once its bytes reach this (a run takes at most 20).
pub const CHUNK_BYTES: usize = 1024;
/// Most dropped chunks one write frees.
pub const FREE_BUDGET: usize = 4;
/// Dropped chunks at the front are removed from the chunk array (a move of the live chunks'
/// headers) once at least this many of them, or as many as there are live chunks, are freed.
const COMPACT_AT: usize = 32;

#[derive(Clone, Debug)]
struct Chunk {
    /// Timestamp of the chunk's first run.
    first_ts: u64,
    /// Running sum (wrapping) of every count encoded before the chunk's first run.
    before: u64,
    /// Runs encoded in `bytes`.
    runs: u32,
    /// Number (wrapping) of every run encoded before the chunk's first run: live runs are a
    /// difference of two of these, whatever was dropped in between.
    first_run: u32,
    /// Per run: varint gap to the previous run (0 for the first), varint count.
    bytes: Vec<u8>,
}

impl Chunk {
    fn is_full(&self) -> bool {
        self.runs >= CHUNK_RUNS || self.bytes.len() >= CHUNK_BYTES
    }
}

/// Where a run is: its chunk, byte offset and index in the chunk, its timestamp, and the running
/// sum of the counts encoded before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    chunk: usize,
    byte: usize,
    idx: u32,
    /// The run's timestamp.
    pub ts: u64,
    before: u64,
}

/// The older runs of a moving-window log (never empty while it exists).
///
/// `chunks[lo..hi]` hold the live runs. Chunks before `lo` and from `hi` on were dropped: those
/// in `freed..lo` and from `hi` on still own a buffer, to reuse or free a few at a time; those
/// before `freed` own none and wait to be compacted away.
#[derive(Clone, Debug)]
pub struct RunLog {
    chunks: Vec<Chunk>,
    freed: usize,
    lo: usize,
    hi: usize,
    /// The first live run: in `chunks[lo]` at this byte offset / index, with this time and the
    /// running sum before it.
    head: Pos,
    /// Count merged into the head run by [`RunLog::merge_head`] (0 otherwise).
    head_extra: u64,
    /// Timestamp of the last run, and the running sum after it.
    last_ts: u64,
    end: u64,
    /// Live runs, and the number (wrapping) of every run encoded so far.
    runs: usize,
    next_run: u32,
}

impl RunLog {
    /// A log of one run.
    pub fn new(ts: u64, count: u64) -> RunLog {
        let chunks = vec![Chunk {
            first_ts: ts,
            before: 0,
            runs: 0,
            first_run: 0,
            bytes: Vec::new(),
        }];
        let mut log = RunLog {
            chunks,
            freed: 0,
            lo: 0,
            hi: 1,
            head: Pos {
                chunk: 0,
                byte: 0,
                idx: 0,
                ts,
                before: 0,
            },
            head_extra: 0,
            last_ts: ts,
            end: 0,
            runs: 0,
            next_run: 0,
        };
        log.encode_into_back(0, count);
        log
    }

    /// Live runs.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Sum of the live counts.
    pub fn total(&self) -> u64 {
        self.end
            .wrapping_sub(self.head.before)
            .wrapping_add(self.head_extra)
    }

    /// Timestamp of the oldest live run.
    pub fn first_ts(&self) -> u64 {
        self.head.ts
    }

    /// Timestamp of the newest run.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// The oldest live run.
    pub fn head(&self) -> Pos {
        self.head
    }

    /// Whether it holds no run (it may still hold dropped chunks to free).
    pub fn is_empty(&self) -> bool {
        self.runs == 0
    }

    /// The last live chunk.
    fn back(&self) -> Option<&Chunk> {
        let last = self.hi.checked_sub(1).filter(|&i| i >= self.lo)?;
        self.chunks.get(last)
    }

    /// Appends a run; `ts` must be after [`RunLog::last_ts`] (or the log be empty).
    pub fn push(&mut self, ts: u64, count: u64) {
        if self.back().is_none_or(Chunk::is_full) {
            self.open_chunk(ts);
            self.encode_into_back(0, count);
        } else {
            let gap = ts.saturating_sub(self.last_ts);
            self.encode_into_back(gap, count);
        }
        self.last_ts = ts;
    }

    /// Starts a live chunk at `hi` whose first run is at `ts`: a dropped chunk's buffer when
    /// there is one (after the live chunks, else before them), else a new one.
    fn open_chunk(&mut self, ts: u64) {
        // A sealed chunk keeps only its bytes (one small realloc per CHUNK_RUNS runs).
        if let Some(back) = self.hi.checked_sub(1).and_then(|i| self.chunks.get_mut(i)) {
            if back.bytes.capacity().saturating_sub(back.bytes.len()) > 32 {
                back.bytes.shrink_to_fit();
            }
        }
        let header = Chunk {
            first_ts: ts,
            before: self.end,
            runs: 0,
            first_run: self.next_run,
            bytes: Vec::new(),
        };
        if let Some(dropped) = self.chunks.get_mut(self.hi) {
            let mut bytes = std::mem::take(&mut dropped.bytes);
            bytes.clear();
            *dropped = Chunk { bytes, ..header };
        } else {
            let mut bytes = match self.chunks.get_mut(self.freed) {
                Some(c) if self.freed < self.lo => std::mem::take(&mut c.bytes),
                _ => Vec::new(),
            };
            if self.freed < self.lo {
                self.freed = self.freed.saturating_add(1);
            }
            bytes.clear();
            self.chunks.push(Chunk { bytes, ..header });
        }
        if self.runs == 0 {
            // An empty log starts over in this chunk.
            self.lo = self.hi;
            self.head = Pos {
                chunk: self.hi,
                byte: 0,
                idx: 0,
                ts,
                before: self.end,
            };
            self.head_extra = 0;
        }
        self.hi = self.hi.saturating_add(1);
    }

    fn encode_into_back(&mut self, gap: u64, count: u64) {
        let Some(back) = self.hi.checked_sub(1).and_then(|i| self.chunks.get_mut(i)) else {
            return;
        };
        if back.bytes.capacity().saturating_sub(back.bytes.len()) < 20 {
            // Grow by half (at least 16 bytes): little slack in small logs, few reallocations
            // in big ones.
            // A chunk takes no run once at CHUNK_BYTES, and a run is at most 20 bytes: never
            // grow it past that.
            let len = back.bytes.len();
            let extra = (len / 2)
                .max(16)
                .min(CHUNK_BYTES.saturating_add(20).saturating_sub(len))
                .max(20);
            back.bytes.reserve_exact(extra);
        }
        put_u64(&mut back.bytes, gap);
        put_u64(&mut back.bytes, count);
        back.runs = back.runs.saturating_add(1);
        self.end = self.end.wrapping_add(count);
        self.runs = self.runs.saturating_add(1);
        self.next_run = self.next_run.wrapping_add(1);
    }

    /// The run at `pos`'s successor in the same chunk: `(gap, count, byte after)`.
    fn read_at(&self, chunk: usize, byte: usize) -> Option<(u64, u64, usize)> {
        let bytes = &self.chunks.get(chunk)?.bytes;
        let (gap, next) = read_u64(bytes, byte)?;
        let (count, next) = read_u64(bytes, next)?;
        Some((gap, count, next))
    }

    /// The encoded count of the run at `pos` (the head's merged extra not included).
    fn count_at(&self, pos: &Pos) -> u64 {
        self.read_at(pos.chunk, pos.byte).map_or(0, |(_, c, _)| c)
    }

    /// The logical count of the run at `pos` (with the head's merged extra).
    pub fn count(&self, pos: &Pos) -> u64 {
        let extra = if *pos == self.head {
            self.head_extra
        } else {
            0
        };
        self.count_at(pos).saturating_add(extra)
    }

    /// Sum of the live counts before `pos`.
    pub fn sum_before(&self, pos: &Pos) -> u64 {
        let extra = if *pos == self.head {
            0
        } else {
            self.head_extra
        };
        pos.before
            .wrapping_sub(self.head.before)
            .wrapping_add(extra)
    }

    /// The number (wrapping) of the run at `pos` among every run encoded.
    fn number(&self, pos: &Pos) -> u32 {
        self.chunks
            .get(pos.chunk)
            .map_or(self.next_run, |c| c.first_run.wrapping_add(pos.idx))
    }

    /// The position of live chunk `i`'s first live run.
    fn start_of(&self, i: usize) -> Option<Pos> {
        if i == self.lo {
            return (self.lo < self.hi).then_some(self.head);
        }
        if i < self.lo || i >= self.hi {
            return None;
        }
        let c = self.chunks.get(i)?;
        Some(Pos {
            chunk: i,
            byte: 0,
            idx: 0,
            ts: c.first_ts,
            before: c.before,
        })
    }

    /// The runs of live chunk `i` from its first live run on, each decoded once: the position
    /// and the encoded count (the head's merged extra not included).
    fn chunk_runs(&self, i: usize) -> ChunkRuns<'_> {
        let start = self.start_of(i);
        match start.and_then(|_| self.chunks.get(i)) {
            Some(c) => ChunkRuns::new(&c.bytes, c.runs, start),
            None => ChunkRuns::new(&[], 0, None),
        }
    }

    /// The run after `pos`, if any.
    pub fn next(&self, pos: &Pos) -> Option<Pos> {
        let chunk = self.chunks.get(pos.chunk)?;
        let (_, count, byte) = self.read_at(pos.chunk, pos.byte)?;
        let idx = pos.idx.saturating_add(1);
        if idx < chunk.runs {
            let (gap, _, _) = self.read_at(pos.chunk, byte)?;
            return Some(Pos {
                chunk: pos.chunk,
                byte,
                idx,
                ts: pos.ts.saturating_add(gap),
                before: pos.before.wrapping_add(count),
            });
        }
        self.start_of(pos.chunk.saturating_add(1))
    }

    /// The logical count of the run at `pos` from its encoded count.
    fn logical(&self, pos: &Pos, encoded: u64) -> u64 {
        if *pos == self.head {
            encoded.saturating_add(self.head_extra)
        } else {
            encoded
        }
    }

    /// The first live run for which `pred(pos, count)` holds, for a `pred` that is false on a
    /// prefix of the runs and true after it; `None` when it holds for none. `past(i)` says,
    /// from live chunk `i`'s header alone, whether the answer lies before that chunk's first
    /// live run or is that run (false on a prefix of the chunks, then true).
    /// O(log chunks + CHUNK_RUNS): a binary search over chunk headers — which sit together in
    /// one array, so a long log that nothing touched for a while costs a few cache misses, not
    /// one per chunk buffer — then one chunk's scan.
    fn first_where(
        &self,
        past: impl Fn(usize) -> bool,
        pred: impl Fn(&Pos, u64) -> bool,
    ) -> Option<Pos> {
        if self.runs == 0 {
            return None;
        }
        let (mut lo, mut hi) = (self.lo, self.hi);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            if past(mid) {
                hi = mid;
            } else {
                lo = mid.saturating_add(1);
            }
        }
        // The answer is not before chunk `lo − 1`'s first live run, and not after chunk `lo`'s
        // first run: in chunk lo − 1, or that start.
        if let Some(prev) = lo.checked_sub(1).filter(|&p| p >= self.lo) {
            for (pos, encoded) in self.chunk_runs(prev) {
                if pred(&pos, encoded) {
                    return Some(pos);
                }
            }
        }
        self.start_of(lo)
    }

    /// The first live run with `keep(timestamp)` (a predicate false then true over time).
    pub fn first_from_time(&self, keep: impl Fn(u64) -> bool) -> Option<Pos> {
        let past = |i: usize| self.start_of(i).is_none_or(|p| keep(p.ts));
        self.first_where(past, |p, _| keep(p.ts))
    }

    /// The first run at or after `from` at which the sum of the counts from `from` through it
    /// reaches `need` (≥ 1); `None` when the log ends first. O(log chunks + CHUNK_RUNS).
    pub fn first_reaching(&self, from: &Pos, need: u64) -> Option<Pos> {
        // Every live sum is at most the total (≤ MAX_COUNT < 2⁶³): past it there is no answer,
        // and below it plain u64 sums cannot overflow.
        let total = self.total();
        let target = self.sum_before(from).checked_add(need)?;
        if target > total {
            return None;
        }
        // False for every run before `from` (their sums end at or before `from`'s start, below
        // `target` since `need` ≥ 1), then true from the answer on.
        // The sum through `p` is its running sum after it, less the head's, plus the head's
        // merged extra (which every live run's sum includes once): no per-run head test.
        let base = self.head.before;
        let extra = self.head_extra;
        let live_before = |before: u64| before.wrapping_sub(base).wrapping_add(extra);
        // A chunk whose earlier runs already sum to the target starts after the answer (the
        // head chunk never does: nothing is before it).
        let past = |i: usize| {
            i > self.lo
                && self
                    .start_of(i)
                    .is_none_or(|p| live_before(p.before) >= target)
        };
        self.first_where(past, |p, encoded| {
            live_before(p.before).wrapping_add(encoded) >= target
        })
    }

    /// Drops every run before `pos` (a live run, which becomes the head). O(1).
    pub fn drop_before(&mut self, pos: &Pos) {
        if *pos == self.head {
            return;
        }
        let dropped = self.number(pos).wrapping_sub(self.number(&self.head));
        self.runs = self.runs.saturating_sub(dropped as usize);
        self.lo = pos.chunk;
        self.head = *pos;
        self.head_extra = 0;
    }

    /// Drops every run. O(1).
    pub fn clear(&mut self) {
        self.lo = self.hi;
        self.runs = 0;
        self.end = self.head.before;
        self.head_extra = 0;
    }

    /// Frees at most [`FREE_BUDGET`] dropped chunks' buffers; `true` when none is left.
    pub fn release_retired(&mut self) -> bool {
        let mut budget = FREE_BUDGET;
        while self.freed < self.lo && budget > 0 {
            if let Some(c) = self.chunks.get_mut(self.freed) {
                c.bytes = Vec::new();
            }
            self.freed = self.freed.saturating_add(1);
            budget = budget.saturating_sub(1);
        }
        if self.freed == self.lo
            && self.lo > 0
            && (self.lo >= COMPACT_AT || self.lo >= self.hi.saturating_sub(self.lo))
        {
            // Bufferless dropped chunks leave the array: a move of at most as many headers as
            // were dropped, or of COMPACT_AT dropped for fewer live ones.
            let gone = self.lo;
            self.chunks.drain(..gone);
            self.freed = 0;
            self.lo = 0;
            self.hi = self.hi.saturating_sub(gone);
            self.head.chunk = 0;
        }
        while self.chunks.len() > self.hi && budget > 0 {
            self.chunks.pop();
            budget = budget.saturating_sub(1);
        }
        let done = self.freed == self.lo && self.chunks.len() == self.hi;
        if done && self.chunks.capacity() > 8 && self.chunks.len() < self.chunks.capacity() / 4 {
            self.chunks.shrink_to_fit();
        }
        done
    }

    /// Drops `pos` and every run after it; returns the sum they held. The caller clears the
    /// whole log instead when `pos` is the head. O(1).
    pub fn truncate_at(&mut self, pos: &Pos) -> u64 {
        let dropped_sum = self.total().wrapping_sub(self.sum_before(pos));
        let number = self.number(pos);
        self.runs = number.wrapping_sub(self.number(&self.head)) as usize;
        self.next_run = number;
        self.hi = pos.chunk.saturating_add(1);
        if let Some(c) = self.chunks.get_mut(pos.chunk) {
            c.bytes.truncate(pos.byte);
            c.runs = pos.idx;
            if c.runs == 0 {
                self.hi = pos.chunk;
            }
        }
        self.end = pos.before;
        self.last_ts = self.last_of_back();
        dropped_sum
    }

    /// Timestamp of the last live chunk's last run (a scan of one chunk).
    fn last_of_back(&self) -> u64 {
        let Some(last) = self.hi.checked_sub(1) else {
            return 0;
        };
        self.chunk_runs(last).last().map_or(0, |(p, _)| p.ts)
    }

    /// Merges the head run into the next one (which keeps its later timestamp): what the
    /// previous payload version's replay did at its cap. Returns the merged count when the head
    /// was the last run (the caller adds it to its newest run and drops this log).
    pub fn merge_head(&mut self) -> Option<u64> {
        let merged = self.count(&self.head);
        match self.next(&self.head) {
            Some(next) => {
                self.drop_before(&next);
                self.head_extra = merged;
                None
            }
            None => Some(merged),
        }
    }

    /// Every live run, oldest first: `(timestamp, count)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (self.lo..self.hi)
            .flat_map(|i| self.chunk_runs(i))
            .map(|(p, encoded)| (p.ts, self.logical(&p, encoded)))
    }

    /// Heap blocks: the chunk array and each chunk's bytes, dropped chunks' included (for
    /// `MEMORY USAGE`).
    pub fn heap_blocks(&self) -> impl Iterator<Item = *const u8> + '_ {
        let array = (self.chunks.capacity() > 0).then_some(self.chunks.as_ptr().cast::<u8>());
        array.into_iter().chain(
            self.chunks
                .iter()
                .map(|c| &c.bytes)
                .filter(|b| b.capacity() > 0)
                .map(|b| b.as_ptr()),
        )
    }

    /// Moves each chunk's bytes to the block `relocate` returns (active defrag); a null return
    /// leaves that block.
    ///
    /// # Safety
    /// `relocate` receives a block of the global allocator; a non-null return must be a block of
    /// the same size class holding the same bytes, the old one freed (`RM_DefragAlloc`).
    pub unsafe fn relocate_chunks(&mut self, mut relocate: impl FnMut(*mut u8) -> *mut u8) {
        if self.chunks.capacity() > 0 {
            let moved = relocate(self.chunks.as_mut_ptr().cast());
            if !moved.is_null() {
                let (len, cap) = (self.chunks.len(), self.chunks.capacity());
                std::mem::forget(std::mem::take(&mut self.chunks));
                // SAFETY: as below; the chunk headers moved with their array.
                self.chunks = unsafe { Vec::from_raw_parts(moved.cast(), len, cap) };
            }
        }
        for c in self.chunks.iter_mut() {
            if c.bytes.capacity() == 0 {
                continue;
            }
            let moved = relocate(c.bytes.as_mut_ptr());
            if moved.is_null() {
                continue;
            }
            let (len, cap) = (c.bytes.len(), c.bytes.capacity());
            std::mem::forget(std::mem::take(&mut c.bytes));
            // SAFETY: the old block is gone (caller's contract); the new one has its bytes.
            c.bytes = unsafe { Vec::from_raw_parts(moved, len, cap) };
        }
    }
}

/// The runs of one chunk from a position on, decoding each varint once (plain fields, not a
/// `Pos`, on the way: the scans run this up to CHUNK_RUNS times per search).
struct ChunkRuns<'a> {
    bytes: &'a [u8],
    runs: u32,
    chunk: usize,
    /// The next run: its byte offset (at its gap varint), index, timestamp (before its gap is
    /// added, except for the scan's first run) and the running sum before it.
    byte: usize,
    idx: u32,
    ts: u64,
    before: u64,
    /// Whether the next run is the scan's first (its timestamp is already known).
    first: bool,
}

impl<'a> ChunkRuns<'a> {
    fn new(bytes: &'a [u8], runs: u32, start: Option<Pos>) -> ChunkRuns<'a> {
        match start {
            Some(p) => ChunkRuns {
                bytes,
                runs,
                chunk: p.chunk,
                byte: p.byte,
                idx: p.idx,
                ts: p.ts,
                before: p.before,
                first: true,
            },
            None => ChunkRuns {
                bytes: &[],
                runs: 0,
                chunk: 0,
                byte: 0,
                idx: 0,
                ts: 0,
                before: 0,
                first: true,
            },
        }
    }
}

impl Iterator for ChunkRuns<'_> {
    type Item = (Pos, u64);

    #[inline]
    fn next(&mut self) -> Option<(Pos, u64)> {
        if self.idx >= self.runs {
            return None;
        }
        let Some((gap, after_gap)) = read_u64(self.bytes, self.byte) else {
            self.runs = 0;
            return None;
        };
        if !self.first {
            self.ts = self.ts.saturating_add(gap);
        }
        self.first = false;
        let Some((count, after)) = read_u64(self.bytes, after_gap) else {
            self.runs = 0;
            return None;
        };
        let pos = Pos {
            chunk: self.chunk,
            byte: self.byte,
            idx: self.idx,
            ts: self.ts,
            before: self.before,
        };
        self.byte = after;
        self.idx = self.idx.saturating_add(1);
        self.before = self.before.wrapping_add(count);
        Some((pos, count))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]
mod unit {
    use super::*;

    /// A log of `n` runs at 10, 20, 30, … with counts 1, 2, 3, … (cycling to 7).
    fn log(n: u64) -> (RunLog, Vec<(u64, u64)>) {
        let runs: Vec<(u64, u64)> = (1..=n).map(|i| (i * 10, (i - 1) % 7 + 1)).collect();
        let mut l = RunLog::new(runs[0].0, runs[0].1);
        for &(t, c) in &runs[1..] {
            l.push(t, c);
        }
        (l, runs)
    }

    #[test]
    fn iterates_what_was_pushed_across_chunks() {
        for n in [1, 2, 255, 256, 257, 1_000, 3_000] {
            let (l, runs) = log(n);
            assert_eq!(l.iter().collect::<Vec<_>>(), runs, "{n}");
            assert_eq!(l.runs(), runs.len());
            assert_eq!(l.total(), runs.iter().map(|r| r.1).sum::<u64>());
            assert_eq!(l.last_ts(), runs.last().unwrap().0);
        }
    }

    #[test]
    fn searches_agree_with_a_scan() {
        let (l, runs) = log(2_000);
        for cut in [0u64, 5, 10, 11, 2_560, 2_570, 9_999, 19_990, 20_000, 30_000] {
            let got = l.first_from_time(|t| t > cut).map(|p| p.ts);
            let want = runs.iter().find(|r| r.0 > cut).map(|r| r.0);
            assert_eq!(got, want, "cut {cut}");
            if let Some(p) = l.first_from_time(|t| t > cut) {
                let before: u64 = runs.iter().filter(|r| r.0 <= cut).map(|r| r.1).sum();
                assert_eq!(l.sum_before(&p), before);
                for need in [1u64, 2, 3, 7, 100, 1_000, 5_000] {
                    let got = l.first_reaching(&p, need).map(|q| q.ts);
                    let mut acc = 0;
                    let want = runs.iter().filter(|r| r.0 > cut).find(|r| {
                        acc += r.1;
                        acc >= need
                    });
                    assert_eq!(got, want.map(|r| r.0), "cut {cut} need {need}");
                }
            }
        }
    }

    #[test]
    fn drops_and_truncates() {
        for (n, cut) in [
            (1_000u64, 0u64),
            (1_000, 300),
            (1_000, 2_570),
            (1_000, 9_990),
        ] {
            let (mut l, runs) = log(n);
            let p = l.first_from_time(|t| t > cut).unwrap();
            l.drop_before(&p);
            let kept: Vec<_> = runs.iter().copied().filter(|r| r.0 > cut).collect();
            assert_eq!(l.iter().collect::<Vec<_>>(), kept);
            assert_eq!(l.runs(), kept.len());
            assert_eq!(l.total(), kept.iter().map(|r| r.1).sum::<u64>());
            // Truncate somewhere after the head.
            if kept.len() > 2 {
                let at = kept[kept.len() / 2].0;
                let q = l.first_from_time(|t| t >= at).unwrap();
                let dropped = l.truncate_at(&q);
                let left: Vec<_> = kept.iter().copied().filter(|r| r.0 < at).collect();
                assert_eq!(
                    dropped,
                    kept.iter().filter(|r| r.0 >= at).map(|r| r.1).sum::<u64>()
                );
                assert_eq!(l.iter().collect::<Vec<_>>(), left);
                assert_eq!(l.last_ts(), left.last().unwrap().0);
                assert_eq!(l.runs(), left.len());
                // And it keeps growing correctly.
                l.push(at + 1, 5);
                assert_eq!(l.iter().last(), Some((at + 1, 5)));
            }
        }
    }

    /// Random pushes, drops of a prefix, suffix or everything, head merges and bounded frees,
    /// against a plain list of runs: the same runs, sums and searches after every step, and
    /// the dropped chunks' buffers all freed after enough writes.
    #[test]
    fn lazy_drops_agree_with_a_list() {
        let mut rng = crate::algo::tests::Rng(7);
        for round in 0..40 {
            let mut model: Vec<(u64, u64)> = vec![(1, 1)];
            let mut l = RunLog::new(1, 1);
            let mut t = 1;
            for step in 0..600 {
                let ctx = format!("round {round} step {step}");
                match rng.range(0, 99) {
                    0..=69 => {
                        // A burst of pushes (several chunks at times).
                        let most = if rng.chance(10) { 2_000 } else { 40 };
                        for _ in 0..rng.range(1, most) {
                            t += rng.range(1, 3);
                            let c = rng.range(1, 9);
                            l.push(t, c);
                            model.push((t, c));
                        }
                    }
                    70..=79 if !model.is_empty() => {
                        // Drop a prefix: up to the first run after a random time.
                        let cut = rng.range(model[0].0, t + 1);
                        match l.first_from_time(|ts| ts > cut) {
                            Some(p) => {
                                l.drop_before(&p);
                                model.retain(|r| r.0 > cut);
                            }
                            None => {
                                l.clear();
                                model.clear();
                            }
                        }
                    }
                    80..=87 if model.len() > 1 => {
                        // Cut a suffix after the head.
                        let at = model[rng.range(1, model.len() as u64 - 1) as usize].0;
                        let p = l.first_from_time(|ts| ts >= at).unwrap();
                        let want: u64 = model.iter().filter(|r| r.0 >= at).map(|r| r.1).sum();
                        assert_eq!(l.truncate_at(&p), want, "{ctx}");
                        model.retain(|r| r.0 < at);
                    }
                    88..=90 if model.len() > 1 => {
                        assert_eq!(l.merge_head(), None, "{ctx}");
                        let (_, c) = model.remove(0);
                        model[0].1 += c;
                    }
                    91..=93 => {
                        l.clear();
                        model.clear();
                    }
                    _ => {}
                }
                l.release_retired();
                assert_eq!(l.iter().collect::<Vec<_>>(), model, "{ctx}");
                assert_eq!(l.runs(), model.len(), "{ctx}");
                assert_eq!(l.total(), model.iter().map(|r| r.1).sum::<u64>(), "{ctx}");
                if let Some(&(ts, _)) = model.last() {
                    assert_eq!(l.last_ts(), ts, "{ctx}");
                    assert_eq!(l.first_ts(), model[0].0, "{ctx}");
                    let need = rng.range(1, l.total());
                    let mut acc = 0;
                    let want = model.iter().find(|r| {
                        acc += r.1;
                        acc >= need
                    });
                    let got = l.first_reaching(&l.head(), need).map(|p| p.ts);
                    assert_eq!(got, want.map(|r| r.0), "{ctx} need {need}");
                }
                if model.is_empty() {
                    // An emptied log starts over as the moving window would: a new first run.
                    t += 1;
                    l.push(t, 1);
                    model.push((t, 1));
                }
            }
            // Writes that drop nothing free every dropped chunk within a bounded number.
            for _ in 0..100 {
                if l.release_retired() {
                    break;
                }
            }
            assert!(l.release_retired(), "round {round}: dropped chunks left");
            // The chunk array, and the live chunks (all full but the first and the last).
            let live_chunks = model.len() / CHUNK_RUNS as usize + 2;
            assert!(
                l.heap_blocks().count() <= 1 + live_chunks,
                "round {round}: {} blocks for {} runs",
                l.heap_blocks().count(),
                model.len()
            );
        }
    }

    #[test]
    fn merging_the_head_keeps_the_sum() {
        let (mut l, runs) = log(600);
        let total = l.total();
        for k in 1..599 {
            assert_eq!(l.merge_head(), None);
            assert_eq!(l.total(), total);
            assert_eq!(l.runs(), 600 - k);
            let first = l.iter().next().unwrap();
            assert_eq!(first.0, runs[k].0);
            assert_eq!(first.1, runs[..=k].iter().map(|r| r.1).sum::<u64>());
            let p = l.head();
            assert_eq!(l.first_reaching(&p, first.1).map(|q| q.ts), Some(first.0));
        }
        assert_eq!(l.merge_head(), None);
        assert_eq!(l.merge_head(), Some(total));
    }
}
