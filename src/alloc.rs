//! The global allocator: the server's allocator once the module is loaded, the system allocator
//! before that.
//!
//! Inside Redis every allocation must go through `RedisModule_Alloc` so that `INFO memory`,
//! `maxmemory` and `MEMORY USAGE` see it. Test binaries and doctests link this crate without a
//! server; there the API pointers stay `None` and the system allocator serves. The pointers are set
//! once, in `RedisModule_OnLoad`, before this crate allocates anything, so a block is always freed
//! by the allocator that made it.

use std::alloc::{GlobalAlloc, Layout, System};

use redis_module::raw;

/// Redis allocator when available, system allocator otherwise.
pub struct ModuleAlloc;

unsafe impl GlobalAlloc for ModuleAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the pointers are written once at load time, before any allocation by us.
        match unsafe { raw::RedisModule_Alloc } {
            // jemalloc aligns to the size class; rounding the size up to the alignment keeps
            // over-aligned layouts correct (the same rule as the crate's `RedisAlloc`).
            Some(alloc) => unsafe { alloc(layout.pad_to_align().size()).cast() },
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match unsafe { raw::RedisModule_Free } {
            Some(free) => unsafe { free(ptr.cast()) },
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }
}
