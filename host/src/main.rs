//! The `covet` binary: parses the command line and hands over to [`covet::cli`].

/// mimalloc (v2): the request path makes many small, short-lived allocations
/// (header values, metadata, bodies). glibc's tcache holds only 7 chunks per
/// size class, so a plugin chain spills into its slow paths; callgrind showed
/// ~150 instructions per malloc there. Called through mimalloc's plain
/// entry points (covet-alloc: the `mimalloc` crate's own allocator took
/// ~470 instructions a request in its aligned paths). Plugins keep their own
/// allocator; values that cross the boundary carry their deallocator (RVec/RString).
#[global_allocator]
static GLOBAL: covet_alloc::Allocator = covet_alloc::Allocator;

/// mimalloc's `arena_eager_commit` (see mimalloc.h): 0 commits arena memory
/// as it is used. Its default (eager on overcommitting systems) doubles idle RSS.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs from `.preinit_array`, before any constructor (mimalloc reserves its
/// first arena in one), so the option applies to every arena.
extern "C" fn configure_allocator() {
    // SAFETY: a plain store into mimalloc's option table; no allocation.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[unsafe(link_section = ".preinit_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

fn main() -> std::process::ExitCode {
    covet::cli::main()
}
