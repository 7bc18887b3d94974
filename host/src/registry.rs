//! The plugin registry: one [`Slot`] per manifest plugin name holding its
//! live instance, plus that name's counters (which survive swaps).
//!
//! A request takes an `Arc` of each instance its chain uses when it starts,
//! so it runs start to end on the instances that were live then. A swap
//! stores a new instance in the slot with one atomic store; the old one's
//! `shutdown` runs when its last `Arc` drops, i.e. after its last request.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use arc_swap::ArcSwapOption;

use crate::{metrics::Histogram, runtime::Executor};

/// Counters of one plugin name, across all its instances.
#[derive(Default, Debug)]
pub struct PluginStats {
    /// Phase calls.
    pub calls: AtomicU64,
    /// Calls that returned an error or an invalid response.
    pub errors: AtomicU64,
    /// Calls that panicked.
    pub panics: AtomicU64,
    /// Time spent in the plugin per call.
    pub latency: Histogram,
    /// Instances made live by a swap or reload (not counting the first).
    pub swaps: AtomicU64,
    /// Swaps or reloads of this plugin that were refused.
    pub swap_failures: AtomicU64,
}

impl PluginStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where an instance came from: what `ListPlugins` reports.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The artifact path it was loaded from (the manifest's, not the copy).
    pub path: PathBuf,
    /// The artifact's SHA-256, lowercase hex.
    pub sha256: String,
    /// When the instance went live.
    pub loaded_at: SystemTime,
    /// The config it was initialised with.
    pub config: serde_json::Value,
    /// The limits and capabilities it runs with (WASM plugins).
    pub wasm: Option<crate::manifest::WasmSettings>,
    /// Its form, target and timeout (Python plugins).
    pub python: Option<crate::manifest::PythonPlugin>,
}

/// A live plugin instance.
pub struct Instance {
    /// The manifest name, shared with per-request timings without copying.
    pub name: Arc<str>,
    /// The phases the pipeline calls ([`Executor::calls`], asked once).
    pub calls: covet_plugin_api::Phases,
    /// The executor.
    pub executor: Box<dyn Executor>,
    /// The name's counters (shared by every instance of the name).
    pub stats: Arc<PluginStats>,
    /// Where it came from.
    pub provenance: Provenance,
}

impl Instance {
    /// Wraps an executor.
    pub fn new(executor: Box<dyn Executor>, stats: Arc<PluginStats>, provenance: Provenance) -> Instance {
        Instance { name: Arc::from(executor.info().name.as_str()), calls: executor.calls(), executor, stats, provenance }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let info = self.executor.info();
        tracing::info!(plugin = %info.name, version = %info.version, "plugin instance retired; calling shutdown");
        self.executor.shutdown();
    }
}

/// Moves on after every change of any slot's instance (in any registry of
/// the process): a route table whose instances were loaded at the current
/// epoch has every slot's current instance ([`crate::routes::RouteTable::live`]).
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current slot epoch (see [`EPOCH`]).
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// The slot of one plugin name: empty until the plugin has initialised.
pub struct Slot {
    name: Arc<str>,
    current: ArcSwapOption<Instance>,
    stats: Arc<PluginStats>,
}

impl Slot {
    /// An empty slot.
    pub fn new(name: &str) -> Slot {
        Slot { name: Arc::from(name), current: ArcSwapOption::empty(), stats: Arc::default() }
    }

    /// The manifest name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The name's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    /// The live instance, if any.
    pub fn load(&self) -> Option<Arc<Instance>> {
        self.current.load_full()
    }

    /// Makes `instance` live; returns the one it replaced.
    pub fn store(&self, instance: Arc<Instance>) -> Option<Arc<Instance>> {
        let old = self.current.swap(Some(instance));
        EPOCH.fetch_add(1, Ordering::Release);
        old
    }

    /// Empties the slot (at shutdown).
    pub fn take(&self) -> Option<Arc<Instance>> {
        let old = self.current.swap(None);
        EPOCH.fetch_add(1, Ordering::Release);
        old
    }
}

/// All slots, by manifest name. Changed only by the control plane; requests
/// reach slots through the route table, never through this map.
#[derive(Default)]
pub struct Registry {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Registry {
    /// Registers `slot` under its name (replacing any slot of that name).
    pub fn insert(&self, slot: Arc<Slot>) {
        self.lock().insert(slot.name().to_string(), slot);
    }

    /// The slot for `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.lock().get(name).cloned()
    }

    /// Every slot, sorted by name.
    pub fn all(&self) -> Vec<Arc<Slot>> {
        let mut slots: Vec<_> = self.lock().values().cloned().collect();
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        slots
    }

    /// Forgets `name`'s slot. Route tables still holding it keep it (and its
    /// instance) alive until their last request ends.
    pub fn remove(&self, name: &str) -> Option<Arc<Slot>> {
        self.lock().remove(name)
    }

    /// Empties every slot; instances shut down as their last requests end.
    pub fn retire_all(&self) {
        for slot in self.all() {
            drop(slot.take());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}
