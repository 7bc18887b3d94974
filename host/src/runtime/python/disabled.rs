//! The Python runtime's stand-in in a build without the `python` cargo
//! feature (no pyo3, no libpython): the same API as `runtime::python`, and
//! every plugin refused. The manifest check refuses `kind: python` first,
//! with its line and column; this is the loader's second line.

use std::path::{Path, PathBuf};

use covet_plugin_api::Phases;

use super::{Executor, missing_runtime, missing_runtime_help};
use crate::{
    error::HostError,
    manifest::{PluginSpec, PythonForm},
};

/// A Python plugin's file and form, which this build cannot run.
#[derive(Clone)]
pub struct PythonCode {
    form: PythonForm,
    path: PathBuf,
}

impl PythonCode {
    /// The code of `form` at `path`.
    pub fn new(form: PythonForm, path: &Path) -> PythonCode {
        PythonCode { form, path: path.to_path_buf() }
    }

    /// The form.
    pub fn form(&self) -> PythonForm {
        self.form
    }

    /// The phases a plugin of this form would implement.
    pub fn phases(&self) -> Phases {
        match self.form {
            PythonForm::App | PythonForm::Asgi => Phases::HANDLE,
            PythonForm::Filter => Phases::ON_REQUEST.union(Phases::ON_RESPONSE),
        }
    }

    /// The same code, reported as loaded for `path`.
    pub fn with_path(&self, path: &Path) -> PythonCode {
        PythonCode { form: self.form, path: path.to_path_buf() }
    }

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
