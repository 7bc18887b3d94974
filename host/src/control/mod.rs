//! The control plane: every change to what is live goes through here —
//! start-up, plugin swaps and reloads, manifest reloads — one at a time.
//!
//! A change builds everything new off the request path (load by content,
//! role checks, `init`), then makes it live with atomic stores: a plugin's
//! new instance into its slot, a new route table into the table's `ArcSwap`.
//! Requests already running keep the instances they took when they started;
//! an old instance's `shutdown` runs after its last request. If anything
//! fails before the stores, nothing changes and the caller gets the reason.
//! See `docs/hot-swap.md`.

mod events;
pub mod reload;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;
use tokio::sync::{Mutex, broadcast};

pub use events::{Event, EventKind};
pub use reload::ReloadOutcome;

use crate::{
    error::HostError,
    loader::{self, Loaded},
    manifest::Manifest,
    registry::PluginStats,
    runtime::artifact::LibraryCache,
    service::Shared,
};

/// What the live host knows about one plugin (`ListPlugins`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// Manifest name.
    pub name: String,
    /// `native`, `wasm` or `python`.
    pub kind: String,
    /// The plugin's own name.
    pub plugin: String,
    /// The plugin's own version.
    pub version: String,
    /// The plugin-api version it was built against.
    pub api_version: String,
    /// The artifact it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of that artifact.
    pub sha256: String,
    /// When the live instance went live, seconds since the Unix epoch.
    pub loaded_at: f64,
    /// Phase calls, across every instance of this name.
    pub requests: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Calls that panicked.
    pub panics: u64,
    /// Successful swaps and reloads.
    pub swaps: u64,
    /// Refused swaps and reloads.
    pub swap_failures: u64,
}

/// The result of a successful swap or plugin reload.
#[derive(Debug, Clone, Serialize)]
pub struct SwapOutcome {
    /// Manifest name.
    pub plugin: String,
    /// Version of the instance that was live before.
    pub old_version: String,
    /// Version now live.
    pub new_version: String,
    /// SHA-256 of the artifact now live.
    pub sha256: String,
    /// Whether new code was loaded (false: same build, new instance).
    pub new_code: bool,
    /// From the request to the new instance being live, in milliseconds.
    pub took_ms: f64,
}

/// What a swap changes: a new artifact, a new config, or neither (reload).
#[derive(Debug, Clone, Default)]
pub struct SwapRequest {
    /// New artifact; relative paths resolve against the manifest's directory.
    pub path: Option<PathBuf>,
    /// New config (replaces the old one whole).
    pub config: Option<serde_json::Value>,
}

/// The live state the control plane changes.
struct State {
    /// The manifest as currently applied, including swaps made since.
    manifest: Manifest,
    libraries: LibraryCache,
}

/// The one place live plugins and routes change.
pub struct ControlPlane {
    shared: Arc<Shared>,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
    manifest_path: PathBuf,
    reloads: reload::ReloadCounters,
}

impl ControlPlane {
    /// A control plane for a host whose shared state was built from
    /// `manifest`; `libraries` holds what start-up loaded.
    pub fn new(shared: Arc<Shared>, manifest: Manifest, libraries: LibraryCache) -> ControlPlane {
        let (events, _) = broadcast::channel(1024);
        let manifest_path = manifest.source.clone();
        let state = Mutex::new(State { manifest, libraries });
        ControlPlane { shared, state, events, manifest_path, reloads: Default::default() }
    }

    /// The state every connection shares.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The manifest file reloads read.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// Events from now on (load, swap, failure, reload).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes an event (and logs it).
    pub(crate) fn publish(&self, event: Event) {
        event.log();
        let _ = self.events.send(event);
    }

    /// Every live plugin, sorted by name.
    pub fn list(&self) -> Vec<PluginStatus> {
        self.shared.registry.all().iter().filter_map(|slot| Some(status(slot.stats(), &*slot.load()?))).collect()
    }

    /// Every plugin name and its artifact path, as currently applied.
    pub async fn artifacts(&self) -> Vec<(String, PathBuf)> {
        let state = self.state.lock().await;
        state.manifest.plugins.iter().map(|p| (p.name.clone(), p.path.clone())).collect()
    }

