//! The `covet` binary: parses the command line and hands over to [`covet::cli`].

/// mimalloc (v2): the request path makes many small, short-lived allocations
/// (header values, metadata, bodies). glibc's tcache holds only 7 chunks per
/// size class, so a plugin chain spills into its slow paths; callgrind showed
/// ~150 instructions per malloc there. Plugins keep their own allocator;
/// values that cross the boundary carry their deallocator (RVec/RString).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    covet::cli::main()
}
