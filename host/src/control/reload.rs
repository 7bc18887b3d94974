//! Start-up and manifest reloads: diff a manifest against what is live,
//! build only what changed, then commit with atomic stores.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use serde::Serialize;

use super::{ControlPlane, Event, EventKind, State, retire};
use crate::{
    error::HostError,
    loader::{self, Loaded},
    manifest::{Manifest, PluginSpec},
    registry::{Instance, PluginStats, Registry, Slot},
    routes::RouteTable,
    runtime::artifact::LibraryCache,
};

/// What applying a manifest will do; nothing is live until it is applied.
pub struct Plan {
    manifest: Manifest,
    /// Plugins to build (new, or changed in kind, path, config or content).
    fresh: Vec<Loaded>,
    /// The slot of every plugin the manifest names (existing or new).
    slots: HashMap<String, Arc<Slot>>,
    unchanged: Vec<String>,
    removed: Vec<String>,
    table: Arc<RouteTable>,
}

impl Plan {
    /// The route table the plan makes live.
    pub fn table(&self) -> &Arc<RouteTable> {
        &self.table
    }
}

/// The result of a manifest reload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadOutcome {
    /// Plugins that were not there before.
    pub added: Vec<String>,
    /// Plugins rebuilt because their kind, path, config or artifact changed.
    pub changed: Vec<String>,
    /// Plugins kept as they were (same instance).
    pub unchanged: Vec<String>,
    /// Plugins no longer in the manifest.
    pub removed: Vec<String>,
    /// Routes now live.
    pub routes: usize,
    /// Settings that changed but only take effect after a restart.
    pub warnings: Vec<String>,
}

/// How many manifest reloads were applied and refused (for `/metrics`).
#[derive(Debug, Default)]
pub struct ReloadCounters {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Loads what `manifest` needs that is not live in `registry` and builds its
/// route table. Fails with file:line:column diagnostics; changes nothing.
pub fn plan(manifest: &Manifest, libraries: &mut LibraryCache, registry: &Registry) -> Result<Plan, HostError> {
    let mut kept: HashMap<String, Arc<Instance>> = HashMap::new();
    for spec in &manifest.plugins {
        if let Some(instance) = unchanged(spec, libraries, registry) {
            kept.insert(spec.name.clone(), instance);
        }
    }
    let fresh = loader::open_all(
        manifest,
        libraries,
        |spec| !kept.contains_key(&spec.name),
        |name| kept.get(name).map(|i| i.executor.info().phases),
    )?;
    let slots: HashMap<String, Arc<Slot>> = manifest
        .plugins
        .iter()
        .map(|p| (p.name.clone(), registry.get(&p.name).unwrap_or_else(|| Arc::new(Slot::new(&p.name)))))
        .collect();
    let table = RouteTable::build(manifest, |name| slots[name].clone())?;
    let removed = registry.all().iter().map(|s| s.name().to_string()).filter(|n| !slots.contains_key(n)).collect();
    let mut unchanged: Vec<String> = kept.into_keys().collect();
    unchanged.sort();
    Ok(Plan { manifest: manifest.clone(), fresh, slots, unchanged, removed, table: Arc::new(table) })
}

/// The live instance of `spec`'s name if it runs exactly `spec`: same kind,
/// path, config and WASM sandbox, and an artifact whose content has not changed.
fn unchanged(spec: &PluginSpec, libraries: &mut LibraryCache, registry: &Registry) -> Option<Arc<Instance>> {
    let instance = registry.get(&spec.name)?.load()?;
    let p = &instance.provenance;
    let kind = spec.kind.name();
    // A python plugin's form, attribute or timeout may change with the same file.
    let python = spec.python.is_none() || p.python == spec.python;
    let same = p.path == spec.path
        && p.config == spec.config
        && p.wasm == spec.wasm
        && python
        && instance.executor.info().kind == kind;
    (same && libraries.hash(&spec.path).is_ok_and(|sha| sha == p.sha256)).then_some(instance)
}

/// Runs every `init` of `manifest` and retires the instances (for `covet check`).
pub fn check(manifest: &Manifest) -> Result<(), HostError> {
    crate::runtime::services::reconcile_upstreams(&manifest.upstreams).map_err(upstreams_error)?;
    let plan = plan(manifest, &mut LibraryCache::default(), &Registry::default())?;
    let base_dir = loader::base_dir(manifest);
    for plugin in &plan.fresh {
        drop(loader::instantiate_at(manifest, plugin, &base_dir, Arc::default())?);
    }
    Ok(())
}

fn upstreams_error(e: String) -> HostError {
    HostError::Io(std::io::Error::other(e))
}

impl ControlPlane {
    /// Makes the start-up plan live: runs every `init`, then fills the slots.
    pub async fn start(&self, plan: Plan) -> Result<(), HostError> {
        let mut state = self.state.lock().await;
        tokio::task::block_in_place(|| self.apply_locked(&mut state, plan)).map(drop)
    }

