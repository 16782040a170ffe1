//! Penalty blocks (`BLOCK duration`): once a request is denied, the key stays denied for
//! `duration` from that denial, whatever its algorithm says in the meantime.
//!
//! A block is an interval `[start, until)` stored with the key. While it lasts every request of
//! cost ≥ 1 is denied, `remaining` is 0, and `retry_after` / `reset_after` are the exact
//! delays: the request passes at the first instant that is both at or after `until` and one
//! at which the algorithm admits it (its state keeps ageing during the block), and the key is
//! full again at the later of `until` and the algorithm's own reset. The algorithm's state is
//! not charged and not reset by a block: after it, the key answers as it would have without it.
//!
//! **Clock steps.** A block that starts after `now` (a clock that stepped back, or a promoted
//! replica behind the old master) is read as starting at `now` — the latest it can have
//! started — with its length kept ([`Block::at`]): a step back of a day never adds a day.
//!
//! **Cost.** Most keys are never blocked, so the block lives in a box next to the kind's state
//! ([`Blocked`], the `State::Blocked` variant): a key that was never blocked stores nothing for
//! it. A block that has ended is dropped by the next write of the key.
//!
//! ```
//! use redis_ratelimit::algo::Block;
//! let b = Block::new(1_000, 500).unwrap();
//! assert_eq!((b.start_us, b.until_us), (1_000, 1_500));
//! assert!(b.active(1_499) && !b.active(1_500));
//! // Read at 200 (a clock step back): it starts at 200 and still lasts 500.
//! assert_eq!(b.at(200).until_us, 700);
//! ```

use super::{State, MAX_TIMESTAMP_US, MAX_WINDOW_US};

/// Longest accepted `BLOCK` duration: 365 days, like a window.
pub const MAX_BLOCK_US: u64 = MAX_WINDOW_US;

/// A penalty block: every request is denied from `start_us` (the denial that started it) to
/// `until_us` (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// When the denial that started it happened, µs since the epoch.
    pub start_us: u64,
    /// When it ends, µs since the epoch.
    pub until_us: u64,
}

impl Block {
    /// A block of `duration_us` (1 µs to [`MAX_BLOCK_US`]) starting at `now_us`; `None` for a
    /// duration out of range.
    pub fn new(now_us: u64, duration_us: u64) -> Option<Block> {
        (1..=MAX_BLOCK_US).contains(&duration_us).then(|| Block {
            start_us: now_us,
            until_us: now_us.saturating_add(duration_us),
        })
    }

    /// Its length.
    pub fn duration_us(&self) -> u64 {
        self.until_us.saturating_sub(self.start_us)
    }

    /// Whether it starts after `now_us` (a clock step back).
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.start_us > now_us
    }

    /// The block as seen at `now_us`: one that starts later starts at `now_us`, same length.
    pub fn at(&self, now_us: u64) -> Block {
        if self.is_ahead(now_us) {
            Block {
                start_us: now_us,
                until_us: now_us.saturating_add(self.duration_us()),
            }
        } else {
            *self
        }
    }

    /// Whether it denies requests at `now_us`.
    pub fn active(&self, now_us: u64) -> bool {
        self.at(now_us).until_us > now_us
    }

    /// Whether a decoded block keeps every invariant.
    pub fn is_valid(&self) -> bool {
        self.start_us < self.until_us
            && self.until_us <= MAX_TIMESTAMP_US
            && self.duration_us() <= MAX_BLOCK_US
    }
}

/// A kind's state under a block (the `State::Blocked` variant; never nested).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The block.
    pub block: Block,
    /// The kind's own state, which keeps ageing during the block.
    pub state: State,
}