    /// Whether the artifact at `name`'s path now holds something other than
    /// the build `name` runs. The file is hashed only if it changed since it
    /// was last hashed, and the hash is kept for the reload that follows.
    pub async fn artifact_changed(&self, name: &str) -> Result<bool, HostError> {
        let mut state = self.state.lock().await;
        let path = state.manifest.plugin(name).ok_or_else(|| unknown(&state.manifest, name))?.path.clone();
        let live = self.shared.registry.get(name).and_then(|slot| slot.load()).map(|i| i.provenance.sha256.clone());
        let on_disk = tokio::task::block_in_place(|| state.libraries.hash(&path))?;
        Ok(live.as_deref() != Some(on_disk.as_str()))
    }

    /// Makes `name` run a new artifact and/or config. Nothing changes on failure.
    pub async fn swap(&self, name: &str, change: SwapRequest) -> Result<SwapOutcome, HostError> {
        let started = Instant::now();
        let mut state = self.state.lock().await;
        let result = tokio::task::block_in_place(|| self.swap_locked(&mut state, name, change, started));
        match &result {
            Ok(outcome) => self.publish(Event::swapped(outcome)),
            Err(e) => {
                if let Some(slot) = self.shared.registry.get(name) {
                    PluginStats::bump(&slot.stats().swap_failures);
                }
                self.publish(Event::failed(Some(name), e));
            }
        }
        result
    }

    /// Re-reads `name`'s artifact from its path and makes a new instance
    /// (new code if the file changed; the same code otherwise).
    pub async fn reload_plugin(&self, name: &str) -> Result<SwapOutcome, HostError> {
        self.swap(name, SwapRequest::default()).await
    }

    fn swap_locked(&self, state: &mut State, name: &str, change: SwapRequest, started: Instant) -> Result<SwapOutcome, HostError> {
        let spec = state.manifest.plugin(name).ok_or_else(|| unknown(&state.manifest, name))?;
        let slot = self.shared.registry.get(name).ok_or_else(|| unknown(&state.manifest, name))?;
        let mut spec = spec.clone();
        let base_dir = loader::base_dir(&state.manifest);
        if let Some(path) = change.path {
            let path = base_dir.join(path);
            spec.path = std::fs::canonicalize(&path).unwrap_or(path);
        }
        if let Some(config) = change.config {
            spec.config = config;
        }
        let before = state.libraries.len();
        let opened = state.libraries.open(name, spec.kind, &spec.path)?;
        let new_code = state.libraries.len() > before;
        loader::check_swap_roles(&state.manifest, name, opened.library.phases())
            .map_err(|reason| HostError::PluginLoad { plugin: name.into(), path: spec.path.clone(), reason })?;
        let plugin = Loaded { spec: spec.clone(), opened };
        let instance = Arc::new(loader::instantiate(&plugin, &base_dir, slot.stats().clone())?);
        let new_version = instance.executor.info().version.clone();
        let sha256 = instance.provenance.sha256.clone();
        let old = slot.store(instance);
        retire(self.shared.refresh_routes());
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        PluginStats::bump(&slot.stats().swaps);
        if let Some(p) = state.manifest.plugins.iter_mut().find(|p| p.name == name) {
            *p = spec;
        }
        let old_version = old.as_ref().map(|o| o.executor.info().version.clone()).unwrap_or_default();
        retire(old);
        Ok(SwapOutcome { plugin: name.into(), old_version, new_version, sha256, new_code, took_ms })
    }
}

/// Drops an instance replaced by a swap off the async workers: if this was
/// its last reference, its `shutdown` runs now.
pub(crate) fn retire<T: Send + 'static>(old: T) {
    tokio::task::spawn_blocking(move || drop(old));
}

fn unknown(manifest: &Manifest, name: &str) -> HostError {
    let known: Vec<&str> = manifest.plugins.iter().map(|p| p.name.as_str()).collect();
    HostError::UnknownPlugin { plugin: name.into(), known: known.join(", ") }
}

fn status(stats: &PluginStats, instance: &crate::registry::Instance) -> PluginStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let info = instance.executor.info();
    let p = &instance.provenance;
    PluginStatus {
        name: info.name.clone(),
        kind: info.kind.into(),
        plugin: info.plugin_name.clone(),
        version: info.version.clone(),
        api_version: info.api_version.clone(),
        path: p.path.clone(),
        sha256: p.sha256.clone(),
        loaded_at: p.loaded_at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64(),
        requests: stats.calls.load(Relaxed),
        errors: stats.errors.load(Relaxed),
        panics: stats.panics.load(Relaxed),
        swaps: stats.swaps.load(Relaxed),
        swap_failures: stats.swap_failures.load(Relaxed),
    }
}
