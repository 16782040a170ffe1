//! redis-ratelimit: native rate-limiting commands for Redis.

pub mod algo;
mod alloc;

use redis_module::{redis_module, Context, RedisString, Status};

fn init(_ctx: &Context, _args: &[RedisString]) -> Status {
    Status::Ok
}

redis_module! {
    name: "ratelimit",
    version: 1,
    allocator: (crate::alloc::ModuleAlloc, crate::alloc::ModuleAlloc),
    data_types: [],
    init: init,
    commands: [],
}
