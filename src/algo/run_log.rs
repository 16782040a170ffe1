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
//! prefix or a suffix: that plus one free per dropped chunk.
//!
//! Dead runs at the front of the first chunk stay in its bytes until the chunk is dropped: the
//! head is a position inside it.
//!
//! **Frees are bounded too.** Freeing one chunk costs the server's allocator about 300
//! instructions; a clock step or an expired burst can drop hundreds of chunks at once. Dropped
//! chunks' buffers are *retired* instead (a move, no free), reused for the next chunks the log
//! opens, and freed at most [`FREE_BUDGET`] per write ([`RunLog::release_retired`]); the rest
//! stay counted in `MEMORY USAGE` until then, or until the key is deleted or expires. A log
//! that holds no run keeps existing while it has retired buffers to free.

use crate::varint::{put_u64, read_u64};

/// Most runs in one chunk: bounds every in-chunk scan.
pub const CHUNK_RUNS: u32 = 256;
/// A chunk takes no new run once its bytes reach this (a run takes at most 20).
pub const CHUNK_BYTES: usize = 1024;
/// Most retired chunk buffers one write frees.
pub const FREE_BUDGET: usize = 16;

#[derive(Clone, Debug)]
struct Chunk {
    /// Timestamp of the chunk's first run.
    first_ts: u64,
    /// Running sum (wrapping) of every count encoded before the chunk's first run.
    before: u64,
    /// Runs encoded in `bytes`.
    runs: u32,
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
#[derive(Clone, Debug)]
pub struct RunLog {
    chunks: Vec<Chunk>,
    /// The first live run: in `chunks[0]` at this byte offset / index, with this time and the
    /// running sum before it.
    head: Pos,
    /// Count merged into the head run by [`RunLog::merge_head`] (0 otherwise).
    head_extra: u64,
    /// Timestamp of the last run, and the running sum after it.
    last_ts: u64,
    end: u64,
    /// Live runs.
    runs: usize,
    /// Buffers of dropped chunks, to reuse or free a few at a time.
    retired: Vec<Vec<u8>>,
}

impl RunLog {
    /// A log of one run.
    pub fn new(ts: u64, count: u64) -> RunLog {
        let chunks = vec![Chunk {
            first_ts: ts,
            before: 0,
            runs: 0,
            bytes: Vec::new(),
        }];
        let mut log = RunLog {
            chunks,
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
            retired: Vec::new(),
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

    /// Whether it holds no run (it may still hold retired buffers).
    pub fn is_empty(&self) -> bool {
        self.runs == 0
    }

    /// Appends a run; `ts` must be after [`RunLog::last_ts`] (or the log be empty).
    pub fn push(&mut self, ts: u64, count: u64) {
        let back_full = self.chunks.last().is_none_or(Chunk::is_full);
        if back_full {
            // A sealed chunk keeps only its bytes (one small realloc per CHUNK_RUNS runs).
            if let Some(back) = self.chunks.last_mut() {
                if back.bytes.capacity().saturating_sub(back.bytes.len()) > 32 {
                    back.bytes.shrink_to_fit();
                }
            }
            let mut bytes = self.retired.pop().unwrap_or_default();
            bytes.clear();
            self.chunks.push(Chunk {
                first_ts: ts,
                before: self.end,
                runs: 0,
                bytes,
            });
            if self.runs == 0 {
                self.head = Pos {
                    chunk: 0,
                    byte: 0,
                    idx: 0,
                    ts,
                    before: self.end,
                };
                self.head_extra = 0;
            }
            self.encode_into_back(0, count);
        } else {
            let gap = ts.saturating_sub(self.last_ts);
            self.encode_into_back(gap, count);
        }
        self.last_ts = ts;
    }

    fn encode_into_back(&mut self, gap: u64, count: u64) {
        let Some(back) = self.chunks.last_mut() else {
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

    /// The position of chunk `i`'s first live run.
    fn start_of(&self, i: usize) -> Option<Pos> {
        if i == 0 {
            return Some(self.head);
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

    /// The runs of chunk `i` from its first live run on, each decoded once: the position and
    /// the encoded count (the head's merged extra not included).
    fn chunk_runs(&self, i: usize) -> ChunkRuns<'_> {
        ChunkRuns {
            bytes: self.chunks.get(i).map_or(&[][..], |c| &c.bytes[..]),
            runs: self.chunks.get(i).map_or(0, |c| c.runs),
            next: self.start_of(i),
            first: true,
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
    /// prefix of the runs and true after it; `None` when it holds for none.
    /// O(log chunks + CHUNK_RUNS): a binary search over the chunks' first runs, then one chunk.
    fn first_where(&self, pred: impl Fn(&Pos, u64) -> bool) -> Option<Pos> {
        if self.runs == 0 {
            return None;
        }
        let n = self.chunks.len();
        let at_start = |i: usize| -> Option<bool> {
            let p = self.start_of(i)?;
            let (_, encoded, _) = self.read_at(p.chunk, p.byte)?;
            Some(pred(&p, encoded))
        };
        // Chunks whose first live run is false form a prefix.
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            if at_start(mid) == Some(false) {
                lo = mid.saturating_add(1);
            } else {
                hi = mid;
            }
        }
        // Chunk `lo` starts true (or does not exist): the answer is in chunk lo − 1, or is that
        // start.
        if let Some(prev) = lo.checked_sub(1) {
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
        self.first_where(|p, _| keep(p.ts))
    }

    /// The first run at or after `from` at which the sum of the counts from `from` through it
    /// reaches `need` (≥ 1); `None` when the log ends first. O(log chunks + CHUNK_RUNS).
    pub fn first_reaching(&self, from: &Pos, need: u64) -> Option<Pos> {
        let target = u128::from(self.sum_before(from)).saturating_add(u128::from(need));
        // False for every run before `from` (their sums end at or before `from`'s start, below
        // `target` since `need` ≥ 1), then true from the answer on.
        // The sum through `p` is its running sum after it, less the head's, plus the head's
        // merged extra (which every live run's sum includes once): no per-run head test.
        let base = self.head.before;
        let extra = u128::from(self.head_extra);
        self.first_where(|p, encoded| {
            u128::from(p.before.wrapping_sub(base))
                .saturating_add(u128::from(encoded))
                .saturating_add(extra)
                >= target
        })
    }

    /// Drops every run before `pos` (which becomes the head). O(dropped chunks + 1).
    pub fn drop_before(&mut self, pos: &Pos) {
        if *pos == self.head {
            return;
        }
        let dropped_chunks = pos.chunk;
        let dropped_chunks = dropped_chunks.min(self.chunks.len());
        let mut dropped_runs: usize = 0;
        self.retired.reserve(dropped_chunks);
        for c in self.chunks.drain(..dropped_chunks) {
            dropped_runs = dropped_runs.saturating_add(c.runs as usize);
            self.retired.push(c.bytes);
        }
        // Runs already dead in the old first chunk were counted out before.
        if dropped_chunks > 0 {
            dropped_runs = dropped_runs.saturating_sub(self.head.idx as usize);
            dropped_runs = dropped_runs.saturating_add(pos.idx as usize);
        } else {
            dropped_runs = (pos.idx.saturating_sub(self.head.idx)) as usize;
        }
        self.runs = self.runs.saturating_sub(dropped_runs);
        self.head = Pos { chunk: 0, ..*pos };
        self.head_extra = 0;
    }

    /// Drops every run (their buffers are retired, not freed).
    pub fn clear(&mut self) {
        self.retired.reserve(self.chunks.len());
        for c in self.chunks.drain(..) {
            self.retired.push(c.bytes);
        }
        self.runs = 0;
        self.end = self.head.before;
        self.head_extra = 0;
    }

    /// Frees at most [`FREE_BUDGET`] retired buffers; `true` when none is left.
    pub fn release_retired(&mut self) -> bool {
        let keep = self.retired.len().saturating_sub(FREE_BUDGET);
        self.retired.truncate(keep);
        if keep == 0 {
            self.retired = Vec::new();
        }
        keep == 0
    }

    /// Drops `pos` and every run after it; returns the sum they held. The caller clears the
    /// whole log instead when `pos` is the head.
    pub fn truncate_at(&mut self, pos: &Pos) -> u64 {
        let dropped_sum = self.total().wrapping_sub(self.sum_before(pos));
        let mut dropped_runs: usize = 0;
        self.retired
            .reserve(self.chunks.len().saturating_sub(pos.chunk));
        while self.chunks.len() > pos.chunk.saturating_add(1) {
            if let Some(c) = self.chunks.pop() {
                dropped_runs = dropped_runs.saturating_add(c.runs as usize);
                self.retired.push(c.bytes);
            }
        }
        if let Some(c) = self.chunks.get_mut(pos.chunk) {
            dropped_runs = dropped_runs.saturating_add(c.runs.saturating_sub(pos.idx) as usize);
            c.bytes.truncate(pos.byte);
            c.runs = pos.idx;
        }
        if self.chunks.last().is_some_and(|c| c.runs == 0) {
            if let Some(c) = self.chunks.pop() {
                self.retired.push(c.bytes);
            }
        }
        self.runs = self.runs.saturating_sub(dropped_runs);
        self.end = pos.before;
        self.last_ts = self.last_of_back();
        dropped_sum
    }

    /// Timestamp of the back chunk's last run (a scan of one chunk).
    fn last_of_back(&self) -> u64 {
        let Some(last) = self.chunks.len().checked_sub(1) else {
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
        (0..self.chunks.len())
            .flat_map(|i| self.chunk_runs(i))
            .map(|(p, encoded)| (p.ts, self.logical(&p, encoded)))
    }

    /// Heap blocks: the chunk array and each chunk's bytes (for `MEMORY USAGE`).
    pub fn heap_blocks(&self) -> impl Iterator<Item = *const u8> + '_ {
        let array = (self.chunks.capacity() > 0).then_some(self.chunks.as_ptr().cast::<u8>());
        let retired = (self.retired.capacity() > 0).then_some(self.retired.as_ptr().cast::<u8>());
        array.into_iter().chain(retired).chain(
            self.chunks
                .iter()
                .map(|c| &c.bytes)
                .chain(self.retired.iter())
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

/// The runs of one chunk from a position on, decoding each varint once.
struct ChunkRuns<'a> {
    bytes: &'a [u8],
    runs: u32,
    /// The next run to yield (its byte offset points at its gap varint).
    next: Option<Pos>,
    /// Whether `next` is the scan's first run (its timestamp is already known).
    first: bool,
}

impl Iterator for ChunkRuns<'_> {
    type Item = (Pos, u64);

    fn next(&mut self) -> Option<(Pos, u64)> {
        let mut pos = self.next.take()?;
        if pos.idx >= self.runs {
            return None;
        }
        let (gap, after_gap) = read_u64(self.bytes, pos.byte)?;
        if !self.first {
            pos.ts = pos.ts.saturating_add(gap);
        }
        self.first = false;
        let (count, after) = read_u64(self.bytes, after_gap)?;
        self.next = Some(Pos {
            byte: after,
            idx: pos.idx.saturating_add(1),
            before: pos.before.wrapping_add(count),
            ..pos
        });
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
