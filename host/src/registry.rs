//! The plugin registry: one [`Slot`] per manifest plugin holding its live
//! instance, plus the per-plugin counters. A request takes an `Arc` of each
//! instance it uses when it starts; an instance's `shutdown` runs when the
//! last `Arc` drops, i.e. after its last in-flight request.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwapOption;

use crate::runtime::Executor;

/// Call counters for one plugin instance.
#[derive(Default, Debug)]
pub struct PluginStats {
    /// Phase calls.
    pub calls: AtomicU64,
    /// Calls that returned an error or an invalid response.
    pub errors: AtomicU64,
    /// Calls that panicked.
    pub panics: AtomicU64,
}

impl PluginStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A live plugin instance and its counters.
pub struct Instance {
    /// The manifest name, shared with per-request timings without copying.
    pub name: Arc<str>,
    /// The executor.
    pub executor: Box<dyn Executor>,
    /// Counters.
    pub stats: PluginStats,
}

impl Instance {
    /// Wraps an executor.
    pub fn new(executor: Box<dyn Executor>) -> Instance {
        Instance { name: Arc::from(executor.info().name.as_str()), executor, stats: PluginStats::default() }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        tracing::debug!(plugin = %self.executor.info().name, "plugin instance retired; calling shutdown");
        self.executor.shutdown();
    }
}

/// The slot of one plugin name: empty until the plugin has initialised.
pub struct Slot {
    name: Arc<str>,
    current: ArcSwapOption<Instance>,
}

impl Slot {
    /// An empty slot.
    pub fn new(name: &str) -> Slot {
        Slot { name: Arc::from(name), current: ArcSwapOption::empty() }
    }

    /// The manifest name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The live instance, if any.
    pub fn load(&self) -> Option<Arc<Instance>> {
        self.current.load_full()
    }

    /// Makes `instance` live; returns the one it replaced.
    pub fn store(&self, instance: Arc<Instance>) -> Option<Arc<Instance>> {
        self.current.swap(Some(instance))
    }

    /// Empties the slot (at shutdown).
    pub fn take(&self) -> Option<Arc<Instance>> {
        self.current.swap(None)
    }
}

/// All slots, by manifest name.
#[derive(Default)]
pub struct Registry {
    slots: HashMap<String, Arc<Slot>>,
}

impl Registry {
    /// The slot for `name`, created empty on first use.
    pub fn slot(&mut self, name: &str) -> Arc<Slot> {
        self.slots.entry(name.to_string()).or_insert_with(|| Arc::new(Slot::new(name))).clone()
    }

    /// The slot for `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&Arc<Slot>> {
        self.slots.get(name)
    }

    /// Whether every slot holds a live instance.
    pub fn all_live(&self) -> bool {
        self.slots.values().all(|s| s.load().is_some())
    }

    /// Empties every slot; instances shut down as their last requests end.
    pub fn retire_all(&self) {
        for slot in self.slots.values() {
            drop(slot.take());
        }
    }
}
