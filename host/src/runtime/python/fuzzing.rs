//! What the fuzz targets (`fuzz/`, docs/fuzzing.md) reach of the Python
//! runtime: the ASGI `http` scope of an [`Exchange`], built by the same
//! code an ASGI app's request goes through (`asgi::Head`, then the bridge's
//! `http_scope`). Not an API.

use pyo3::prelude::*;

use super::{asgi::Head, interp};
use crate::{exchange::Exchange, manifest::PythonSettings};

/// Starts the embedded interpreter (once; later calls return at once).
pub fn start() -> Result<(), String> {
    interp::get(&PythonSettings::default()).map(drop)
}

/// The scope dict an ASGI app would be called with for `ex` (no lifespan state).
pub fn asgi_scope<'py>(py: Python<'py>, ex: &Exchange) -> PyResult<Bound<'py, PyAny>> {
    let (head, headers) = Head::new(ex).to_py(py)?;
    interp::bridge(py)?.getattr(pyo3::intern!(py, "http_scope"))?.call1((head, headers, py.None()))
}
