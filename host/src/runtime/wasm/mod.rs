//! The WASM runtime: WebAssembly components run by wasmtime, behind the same
//! [`Executor`] trait as native plugins.
//!
//! Two kinds of component load as `kind: wasm`:
//!
//! - a **covet plugin**: exports `covet:plugin/guest@0.1.0` (the WIT in
//!   `plugin-api/wit/`): any phase, like a native plugin ([`executor`]);
//! - a **wasi:http component**: exports `wasi:http/incoming-handler@0.2.x`
//!   (what `wasmtime serve` and Spin run), unchanged, as a handler ([`proxy`]).
//!
//! Loading a build compiles it once ([`WasmComponent::compile`], by content
//! hash like native libraries, see `runtime::artifact`), links it against
//! the shared [`engine`]'s linker into an `InstancePre`, and asks a covet
//! plugin for its name, version and phases. Making an executor for a
//! manifest entry runs `init` once on its config, so a bad config refuses
//! the load or swap exactly as a native `init` error does.
//!
//! **Instances.** By default every phase call gets a fresh instance (the
//! pooling allocator and the `InstancePre` make that a few microseconds), so
//! no state survives from one request to the next. `init` runs once per
//! manifest entry at load, and every instance starts from a snapshot of the
//! memory it left ([`snapshot`]); `instances: fresh-init` runs it in every
//! instance instead, and `instances: reused` keeps instances. Measurements
//! and the reasoning are in `docs/wasm.md`.
//!
//! **Faults.** A trap, running out of memory or fuel → `Fault::Panic` (500);
//! running past the time limit → `Fault::Timeout` (504). The instance is
//! discarded; the host and other plugins are unaffected.
//!
//! **Background work.** A covet plugin may also export
//! `covet:plugin/background@0.2.0`; with `background: { every: … }` in its
//! manifest entry the host calls its `tick` at that interval, in a task the
//! executor owns and aborts at its shutdown ([`background`]).
//!
//! **Tracing.** A component may import `covet:plugin/tracing@0.2.0` to
//! set attributes and events on the span of its call ([`trace`]); its
//! `wasi:http` outbound requests are client spans, children of that span
//! ([`outbound`]).
//!
//! **Streaming.** A wasi:http component's response body reaches the client
//! as the guest writes it, with back-pressure and a limit on each wait for
//! the next chunk ([`stream`]).

mod background;
mod bindings;
pub mod engine;
mod executor;
#[doc(hidden)]
pub mod fuzzing;
mod outbound;
mod proxy;
mod sandbox;
mod services;
mod snapshot;
mod state;
mod stdio;
mod stream;
mod trace;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Instant,
};

use covet_plugin_api::Phases;
use wasmtime::{
    Store,
    component::{Component, InstancePre},
};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::{Executor, PluginInfo};
use crate::{error::HostError, manifest::PluginSpec};
use bindings::PluginPre;
use sandbox::{Ctx, Sandbox};

/// The covet world version this host speaks.
pub const COVET_WORLD: &str = "covet:plugin@0.1.0";
const GUEST_EXPORT: &str = "covet:plugin/guest@0.1.0";
const PROXY_EXPORT: &str = "wasi:http/incoming-handler@0.2";

/// A compiled, linked component (shared by every load of the same content).
#[derive(Clone)]
pub struct WasmComponent {
    compiled: Arc<Compiled>,
    path: PathBuf,
}

struct Compiled {
    flavor: Flavor,
    name: String,
    version: String,
    api_version: String,
    phases: Phases,
    /// The component's bytes, for snapshots after `init` (covet plugins only).
    bytes: Option<Arc<[u8]>>,
    /// Snapshots taken of this build, by manifest entry, config and settings
    /// (the newest [`MAX_SNAPSHOTS`]).
    snapshots: Mutex<Vec<(String, PluginPre<Ctx>)>>,
}

/// Snapshots a build keeps for later loads of the same entry and config.
const MAX_SNAPSHOTS: usize = 8;

/// Held while a snapshot is taken: one at a time, process-wide.
static SNAPSHOTTING: Mutex<()> = Mutex::new(());

enum Flavor {
    Plugin(PluginPre<Ctx>),
    Proxy(ProxyPre<Ctx>),
}