    /// Re-reads the manifest file and applies what changed. An invalid
    /// manifest, or any plugin that fails to load or init, changes nothing.
    pub async fn reload_manifest(&self) -> Result<ReloadOutcome, HostError> {
        let mut state = self.state.lock().await;
        let result = tokio::task::block_in_place(|| {
            let manifest = Manifest::load(&self.manifest_path)?;
            crate::runtime::services::install(&manifest.services)
                .map_err(|e| HostError::Io(std::io::Error::other(format!("host services: {e}"))))?;
            crate::runtime::services::reconcile_upstreams(&manifest.upstreams).map_err(upstreams_error)?;
            let applied = plan(&manifest, &mut state.libraries, &self.shared.registry).and_then(|plan| self.apply_locked(&mut state, plan));
            if applied.is_err() {
                // The manifest in force keeps its upstreams (unchanged endpoint sets keep their health).
                let _ = crate::runtime::services::reconcile_upstreams(&state.manifest.upstreams);
            }
            applied
        });
        match &result {
            Ok(outcome) => {
                self.reloads.ok.fetch_add(1, Relaxed);
                let (a, c, r) = (outcome.added.len(), outcome.changed.len(), outcome.removed.len());
                let message = format!("manifest reloaded: {a} added, {c} changed, {r} removed, {} routes", outcome.routes);
                self.publish(Event::new(EventKind::ManifestReloaded, None, message));
            }
            Err(e) => {
                self.reloads.failed.fetch_add(1, Relaxed);
                self.publish(Event::failed(None, e));
            }
        }
        result
    }

    /// Manifest reloads so far: `(applied, refused)`.
    pub fn manifest_reloads(&self) -> (u64, u64) {
        (self.reloads.ok.load(Relaxed), self.reloads.failed.load(Relaxed))
    }

    fn apply_locked(&self, state: &mut State, plan: Plan) -> Result<ReloadOutcome, HostError> {
        let base_dir = loader::base_dir(&plan.manifest);
        let mut built = Vec::with_capacity(plan.fresh.len());
        for plugin in &plan.fresh {
            let slot = &plan.slots[&plugin.spec.name];
            // On error, the instances built so far drop here (running their shutdown).
            let instance = loader::instantiate_at(&plan.manifest, plugin, &base_dir, slot.stats().clone())?;
            built.push((slot.clone(), Arc::new(instance)));
        }
        // Tracing and OTLP export (a new exporter only when its settings changed).
        let telemetry = crate::otel::prepare(&plan.manifest.telemetry).map_err(|e| HostError::Io(std::io::Error::other(format!("telemetry: {e}"))))?;
        let mut outcome = ReloadOutcome {
            unchanged: plan.unchanged,
            removed: plan.removed,
            routes: plan.manifest.routes.len(),
            warnings: restart_warnings(&state.manifest, &plan.manifest),
            ..ReloadOutcome::default()
        };
        for (slot, instance) in built {
            let (name, info) = (slot.name().to_string(), instance.executor.info().clone());
            let sha256 = instance.provenance.sha256.clone();
            self.shared.registry.insert(slot.clone());
            match slot.store(instance) {
                Some(old) => {
                    PluginStats::bump(&slot.stats().swaps);
                    let message = format!("{name} rebuilt by manifest reload: {} → {}", old.executor.info().version, info.version);
                    let mut event = Event::new(EventKind::Swapped, Some(&name), message);
                    (event.version, event.sha256) = (Some(info.version), Some(sha256));
                    self.publish(event);
                    retire(old);
                    outcome.changed.push(name);
                }
                None => {
                    self.publish(Event::loaded(&name, &info.version, &sha256));
                    outcome.added.push(name);
                }
            }
        }
        for name in &outcome.removed {
            self.shared.registry.remove(name);
            self.publish(Event::new(EventKind::Removed, Some(name), format!("{name} removed by manifest reload")));
        }
        retire(self.shared.routes.swap(Arc::new(plan.table.refreshed())));
        telemetry.install();
        state.manifest = plan.manifest;
        for warning in &outcome.warnings {
            tracing::warn!("{warning}");
        }
        Ok(outcome)
    }
}

fn restart_warnings(old: &Manifest, new: &Manifest) -> Vec<String> {
    let mut warnings = Vec::new();
    if old.listen != new.listen {
        warnings.push("`listen` changed: it takes effect after a restart".to_string());
    }
    if old.limits != new.limits {
        warnings.push("`limits` changed: they take effect after a restart".to_string());
    }
    if old.log != new.log {
        warnings.push("`log` changed: it takes effect after a restart".to_string());
    }
    if old.admin != new.admin {
        warnings.push("`admin` changed: it takes effect after a restart".to_string());
    }
    if old.python != new.python {
        warnings.push("`python` changed: the interpreter's settings take effect after a restart".to_string());
    }
    if (old.io, old.workers, old.processes) != (new.io, new.workers, new.processes) {
        warnings.push("`io`, `workers` or `processes` changed: they take effect after a restart".to_string());
    }
    warnings
}
