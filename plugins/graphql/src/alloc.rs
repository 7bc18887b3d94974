//! The plugin's allocator: mimalloc, called through its plain entry points.
//! Allocations do not cross to the host (values that cross carry their
//! deallocator, docs/abi.md), and glibc's malloc, the default in a library,
//! costs ~150 instructions a call (a request makes a few dozen: the request
//! JSON, the document's execution, the answer's JSON, the response). The
//! `mimalloc` crate's allocator sends every allocation through
//! `mi_malloc_aligned`, whose checks cost more than `mi_malloc`'s fast path.
//! mimalloc allocates a size at least as large as an alignment up to 16
//! bytes naturally aligned to it (its own aligned path then calls plain
//! malloc: `mi_malloc_is_naturally_aligned` in alloc-aligned.c), so such
//! layouts (every Rust type's) take `mi_malloc`, the rest the crate's path.

use std::{
    alloc::{GlobalAlloc, Layout},
    ffi::c_void,
};

use mimalloc::MiMalloc;

/// The largest alignment `mi_malloc` gives a size that is a multiple of it (`MI_MAX_ALIGN_SIZE`).
const MI_ALIGN: usize = 16;

/// Whether `mi_malloc(size)` is aligned to `align` (`size` is never 0 here).
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= MI_ALIGN && align <= size
}

unsafe extern "C" {
    // Linked from the mimalloc crate's library (libmimalloc-sys).
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_zalloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, newsize: usize) -> *mut c_void;
    fn mi_free(p: *mut c_void);
}

/// mimalloc with the unaligned fast path.
pub struct Allocator;

// SAFETY: mimalloc's functions meet `GlobalAlloc`'s contract; blocks from
// `mi_malloc` meet the alignment of the layouts sent there ([`plain`]), and
// `mi_free` frees blocks of either path.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.size(), layout.align()) {
            // SAFETY: see the impl.
            unsafe { mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's layout, passed on.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.size(), layout.align()) {
            // SAFETY: see the impl.
            unsafe { mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's layout, passed on.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(new_size, layout.align()) {
            // SAFETY: `ptr` came from this allocator; the new block keeps the alignment.
            unsafe { mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's arguments, passed on.
            unsafe { MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}
