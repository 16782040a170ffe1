//! The fuzz targets' harness for redis-ratelimit (see README, "Trust").
//!
//! Stable Rust, no cargo-fuzz needed: `scripts/fuzz` builds `fuzz_targets/*.rs` against
//! libFuzzer (the `libfuzzer-sys` crate compiles it) with the sanitizer-coverage flags `rustc`
//! accepts on stable. Each target is one line calling into this crate:
//!
//! * `args` ([`commands`]): argument parsing of every command, the field parsers against oracles;
//! * `decode`, `decode_hit`, `decode_effect` ([`decoders`]): every decoder of the type (states,
//!   rate-limit hits, lease effects);
//! * `algo` ([`algos`]): random operation sequences against the reference models, every kind
//!   (`RL.ALLOW`; `RL.ALLOW` / `RL.PEEK` with `BLOCK`, `RL.CHARGE`, `RL.REFUND`; `RL.ACQUIRE` /
//!   `RL.RELEASE`), with replication checked at each step;
//! * `multi` ([`multi`]): sequences over several keys of mixed kinds mixing the single-key
//!   commands (the drop-in GCRA commands included) with `RL.ALLOWALL` / `RL.PEEKALL`, against
//!   the definition of the all-or-nothing call over each key's reference.
//!
//! Every target runs under a counting allocator ([`alloc`]).

// Linked into everything built from this crate: it defines the coverage hooks the
// instrumented code calls (and, for the targets, libFuzzer's `main`).
extern crate libfuzzer_sys;

pub mod algos;
pub mod alloc;
pub mod commands;
pub mod decoders;
pub mod input;
pub mod multi;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;
