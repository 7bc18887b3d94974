//! The Python runtime's stand-in in a build without the `python` cargo
//! feature (no pyo3, no libpython): the same API as `runtime::python`, and
//! every plugin refused. The manifest check refuses `kind: python` first,
//! with its line and column; this is the loader's second line.

use super::{Executor, missing_runtime, missing_runtime_help};
use crate::{error::HostError, manifest::PluginSpec};

pub use super::python_code::PythonCode;

impl PythonCode {
    /// Always refused: the runtime is not compiled in.
    pub fn instantiate(&self, spec: &PluginSpec) -> Result<Box<dyn Executor>, HostError> {
        let reason = missing_runtime("python").unwrap_or_default();
        Err(HostError::PluginLoad {
            plugin: spec.name.clone(),
            path: self.path.clone(),
            reason: format!("{reason}; {}", missing_runtime_help("python")),
        })
    }
}

/// Nothing to host: there is no event loop without Python.
pub async fn host_event_loop() {}
