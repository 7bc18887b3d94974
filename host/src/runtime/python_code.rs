//! A Python plugin's code: its file (hashed by the artifact cache) and
//! form. Shared by the Python runtime and its stand-in in a build without
//! the `python` feature; each gives it its own `instantiate`.

use std::path::{Path, PathBuf};

use covet_plugin_api::Phases;

use crate::manifest::PythonForm;

/// A Python plugin's code: its file and form.
#[derive(Clone)]
pub struct PythonCode {
    pub(super) form: PythonForm,
    pub(super) path: PathBuf,
}

impl PythonCode {
    /// The code of `form` at `path`.
    pub fn new(form: PythonForm, path: &Path) -> PythonCode {
        PythonCode {
            form,
            path: path.to_path_buf(),
        }
    }

    /// The form.
    pub fn form(&self) -> PythonForm {
        self.form
    }

    /// The phases a plugin of this form implements (a filter module's
    /// missing hook is a no-op).
    pub fn phases(&self) -> Phases {
        match self.form {
            PythonForm::App | PythonForm::Asgi => Phases::HANDLE,
            PythonForm::Filter => Phases::ON_REQUEST.union(Phases::ON_RESPONSE),
        }
    }

    /// The same code, reported as loaded for `path`.
    pub fn with_path(&self, path: &Path) -> PythonCode {
        PythonCode {
            form: self.form,
            path: path.to_path_buf(),
        }
    }
}
