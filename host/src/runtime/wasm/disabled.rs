//! The WASM runtime's stand-in in a build without the `wasm` cargo feature
//! (no wasmtime): the same API as `runtime::wasm`, and no component ever
//! compiles. The manifest check refuses `kind: wasm` first, with its line
//! and column; this is the loader's second line.

use std::path::{Path, PathBuf};

use covet_plugin_api::Phases;

use super::{Executor, missing_runtime, missing_runtime_help};
use crate::{error::HostError, manifest::PluginSpec};

/// A compiled component: [`WasmComponent::compile`] never makes one in this build.
#[derive(Clone)]
pub struct WasmComponent {
    path: PathBuf,
}

impl WasmComponent {
    /// Always refused: the runtime is not compiled in.
    pub fn compile(_path: &Path, _bytes: &[u8], _sha256: &str) -> Result<WasmComponent, String> {
        let reason = missing_runtime("wasm").unwrap_or_default();
        Err(format!("{reason}; {}", missing_runtime_help("wasm")))
    }

    /// The phases the build implements.
    pub fn phases(&self) -> Phases {
        Phases::NONE
    }

    /// The build's own name and version.
    pub fn name_and_version(&self) -> (&str, &str) {
        ("", "")
    }

    /// The artifact the build was loaded for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same build, reported as loaded for the artifact at `path`.
    pub fn with_path(&self, path: &Path) -> WasmComponent {
        WasmComponent { path: path.into() }
    }

    /// Always refused: the runtime is not compiled in.
    pub fn instantiate(&self, spec: &PluginSpec) -> Result<Box<dyn Executor>, HostError> {
        let reason = missing_runtime("wasm").unwrap_or_default();
        Err(HostError::PluginLoad {
            plugin: spec.name.clone(),
            path: self.path.clone(),
            reason: format!("{reason}; {}", missing_runtime_help("wasm")),
        })
    }
}
