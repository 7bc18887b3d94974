//! The one wasmtime [`Engine`] every WASM plugin shares, the thread that
//! ticks its epoch, and the [`Linker`] every component is linked against.
//!
//! - **Pooling allocator**: instance slots, linear memories and async stacks
//!   are reserved once and recycled (copy-on-write memory images), which is
//!   what makes a fresh instance per call cost microseconds.
//! - **Epochs** bound time: a thread bumps the epoch every [`TICK`]; a call
//!   that is still running at a tick yields to tokio, and fails once past its
//!   plugin's deadline (see `sandbox`).
//! - **Fuel** metering is compiled in so that any plugin *may* set a fuel
//!   limit; plugins without one run with unlimited fuel.
//! - The **linker** holds WASI 0.2 (`wasmtime_wasi::p2`), `wasi:http`
//!   (`wasmtime_wasi_http::p2`), covet's own `covet:plugin/types` and the
//!   host services' `covet:plugin/state@0.2.0` and
//!   `covet:plugin/tracing@0.2.0`. What
//!   each plugin can actually reach is decided per store by its capabilities.

use std::{sync::OnceLock, time::Duration};

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    component::{HasSelf, Linker},
};

use super::{bindings, sandbox::Ctx, state, trace};
use crate::manifest::WasmLimits;

/// How often the epoch advances: the granularity of time limits, and how
/// often a long-running call yields its thread.
pub const TICK: Duration = Duration::from_millis(1);

/// Instance slots in the pool by default: the most WASM instances alive at
/// once (every call in flight holds one; reused plugins keep a few idle).
const POOL_INSTANCES: u32 = 1000;

/// Bytes of a recycled linear memory reset in place rather than unmapped.
const KEEP_RESIDENT: usize = 4 << 20;

/// The engine and linker, made on first use.
pub struct Runtime {
    /// The shared engine.
    pub engine: Engine,
    /// WASI, wasi:http and covet:plugin/types.
    pub linker: Linker<Ctx>,
}

/// The process's WASM runtime (made, and its ticker started, on first use).
pub fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME.get_or_init(|| build().map_err(|e| format!("cannot start the WASM runtime: {e:#}"))).as_ref().map_err(Clone::clone)
}

fn build() -> wasmtime::Result<Runtime> {
    let engine = Engine::new(&config())?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::Plugin::add_to_linker::<_, HasSelf<Ctx>>(&mut linker, |ctx| ctx)?;
    state::Services::add_to_linker::<_, HasSelf<Ctx>>(&mut linker, |ctx| ctx)?;
    trace::Traced::add_to_linker::<_, HasSelf<Ctx>>(&mut linker, |ctx| ctx)?;
    start_ticker(engine.clone());
    Ok(Runtime { engine, linker })
}

/// The pool's size: `COVET_WASM_POOL_INSTANCES` when set (1 to 100,000),
/// else [`POOL_INSTANCES`]. Each slot reserves address space for its
/// linear memories up front (about 8 GiB of it, none of it resident until
/// used); a smaller pool lets covet run where address space is capped, e.g.
/// under valgrind for `bench/wasm-cost.sh`.
fn pool_instances() -> u32 {
    let set = std::env::var("COVET_WASM_POOL_INSTANCES").ok();
    set.and_then(|v| v.trim().parse().ok()).filter(|n| (1..=100_000).contains(n)).unwrap_or(POOL_INSTANCES)
}

fn config() -> Config {
    let mut pool = PoolingAllocationConfig::new();
    let n = pool_instances();
    pool.total_component_instances(n)
        .total_core_instances(n * 8)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(WasmLimits::MAX_MEMORY as usize)
        // Reset a recycled memory by rewriting only the pages the last
        // instance dirtied (found with Linux's PAGEMAP_SCAN, 6.7+) instead of
        // unmapping it: the next instance then takes no page faults. Without
        // PAGEMAP_SCAN only the first `KEEP_RESIDENT` bytes are rewritten.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine's epoch every [`TICK`], for the life of the process.
fn start_ticker(engine: Engine) {
    let spawned = std::thread::Builder::new().name("covet-wasm-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(TICK);
            engine.increment_epoch();
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the WASM epoch thread ({e}); WASM time limits will not be enforced");
    }
}
