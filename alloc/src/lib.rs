//! covet's allocator: mimalloc, called through its plain entry points.
//!
//! The host (`host/src/main.rs`) and the plugins that allocate on their
//! request path (graphql, proxy) use it as their `#[global_allocator]`:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: covet_alloc::Allocator = covet_alloc::Allocator;
//! # fn main() { assert_eq!(vec![7u8; 4096].iter().map(|&b| b as usize).sum::<usize>(), 7 * 4096); }
//! ```
//!
//! Why not `mimalloc::MiMalloc` itself: that crate sends every allocation
//! through `mi_malloc_aligned`, whose checks cost more than `mi_malloc`'s
//! fast path, and any block over 1 KiB (a request's boxed future, hyper's
//! read buffer) through `mi_heap_malloc_zero_aligned_at_generic`: ~200
//! instructions where `mi_malloc` takes ~30 (callgrind, the host's static
//! route: 3 allocations a request, ~470 instructions). mimalloc allocates a
//! size at least as large as an alignment up to 16 bytes naturally aligned
//! to it (its own aligned path then calls plain malloc:
//! `mi_malloc_is_naturally_aligned` in alloc-aligned.c), so such layouts
//! (nearly every Rust type's) take `mi_malloc`, the rest the crate's path.
//!
//! A plugin library's allocations never cross to the host (values that cross
//! carry their deallocator, docs/abi.md), so each side may pick its own; a
//! cdylib otherwise gets glibc's malloc (~150 instructions a call once its
//! per-size cache of 7 chunks runs dry).
#![deny(missing_docs)]

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout from 1 byte to 8 KiB at every alignment up to 4 KiB:
    /// each block is aligned, writable, zeroed when asked, and keeps its
    /// bytes across a reallocation that grows it and one that shrinks it.
    #[test]
    fn blocks_are_aligned_zeroed_and_keep_their_bytes() {
        let aligned = |p: *mut u8, align: usize| !p.is_null() && p as usize % align == 0;
        for align in (0..13).map(|shift| 1usize << shift) {
            for size in [1, 7, 8, 15, 16, 24, 48, 100, 1024, 1025, 4096, 8192] {
                let layout = Layout::from_size_align(size, align).unwrap();
                let (grown, shrunk) = (size * 3, size.div_ceil(2));
                // SAFETY: non-zero sizes; each block is used within its size
                // and freed (or reallocated) once, with the layout it has.
                unsafe {
                    let p = Allocator.alloc_zeroed(layout);
                    assert!(aligned(p, align), "alloc_zeroed {size} align {align}");
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                    std::ptr::write_bytes(p, 0xa5, size);
                    let q = Allocator.realloc(p, layout, grown);
                    assert!(aligned(q, align), "grow {size} align {align}");
                    assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 0xa5));
                    std::ptr::write_bytes(q, 0x5a, grown);
                    let r = Allocator.realloc(q, Layout::from_size_align(grown, align).unwrap(), shrunk);
                    assert!(aligned(r, align), "shrink {size} align {align}");
                    assert!(std::slice::from_raw_parts(r, shrunk).iter().all(|&b| b == 0x5a));
                    Allocator.dealloc(r, Layout::from_size_align(shrunk, align).unwrap());
                    let s = Allocator.alloc(layout);
                    assert!(aligned(s, align), "alloc {size} align {align}");
                    std::ptr::write_bytes(s, 1, size);
                    Allocator.dealloc(s, layout);
                }
            }
        }
    }

    /// Which path a layout takes: plain `mi_malloc` only where its block is
    /// naturally aligned.
    #[test]
    fn only_naturally_aligned_layouts_take_the_plain_path() {
        assert!(plain(8, 8));
        assert!(plain(24, 8));
        assert!(plain(16, 16));
        assert!(!plain(8, 16), "a size under its alignment");
        assert!(!plain(64, 32), "an alignment over 16");
        assert!(!plain(4096, 4096));
    }
}
