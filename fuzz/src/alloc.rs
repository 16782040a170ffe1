//! A counting global allocator: what one input made the code allocate, so a target can assert
//! that no input leads to an allocation out of proportion with its size (a declared length or
//! count must reserve nothing it has not read).
//!
//! libFuzzer's own allocations go through libc `malloc`, not this allocator: only the Rust code
//! under test is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Wraps the system allocator, counting per thread.
pub struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn grew(size: usize) {
    // `try_with`: allocations during thread teardown must not touch destroyed thread-locals.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size);
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

fn shrank(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrank(layout.size());
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What a closure allocated: the most bytes live at once beyond what was live when it started,
/// and the largest single block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Peak of live bytes above the start.
    pub peak: usize,
    /// Largest single allocation (or reallocation target).
    pub largest: usize,
}

/// Runs `f`, measuring its allocations on this thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    LARGEST.with(|l| l.set(0));
    let r = f();
    let usage = Usage {
        peak: PEAK.with(Cell::get).saturating_sub(start),
        largest: LARGEST.with(Cell::get),
    };
    (r, usage)
}

/// Runs `f` and panics (a finding) if it allocated more than `limit` bytes at once.
pub fn within<R>(what: &str, limit: usize, f: impl FnOnce() -> R) -> R {
    let (r, usage) = measure(f);
    assert!(
        usage.peak <= limit && usage.largest <= limit,
        "{what}: allocated {usage:?}, more than the {limit} bytes allowed for this input"
    );
    r
}
