//! The `ratelimit` data type: one [`Limiter`](crate::algo::Limiter) per key.
//!
//! `codec` is the pure binary encoding; `value` the layout in memory (a state packed into the
//! value word, naming a shared `rules` entry, or a heap limiter); `callbacks` are the server's
//! hooks (RDB, AOF rewrite, digest, memory, copy, free, defrag); `key` opens keys of this type
//! for the commands.

pub mod codec;

#[cfg(feature = "module")]
mod callbacks;
#[cfg(feature = "module")]
pub(crate) mod key;
#[cfg(feature = "module")]
pub(crate) mod rules;
#[cfg(feature = "module")]
pub(crate) mod value;

#[cfg(feature = "module")]
pub(crate) use callbacks::RATE_LIMIT_TYPE;

/// RDB encoding version of the type, written before each value. Every version stores one
/// [`codec`] payload (a string buffer) per key: version 1 the first release's 50-byte layout,
/// version 2 the versioned, variable-length one. Loading goes by the payload's own header, so a
/// value from a later release loads when that header says this release can read it, and is
/// refused (the load stops, logged) when it cannot (see `callbacks::rdb_load`).
pub const ENCODING_VERSION: i32 = 2;
