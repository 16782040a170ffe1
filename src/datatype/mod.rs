//! The `ratelimit` data type: one [`Limiter`](crate::algo::Limiter) per key.
//!
//! `codec` is the pure binary encoding; `callbacks` are the server's hooks (RDB, AOF rewrite,
//! digest, memory, copy, free); `key` opens keys of this type for the commands.

pub mod codec;

mod callbacks;
pub(crate) mod key;

pub(crate) use callbacks::RATE_LIMIT_TYPE;

/// RDB encoding version of the type. Version 1 stores one [`codec`] payload per key; a dump
/// written by a newer version is refused at load (see `callbacks::rdb_load`).
pub const ENCODING_VERSION: i32 = 1;
