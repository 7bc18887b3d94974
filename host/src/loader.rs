//! Loading plugins for a manifest: open every library and check its ABI and
//! its roles (a handler must implement `handle`, a filter a filter phase)
//! before anything serves; then run every `init` and fill the slots.

use std::{path::Path, sync::Arc};

use covet_plugin_api::Phases;

use crate::{
    error::HostError,
    manifest::{Diagnostic, Loc, Manifest, ManifestError, PluginSpec},
    registry::{Instance, Registry},
    runtime::native::NativeLibrary,
};

/// The directory relative paths in a manifest start from (absolute).
pub fn base_dir(manifest: &Manifest) -> std::path::PathBuf {
    let dir = manifest.source.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// A plugin whose library is loaded and checked, not yet initialised.
pub struct Loaded {
    /// Its manifest entry.
    pub spec: PluginSpec,
    /// Its library.
    pub library: NativeLibrary,
}

/// Loads every plugin library and checks each route's use of it.
pub fn load_all(manifest: &Manifest) -> Result<Vec<Loaded>, HostError> {
    let mut loaded = Vec::with_capacity(manifest.plugins.len());
    for spec in &manifest.plugins {
        let library = NativeLibrary::load(&spec.name, &spec.path)
            .map_err(|e| at(manifest, &spec.location, format!("plugins.{}", spec.name), e.to_string(), None))?;
        loaded.push(Loaded { spec: spec.clone(), library });
    }
    check_roles(manifest, &loaded)?;
    Ok(loaded)
}

fn check_roles(manifest: &Manifest, loaded: &[Loaded]) -> Result<(), HostError> {
    let phases = |name: &str| loaded.iter().find(|l| l.spec.name == name).map(|l| l.library.descriptor().phases);
    for (i, route) in manifest.routes.iter().enumerate() {
        let handler = &route.handler;
        if let Some(p) = phases(&handler.name).filter(|p| !p.contains(Phases::HANDLE)) {
            let msg = format!("plugin \"{}\" cannot be a handler: it implements {}", handler.name, list(p));
            let help = Some("use it in `filters:`, or pick a plugin that implements `handle`".to_string());
            return Err(at(manifest, &handler.location, format!("routes[{i}].handler"), msg, help));
        }
        for (j, filter) in route.filters.iter().enumerate() {
            if let Some(p) = phases(&filter.name).filter(|p| !p.is_filter()) {
                let msg = format!("plugin \"{}\" cannot be a filter: it implements {}", filter.name, list(p));
                let help = Some("use it as the route's `handler:`".to_string());
                return Err(at(manifest, &filter.location, format!("routes[{i}].filters[{j}]"), msg, help));
            }
        }
    }
    Ok(())
}

fn list(phases: Phases) -> String {
    let names = phases.names();
    if names.is_empty() { "no phase".into() } else { format!("only {}", names.join(", ")) }
}

fn at(manifest: &Manifest, loc: &Loc, key: String, message: String, help: Option<String>) -> HostError {
    let text = std::fs::read_to_string(&manifest.source).ok();
    let diagnostic = Diagnostic { loc: Some(loc.clone()), key, message, help };
    HostError::Manifest(ManifestError::single(&manifest.source, text, diagnostic))
}

/// Runs every plugin's `init` and makes the instances live. Their slots
/// must exist (see [`Registry::slot`]). A refused config is reported at the
/// plugin's place in the manifest.
pub fn init_all(manifest: &Manifest, loaded: &[Loaded], registry: &Registry) -> Result<(), HostError> {
    let base_dir = base_dir(manifest);
    for plugin in loaded {
        let Some(slot) = registry.get(&plugin.spec.name) else { continue };
        let config = plugin.spec.config.to_string();
        let executor = plugin.library.instantiate(&plugin.spec.name, &config, &base_dir).map_err(|e| match e {
            HostError::PluginInit { plugin: name, reason } => {
                let message = format!("plugin \"{name}\" refused its config: {reason}");
                let help = Some("fix this plugin's `config:` (its crate docs list every key)".to_string());
                at(manifest, &plugin.spec.location, format!("plugins.{name}.config"), message, help)
            }
            other => other,
        })?;
        slot.store(Arc::new(Instance::new(Box::new(executor))));
        let d = plugin.library.descriptor();
        tracing::info!(plugin = %plugin.spec.name, implementation = %d.name, version = %d.version, "plugin ready");
    }
    Ok(())
}