impl WasmComponent {
    /// Compiles and links `bytes` (the artifact at `path`, with hash
    /// `sha256`). The error is the reason to show the operator.
    pub fn compile(path: &Path, bytes: &[u8], sha256: &str) -> Result<WasmComponent, String> {
        let runtime = engine::runtime()?;
        let component = Component::new(&runtime.engine, bytes).map_err(|e| not_a_component(bytes, e))?;
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("the component needs an import covet does not provide: {e:#}"))?;
        let started = Instant::now();
        let compiled = match world_of(&component, &runtime.engine)? {
            World::Plugin => {
                // A `background` export with the wrong types refuses the build here.
                background::TickPre::of(&component, &pre)?;
                Compiled { bytes: Some(bytes.into()), ..describe(pre)? }
            }
            World::Proxy(version) => proxy_build(pre, path, sha256, version)?,
        };
        tracing::debug!(path = %path.display(), took_ms = started.elapsed().as_millis() as u64, "component linked");
        Ok(WasmComponent { compiled: Arc::new(compiled), path: path.into() })
    }

    /// The phases the build implements.
    pub fn phases(&self) -> Phases {
        self.compiled.phases
    }

    /// The build's own name and version.
    pub fn name_and_version(&self) -> (&str, &str) {
        (&self.compiled.name, &self.compiled.version)
    }

    /// The artifact the build was loaded for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same build, reported as loaded for the artifact at `path`.
    pub fn with_path(&self, path: &Path) -> WasmComponent {
        WasmComponent { compiled: self.compiled.clone(), path: path.into() }
    }

    /// An executor for manifest entry `spec`: its sandbox (with the host
    /// services in force, limited to the plugin's grants), its config
    /// (checked by running `init` once), its instance mode.
    pub fn instantiate(&self, spec: &PluginSpec) -> Result<Box<dyn Executor>, HostError> {
        let settings = spec.wasm.clone().unwrap_or_default();
        let services = services::WasmServices::for_plugin(spec)
            .map_err(|reason| HostError::PluginInit { plugin: spec.name.clone(), reason: format!("host services: {reason}") })?;
        let sandbox = Sandbox::new(&spec.name, &settings, services);
        let info = PluginInfo {
            name: spec.name.clone(),
            kind: "wasm",
            plugin_name: self.compiled.name.clone(),
            version: self.compiled.version.clone(),
            api_version: self.compiled.api_version.clone(),
            phases: self.compiled.phases,
        };
        let refuse = |reason: String| HostError::PluginInit { plugin: spec.name.clone(), reason };
        match &self.compiled.flavor {
            Flavor::Plugin(pre) => {
                let config = spec.config.to_string();
                let mut executor = executor::WasmExecutor::new(info, pre.clone(), sandbox, config.clone(), settings.instances).map_err(refuse)?;
                block_on(executor.check_init()).map_err(refuse)?;
                if settings.instances == crate::manifest::InstanceMode::Fresh {
                    self.pre_initialise(&executor, spec, config);
                }
                if let Some(every) = settings.background {
                    if !executor.has_background() {
                        return Err(refuse(no_background_export()));
                    }
                    let tasks = services::WasmServices::tasks(spec).map_err(refuse)?;
                    executor.start_background(every, tasks).map_err(refuse)?;
                }
                Ok(Box::new(executor))
            }
            Flavor::Proxy(pre) => {
                proxy::check_settings(spec).map_err(refuse)?;
                if settings.background.is_some() {
                    return Err(refuse("a wasi:http component has no background work (only covet plugins export `background`); remove `background:`".into()));
                }
                Ok(Box::new(proxy::ProxyExecutor::new(info, pre.clone(), sandbox, settings.instances)))
            }
        }
    }

    /// Moves `executor`'s fresh instances onto a snapshot of its plugin
    /// after `init`, so they start initialised. A snapshot this build took
    /// before for the same entry, config and settings (a swap back) is used
    /// at once; otherwise one is taken on a thread of its own, off the load
    /// and the request path: until it is ready (~0.1–1 s: two compiles),
    /// instances run `init` each, as with `instances: fresh-init`, and so
    /// for good when there can be none (the reason is logged).
    fn pre_initialise(&self, executor: &executor::WasmExecutor, spec: &PluginSpec, config: String) {
        let (Some(bytes), Ok(runtime)) = (self.compiled.bytes.clone(), engine::runtime()) else { return };
        let key = format!("{}\0{config}\0{:?}", spec.name, spec.wasm);
        let core = executor.core();
        if let Some(pre) = self.compiled.cached_snapshot(&key) {
            if let Err(reason) = core.start_initialised(pre) {
                no_snapshot(&spec.name, &reason);
            }
            return;
        }
        let compiled = self.compiled.clone();
        let plugin = spec.name.clone();
        let executor = Arc::downgrade(&core);
        drop(core);
        let take = move || {
            // One snapshot at a time (each is two compiles), and none for an
            // executor retired while it waited (a burst of swaps).
            let _one = SNAPSHOTTING.lock().unwrap_or_else(|e| e.into_inner());
            let Some(core) = executor.upgrade() else {
                tracing::debug!(plugin = %plugin, "retired before its snapshot after init was taken");
                return;
            };
            let taken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(core.snapshot(&bytes, &runtime.linker))));
            let taken = taken.unwrap_or_else(|_| Err("taking it panicked".into()));
            match taken.and_then(|pre| core.start_initialised(pre.clone()).map(|()| pre)) {
                Ok(pre) => {
                    compiled.keep_snapshot(key, pre);
                    tracing::info!(plugin = %plugin, "fresh instances start from a snapshot taken after init");
                }
                Err(reason) => no_snapshot(&plugin, &reason),
            }
        };
        if let Err(e) = std::thread::Builder::new().name("covet-wasm-snapshot".into()).spawn(take) {
            no_snapshot(&spec.name, &format!("cannot start its thread: {e}"));
        }
    }
}

