//! redis-ratelimit: native rate-limiting commands for Redis and Valkey.
//!
//! Layout: [`algo`] holds the pure algorithms; [`rule`] parses arguments; [`datatype`] is the
//! `ratelimit` key type; `commands` are the `RL.*` handlers. This file only registers them.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod algo;
mod alloc;
mod clock;
mod commands;
pub mod config;
pub mod datatype;
mod logging;
mod panic;
mod replication;
pub mod rule;

use datatype::RATE_LIMIT_TYPE;
use redis_module::{redis_module, Context, RedisString, Status};

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    panic::install_hook();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    match config::parse_module_args(&args)
        .and_then(|a| commands::register_all(ctx.ctx, a.debug_command))
    {
        Ok(()) => Status::Ok,
        Err(e) => {
            ctx.log_warning(&format!("ratelimit: {e}"));
            Status::Err
        }
    }
}

redis_module! {
    name: "ratelimit",
    version: 1,
    allocator: (crate::alloc::ModuleAlloc, crate::alloc::ModuleAlloc),
    data_types: [RATE_LIMIT_TYPE],
    init: init,
}
