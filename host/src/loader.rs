//! Building plugin instances for a manifest: open every library (by content,
//! see [`crate::runtime::artifact`]), check its roles (a handler must
//! implement `handle`, a filter a filter phase), and run `init`. Problems are
//! reported at the plugin's place in the manifest.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use covet_plugin_api::Phases;

use crate::{
    error::HostError,
    manifest::{Diagnostic, Loc, Manifest, ManifestError, PluginSpec},
    registry::{Instance, PluginStats, Provenance},
    runtime::artifact::{LibraryCache, Opened},
};

/// The directory relative paths in a manifest start from (absolute).
pub fn base_dir(manifest: &Manifest) -> PathBuf {
    let dir = manifest.source.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// A plugin whose library is loaded and checked, not yet initialised.
#[derive(Clone)]
pub struct Loaded {
    /// Its manifest entry.
    pub spec: PluginSpec,
    /// Its library and artifact hash.
    pub opened: Opened,
}

/// Opens the library of every plugin `wanted` accepts and checks every
/// route's use of the manifest's plugins; `known` gives the phases of
/// plugins that are not reopened (already live).
pub fn open_all(
    manifest: &Manifest,
    cache: &mut LibraryCache,
    wanted: impl Fn(&PluginSpec) -> bool,
    known: impl Fn(&str) -> Option<Phases>,
) -> Result<Vec<Loaded>, HostError> {
    let mut loaded = Vec::new();
    for spec in manifest.plugins.iter().filter(|s| wanted(s)) {
        let opened = cache
            .open(&spec.name, spec.kind, &spec.path)
            .map_err(|e| at(manifest, &spec.location, format!("plugins.{}", spec.name), e.to_string(), None))?;
        loaded.push(Loaded { spec: spec.clone(), opened });
    }
    let phases = |name: &str| {
        let fresh = loaded.iter().find(|l| l.spec.name == name).map(|l| l.opened.library.phases());
        fresh.or_else(|| known(name))
    };
    check_roles(manifest, phases)?;
    Ok(loaded)
}

/// Checks that every route uses its plugins in a role they implement.
pub fn check_roles(manifest: &Manifest, phases: impl Fn(&str) -> Option<Phases>) -> Result<(), HostError> {
    for (i, route) in manifest.routes.iter().enumerate() {
        let handler = &route.handler;
        if let Some(p) = phases(&handler.name).filter(|p| !p.contains(Phases::HANDLE)) {
            let msg = format!("plugin \"{}\" cannot be a handler: it {}", handler.name, implements(p));
            let help = Some("use it in `filters:`, or pick a plugin that implements `handle`".to_string());
            return Err(at(manifest, &handler.location, format!("routes[{i}].handler"), msg, help));
        }
        for (j, filter) in route.filters.iter().enumerate() {
            if let Some(p) = phases(&filter.name).filter(|p| !p.is_filter()) {
                let msg = format!("plugin \"{}\" cannot be a filter: it {}", filter.name, implements(p));
                let help = Some("use it as the route's `handler:`".to_string());
                return Err(at(manifest, &filter.location, format!("routes[{i}].filters[{j}]"), msg, help));
            }
        }
    }
    Ok(())
}

/// Checks that a plugin implementing `phases` can fill every role the
/// manifest's routes give `name` (for a swap); the reason when it cannot.
pub fn check_swap_roles(manifest: &Manifest, name: &str, phases: Phases) -> Result<(), String> {
    let handler = manifest.routes.iter().any(|r| r.handler.name == name);
    let filter = manifest.routes.iter().any(|r| r.filters.iter().any(|f| f.name == name));
    if handler && !phases.contains(Phases::HANDLE) {
        return Err(format!("routes use \"{name}\" as a handler, but the new build {}", implements(phases)));
    }
    if filter && !phases.is_filter() {
        return Err(format!("routes use \"{name}\" as a filter, but the new build {}", implements(phases)));
    }
    Ok(())
}

fn implements(phases: Phases) -> String {
    let names = phases.names();
    if names.is_empty() { "implements no phase".into() } else { format!("implements only {}", names.join(", ")) }
}

fn at(manifest: &Manifest, loc: &Loc, key: String, message: String, help: Option<String>) -> HostError {
    let text = std::fs::read_to_string(&manifest.source).ok();
    let diagnostic = Diagnostic { loc: Some(loc.clone()), key, message, help };
    HostError::Manifest(ManifestError::single(&manifest.source, text, diagnostic))
}

/// Runs `init` for one loaded plugin and wraps the instance.
pub fn instantiate(plugin: &Loaded, base_dir: &Path, stats: Arc<PluginStats>) -> Result<Instance, HostError> {
    let Loaded { spec, opened } = plugin;
    let executor = opened.library.instantiate(spec, base_dir)?;
    let provenance = Provenance {
        path: spec.path.clone(),
        sha256: opened.sha256.clone(),
        loaded_at: SystemTime::now(),
        config: spec.config.clone(),
        wasm: spec.wasm.clone(),
        python: spec.python.clone(),
    };
    Ok(Instance::new(executor, stats, provenance))
}

/// [`instantiate`], with a refused config reported at the plugin's place in
/// the manifest (for start-up and manifest reloads).
pub fn instantiate_at(
    manifest: &Manifest,
    plugin: &Loaded,
    base_dir: &Path,
    stats: Arc<PluginStats>,
) -> Result<Instance, HostError> {
    instantiate(plugin, base_dir, stats).map_err(|e| match e {
        HostError::PluginInit { plugin: name, reason } => {
            let (message, help) = match plugin.spec.kind {
                crate::manifest::PluginKind::Python(_) => (
                    format!("python plugin \"{name}\" failed to load: {reason}"),
                    "fix the Python code (the traceback above names the line) or its `config:`",
                ),
                _ => (
                    format!("plugin \"{name}\" refused its config: {reason}"),
                    "fix this plugin's `config:` (its crate docs list every key)",
                ),
            };
            let help = Some(help.to_string());
            let key = match plugin.spec.kind {
                crate::manifest::PluginKind::Python(_) => format!("plugins.{name}"),
                _ => format!("plugins.{name}.config"),
            };
            at(manifest, &plugin.spec.location, key, message, help)
        }
        other => other,
    })
}