/// Logs why `plugin`'s fresh instances run `init` each.
fn no_snapshot(plugin: &str, reason: &str) {
    tracing::warn!(plugin = %plugin, "no snapshot after init, so every fresh instance runs init: {reason}");
}

impl Compiled {
    /// The snapshot kept for `key` (entry, config, settings), if any.
    fn cached_snapshot(&self, key: &str) -> Option<PluginPre<Ctx>> {
        let snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        snapshots.iter().find(|(k, _)| k == key).map(|(_, pre)| pre.clone())
    }

    /// Keeps `pre` for later loads of `key`, forgetting the oldest past [`MAX_SNAPSHOTS`].
    fn keep_snapshot(&self, key: String, pre: PluginPre<Ctx>) {
        let mut snapshots = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        snapshots.retain(|(k, _)| *k != key);
        if snapshots.len() >= MAX_SNAPSHOTS {
            snapshots.remove(0);
        }
        snapshots.push((key, pre));
    }
}

/// Why a manifest entry with `background:` cannot have it.
fn no_background_export() -> String {
    format!(
        "`background:` is set, but the component does not export {}: export it (see docs/wasm.md) or remove `background:`",
        background::BACKGROUND_EXPORT
    )
}

enum World {
    Plugin,
    /// The wasi:http version it exports, e.g. `0.2.4`.
    Proxy(String),
}

/// Which world the component implements, from its exports' names.
fn world_of(component: &Component, engine: &wasmtime::Engine) -> Result<World, String> {
    let ty = component.component_type();
    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if names.contains(&GUEST_EXPORT) {
        return Ok(World::Plugin);
    }
    if let Some(other) = names.iter().find_map(|n| n.strip_prefix("covet:plugin/guest@")) {
        return Err(format!(
            "incompatible plugin: the component was built against covet:plugin@{other}, \
             but this host speaks {COVET_WORLD}; rebuild it against plugin-api/wit"
        ));
    }
    if let Some(name) = names.iter().find(|n| n.starts_with(PROXY_EXPORT)) {
        return Ok(World::Proxy(name.rsplit('@').next().unwrap_or_default().to_owned()));
    }
    Err(format!(
        "not a covet plugin: the component exports neither {GUEST_EXPORT} nor {PROXY_EXPORT}.x \
         (it exports: {})",
        if names.is_empty() { "nothing".to_owned() } else { names.join(", ") }
    ))
}

/// Why `bytes` did not compile, in words an operator can act on.
fn not_a_component(bytes: &[u8], err: wasmtime::Error) -> String {
    match bytes {
        [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => format!(
            "a core WebAssembly module, not a component: build it for the wasm32-wasip2 target \
             (cargo build --target wasm32-wasip2) ({err})"
        ),
        [0, b'a', b's', b'm', ..] => format!("invalid WebAssembly component: {err:#}"),
        _ => "not a WebAssembly component (the file does not start with \\0asm); \
              `kind: wasm` plugins are .wasm components"
            .to_owned(),
    }
}

/// Types a covet plugin's exports and asks it who it is.
fn describe(pre: InstancePre<Ctx>) -> Result<Compiled, String> {
    let pre = PluginPre::new(pre).map_err(|e| format!("the component's exports do not match {COVET_WORLD}: {e:#}"))?;
    let sandbox = Sandbox::new("describe", &Default::default(), services::WasmServices::none("describe")?);
    let descriptor = block_on(async {
        let mut store = sandbox.store(pre.engine())?;
        let plugin = pre.instantiate_async(&mut store).await.map_err(|e| format!("cannot instantiate it: {e:#}"))?;
        let guest = plugin.covet_plugin_guest();
        guest.call_describe(&mut store).await.map_err(|e| format!("its describe failed: {e:#}"))
    })?;
    Ok(Compiled {
        name: descriptor.name,
        version: descriptor.version,
        api_version: COVET_WORLD.to_owned(),
        phases: descriptor.phases.to_api(),
        flavor: Flavor::Plugin(pre),
        bytes: None,
        snapshots: Mutex::default(),
    })
}

/// A wasi:http component: a handler named after its file, versioned by content.
fn proxy_build(pre: InstancePre<Ctx>, path: &Path, sha256: &str, version: String) -> Result<Compiled, String> {
    let pre = ProxyPre::new(pre).map_err(|e| format!("the component's exports do not match wasi:http/proxy: {e:#}"))?;
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Compiled {
        name,
        version: format!("sha256:{}", &sha256[..12.min(sha256.len())]),
        api_version: format!("wasi:http@{version}"),
        phases: Phases::HANDLE,
        flavor: Flavor::Proxy(pre),
        bytes: None,
        snapshots: Mutex::default(),
    })
}

/// Runs `future` to completion from synchronous code (loading happens off
/// the request path, with or without a runtime around): on a scoped thread
/// with its own current-thread runtime.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            runtime.expect("a current-thread tokio runtime").block_on(future)
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A store for one instance of `sandbox` (helper for both executors).
fn new_store(sandbox: &Sandbox, engine: &wasmtime::Engine) -> Result<Store<Ctx>, super::Fault> {
    sandbox.store(engine).map_err(super::Fault::Error)
}
