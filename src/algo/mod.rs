//! Pure rate-limiting algorithms: no Redis import, the clock is a parameter.
//!
//! Every algorithm answers the same question — "may a request of `cost` pass at `now_us`?" — with
//! the same [`Decision`]. The Redis glue stores a [`Limiter`] (rule + state) per key and calls
//! [`Limiter::decide`] (charge) or [`Limiter::peek`] (look only); those dispatch, by the stored
//! state, to its kind.
//!
//! Layout: [`rule`] (a validated [`Rule`]), [`decision`] (the reply), [`limiter`] (the stored
//! value and the dispatch), [`kind`] (the [`Kind`] trait every state kind implements, and the one
//! table of kinds that generates [`Algorithm`] and [`State`]); then one file per kind:
//! [`sliding_window`], [`fixed_window`], [`gcra`] (the counters, sharing `counter`) and
//! [`moving_window`] (on [`run_log`]), [`limits_sliding`] (the `limits` library's sliding window
//! counter, reproduced exactly); and [`leases`], concurrency leases rather than a rate
//! (`RL.ACQUIRE` / `RL.RELEASE`). Adding a kind = a file implementing [`Kind`] + a line in the
//! table.
//!
//! Time is in microseconds since the Unix epoch (`u64`). Durations are microseconds too.
//!
//! Semantics shared by every algorithm (see each module for its exact rule):
//!
//! * `cost == 0` is always allowed and never written: it reports the current `remaining` and
//!   `reset_after_us` (this is also what a peek with cost 0 returns). The one exception is a
//!   kind whose reads move its state on ([`Kind::COST_ZERO_WRITES`]: `limits-sliding-window`).
//! * `cost > capacity` is denied with [`RetryAfter::Never`] and never written.
//! * An allowed request with `cost >= 1` is charged and stored; the stored limiter's
//!   [`Limiter::expires_at_us`] is exactly `now + reset_after_us` — except a
//!   `limits-sliding-window` key written in its counters' expiry ms, which keeps that ms
//!   (`reset_after_us` 0; see [`Kind::LIVES_THROUGH_EXPIRY_MS`]).
//! * A denied request (cost within capacity) returns the *exact* earliest delay after which the
//!   same request would pass if nothing else arrived: at `now + d - 1` it is still denied.
//! * A stored state past its expiry ([`Limiter::is_over`]) behaves exactly like an absent key.
//! * **Clock steps.** A state can never legitimately be ahead of `now` by more than its rule
//!   allows (a window that has not started yet, a gcra `tat` beyond `now + burst × T`, a log
//!   entry in the future). Such a state — left by a clock that stepped back, or by a promoted
//!   replica whose clock is behind the old master's — is read as the *most restrictive state
//!   possible at `now`* (see each algorithm's `clamped`), so a step back of a day costs at most
//!   one window of waiting, never a day.
//! * A request under a rule other than the stored one (same algorithm) first ages the stored
//!   state under its old rule, then carries the used amount over to the new rule and decides
//!   against that.
//! * When the stored state had to be converted (rule change) or clamped (clock step), a denied
//!   `RL.ALLOW` still stores the converted state ([`Outcome::Updated`]), so that the key's TTL
//!   and every later reply follow from what the reply said.
//! * **Debts and refunds** ([`Limiter::charge`], [`Limiter::refund`]): each kind charges past
//!   its capacity and gives back in its own way, with a bounded debt ([`Kind::charge`],
//!   [`Kind::refund`]); a gcra debt is the one state "ahead" that is not a clock step.
//! * **Blocks** ([`block`]): a penalty laid over any kind ([`Limiter::decide_with`]), stored in
//!   the `State::Blocked` box only by keys that have one.
//! * **Several keys** ([`multi`]): every group decided first, then all charged or none.
//!
//! Every computation is checked or saturating (products in `u128`), so any decoded state — even
//! one failing [`Limiter::is_valid`] — is handled without panicking; the exact guarantees above
//! hold for valid states and a clock well before `MAX_TIMESTAMP_US` (year 9999).
//!
//! ```
//! use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, RetryAfter, Rule};
//! // 2 requests per second, sliding window.
//! let rule = Rule::new(Algorithm::SlidingWindow, 2, 1_000_000, None).unwrap();
//! let t = 10_000_000; // an aligned window start
//! let (d, outcome) = Limiter::decide(None, &rule, 2, t).unwrap();
//! assert!(d.allowed && d.remaining == 0);
//! let Outcome::Created(mut stored) = outcome else { unreachable!() };
//! assert_eq!(stored.expires_at_us(), t + d.reset_after_us);
//! let (d, outcome) = Limiter::decide(Some(&mut stored), &rule, 1, t).unwrap();
//! assert!(!d.allowed && outcome == Outcome::Unchanged);
//! // Half-way through the next window the 2 earlier requests weigh 2 × 0.5 = 1.
//! assert_eq!(d.retry_after, RetryAfter::After(1_500_000));
//! ```

// Pure code reachable from Redis callbacks: no panics, no unchecked arithmetic or indexing.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod block;
pub mod decision;
pub mod fixed_window;
pub mod gcra;
pub mod kind;
pub mod leases;
pub mod limiter;
pub mod limits_sliding;
pub mod moving_window;
pub mod multi;
pub mod rule;
pub mod run_log;
pub mod sliding_window;

mod counter;
mod math;

pub use block::{Block, MAX_BLOCK_US};
pub use decision::{Decision, RetryAfter};
pub use fixed_window::FixedWindowState;
pub use gcra::GcraState;
pub use kind::{Algorithm, Bounds, Hit, Kind, Replication, State};
pub use leases::LeasesState;
pub use limiter::{AlgorithmMismatch, Limiter, Outcome, Verdict};
pub use limits_sliding::LimitsSlidingState;
pub use moving_window::MovingWindowState;
pub use rule::{Rule, RuleError};
pub use sliding_window::SlidingWindowState;

/// Reference models, for the property tests and the fuzz targets (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod reference;
/// The reference semantics of charges, refunds and blocks (feature `fuzzing`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod settle_reference;
#[cfg(test)]
mod settle_tests;
#[cfg(test)]
mod tests;

/// Longest accepted window: 365 days, in microseconds.
pub const MAX_WINDOW_US: u64 = 365 * 24 * 3600 * 1_000_000;

/// Largest accepted `limit`, `BURST` or `COST` (fits a signed 64-bit reply).
pub const MAX_COUNT: u64 = i64::MAX as u64;

/// Latest timestamp a decoded state may hold (9999-12-31T23:59:59.999999Z in µs).
pub const MAX_TIMESTAMP_US: u64 = 253_402_300_799_999_999;

/// Longest accepted gcra burst tolerance (`BURST × window / limit`): 100 years in µs.
///
/// Keeps every `tat` computation far from overflow.
pub const MAX_GCRA_TOLERANCE_US: u64 = 100 * 365 * 24 * 3600 * 1_000_000;
