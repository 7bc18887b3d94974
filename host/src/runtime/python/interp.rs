//! The one embedded interpreter: started lazily by the first Python plugin,
//! never finalised. Start-up sets `PYTHONHOME` (unless the user set it) to
//! the build interpreter's `sys.base_prefix`, puts the manifest's `python:`
//! paths on `sys.path`, routes `print` to the host log, makes the embedded
//! `covet` package importable, loads the bridge module and starts the
//! event loop (on its own thread until an I/O worker takes it over, see
//! [`super::aloop`]) and the thread pool.

use std::{ffi::CString, sync::OnceLock};

use pyo3::{prelude::*, types::PyModule};

use super::{aloop::EventLoop, hostmod, workers::Pool};
use crate::manifest::PythonSettings;

include!(concat!(env!("OUT_DIR"), "/covet_package.rs"));

/// The interpreter's shared state.
pub struct Interp {
    /// The bridge module (`bridge.py`).
    pub bridge: Py<PyModule>,
    /// Sync handlers and filters.
    pub pool: Pool,
    /// Async handlers and ASGI apps.
    pub aloop: EventLoop,
}

static INTERP: OnceLock<Result<Interp, String>> = OnceLock::new();
static BRIDGE: OnceLock<Py<PyModule>> = OnceLock::new();

/// The bridge module (set before the event loop starts).
pub fn bridge(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    BRIDGE
        .get()
        .map(|b| b.bind(py).clone())
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the covet bridge is not loaded"))
}

/// The interpreter, started with `settings` on first use (later settings
/// are ignored: the `python:` section takes effect at start-up).
pub fn get(settings: &PythonSettings) -> Result<&'static Interp, String> {
    let interp = INTERP.get_or_init(|| start(settings)).as_ref().map_err(Clone::clone);
    super::aloop::STARTED.notify_waiters();
    interp
}

/// The interpreter if it was started.
pub fn started() -> Option<&'static Interp> {
    INTERP.get().and_then(|r| r.as_ref().ok())
}

fn start(settings: &PythonSettings) -> Result<Interp, String> {
    set_home();
    Python::initialize();
    let bridge = Python::attach(|py| setup(py, settings)).map_err(|e| format!("cannot start Python: {e}"))?;
    let _ = BRIDGE.set(Python::attach(|py| bridge.clone_ref(py)));
    let aloop = EventLoop::start(settings.queue).map_err(|e| format!("cannot start the event loop: {e}"))?;
    let pool = Pool::start(settings.threads, settings.queue);
    tracing::info!(target: "covet::python", threads = settings.threads, queue = settings.queue, "Python {} started", python_version());
    Ok(Interp { bridge, pool, aloop })
}

/// `PYTHONHOME` = the build interpreter's prefix, unless the user set one.
fn set_home() {
    let Some(home) = option_env!("COVET_PYTHONHOME") else { return };
    if std::env::var_os("PYTHONHOME").is_some() || !std::path::Path::new(home).join("lib").is_dir() {
        return;
    }
    // SAFETY: set once, before the interpreter starts; no other covet thread
    // reads or writes the environment (plugins get theirs at init, not later).
    unsafe { std::env::set_var("PYTHONHOME", home) };
}

fn python_version() -> String {
    Python::version_str().split_whitespace().next().unwrap_or("").to_owned()
}

fn setup(py: Python<'_>, settings: &PythonSettings) -> PyResult<Py<PyModule>> {
    let host = hostmod::module(py)?;
    py.import("sys")?.getattr("modules")?.set_item("_covet_host", host)?;
    let code = CString::new(include_str!("bridge.py")).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let bridge = PyModule::from_code(py, &code, c"<covet>/bridge.py", c"_covet_bridge")?;
    let sources: Vec<(&str, bool, &str)> = COVET_PACKAGE.to_vec();
    let paths: Vec<String> = settings.sys_path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    bridge.getattr("setup")?.call1((sources, paths))?;
    if !COVET_PACKAGE.is_empty()
        && let Err(e) = py.import("covet")
    {
        tracing::error!(target: "covet::python", "the embedded covet package failed to import: {e}");
    }
    Ok(bridge.unbind())
}
