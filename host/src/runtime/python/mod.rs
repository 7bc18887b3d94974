//! The Python runtime: CPython embedded with pyo3, running three plugin
//! forms behind the [`Executor`](super::Executor) trait — a `covet.Covet`
//! decorator app ([`app`]), any ASGI 3 app ([`asgi`]) and a filter module
//! ([`filter`]).
//!
//! Rust does the network I/O, parsing and routing without the GIL; Python
//! runs only user code, on the pool threads (sync code) or the event-loop
//! thread (coroutines), see [`workers`]. Host services (outbound HTTP,
//! timers and background tasks, shared state) are awaitables in the `covet`
//! module, each call made with the grants of the calling instance (see
//! [`services`]). With tracing on, each call gets its span ([`trace`],
//! `covet.trace` in Python), and the outbound calls it makes are children
//! of that span. Every load of a plugin executes its
//! file into a fresh module (a new name each time), so a swap or reload
//! never sees the previous instance's globals. See docs/python-runtime.md.

mod aloop;
mod app;
mod asgi;
mod body;
mod convert;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod hostmod;
mod interp;
mod outbound;
mod services;
mod signals;
mod trace;
mod window;
mod workers;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use pyo3::{prelude::*, types::PyTuple};

use super::{Executor, Fault};
use crate::{
    error::HostError,
    manifest::{PluginSpec, PythonForm, PythonPlugin},
};
use convert::PyResult_;
pub use aloop::host as host_event_loop;
pub use interp::Interp;
use services::PyInstance;

pub use super::python_code::PythonCode;

impl PythonCode {
    /// Loads the file into a fresh namespace and initialises it, with the
    /// host's services and the plugin's grants (see [`PythonCode::instantiate_with`]).
    pub fn instantiate(&self, spec: &PluginSpec) -> Result<Box<dyn Executor>, HostError> {
        let services = services::for_instance(spec)
            .map_err(|reason| HostError::PluginLoad { plugin: spec.name.clone(), path: self.path.clone(), reason })?;
        self.instantiate_with(spec, services)
    }

    /// Loads the file into a fresh namespace and initialises it, with the
    /// host services `services` (the plugin's grants and its task set).
    pub fn instantiate_with(&self, spec: &PluginSpec, services: covet_services::PluginServices) -> Result<Box<dyn Executor>, HostError> {
        // Starting Python or importing the plugin may install fault handlers over wasmtime's (signals.rs).
        signals::keep_wasm_traps(|| self.load_plugin(spec, services))
    }

    fn load_plugin(&self, spec: &PluginSpec, services: covet_services::PluginServices) -> Result<Box<dyn Executor>, HostError> {
        let settings = spec.python.clone().unwrap_or_else(|| PythonPlugin {
            form: self.form,
            attr: None,
            module: None,
            timeout: PythonPlugin::DEFAULT_TIMEOUT,
            stream_body: false,
            interpreter: Default::default(),
        });
        let refuse = |reason: String| HostError::PluginLoad { plugin: spec.name.clone(), path: self.path.clone(), reason };
        let interp = interp::get(&settings.interpreter).map_err(refuse)?;
        let instance = Python::attach(|py| PyInstance::new(py, interp, &spec.name, services.clone(), settings.timeout))
            .map_err(|e| refuse(format!("cannot set up its host services: {e}")))?;
        let target = Target { plugin: spec.name.clone(), path: self.path.clone(), settings, instance: Arc::new(instance) };
        let init = |reason: String| {
            // A refused load stops what its init may have started.
            target.instance.close();
            HostError::PluginInit { plugin: spec.name.clone(), reason }
        };
        let executor: Box<dyn Executor> = match self.form {
            PythonForm::App => Box::new(app::AppExecutor::load(interp, &target, &spec.config).map_err(init)?),
            PythonForm::Asgi => Box::new(asgi::AsgiExecutor::load(interp, &target).map_err(init)?),
            PythonForm::Filter => Box::new(filter::FilterExecutor::load(interp, &target, &spec.config).map_err(init)?),
        };
        target.instance.start();
        Ok(executor)
    }
}

/// What a loader needs to find a plugin's Python object.
pub struct Target {
    plugin: String,
    path: PathBuf,
    settings: PythonPlugin,
    instance: Arc<PyInstance>,
}

impl Target {
    /// Runs the bridge's `load`: the file in a fresh module, then the attribute.
    fn load(&self, py: Python<'_>) -> Result<Py<PyAny>, String> {
        let bridge = interp::bridge(py).map_err(|e| e.to_string())?;
        let path = self.path.to_string_lossy().into_owned();
        let args = (&self.plugin, path, self.settings.module.clone(), self.settings.attr.clone(), self.instance.obj());
        bridge.getattr("load").and_then(|f| f.call1(args)).map(Bound::unbind).map_err(|e| describe(py, e))
    }
}

/// A Python exception with its traceback, as text.
fn describe(py: Python<'_>, err: PyErr) -> String {
    let tb = err.traceback(py).and_then(|tb| tb.format().ok()).unwrap_or_default();
    format!("{tb}{err}")
}

/// When a queued call's request stops waiting for it ([`crate::clock::now_ns`]).
/// A call that reaches the loop or the pool after that is not started: its
/// request has answered 504 (or its client left), and running it anyway
/// would only delay the calls queued behind it (a backlog of stuck calls
/// would make every later request time out too).
#[derive(Clone, Copy)]
struct Due(u64);

impl Due {
    fn after(timeout: Duration) -> Due {
        Due(crate::clock::now_ns().saturating_add(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)))
    }

    fn passed(self) -> bool {
        crate::clock::now_ns() >= self.0
    }

    /// `tx` back when its call may start; otherwise answers it as timed
    /// out (its request has stopped waiting, or its client left) and `None`.
    fn admit(self, tx: tokio::sync::oneshot::Sender<PyResult_>) -> Option<tokio::sync::oneshot::Sender<PyResult_>> {
        if self.passed() || tx.is_closed() {
            let _ = tx.send(PyResult_::Cancelled);
            return None;
        }
        Some(tx)
    }
}

/// Runs a sync call on the pool, waiting at most `timeout` for its result.
async fn on_pool(
    interp: &Interp,
    timeout: Duration,
    call: impl FnOnce(Python<'_>) -> PyResult_ + Send + 'static,
) -> Result<PyResult_, Fault> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let due = Due::after(timeout);
    interp.pool.submit(Box::new(move |py| {
        let Some(tx) = due.admit(tx) else { return };
        let _ = tx.send(call(py));
    }))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(_)) => Err(Fault::Error("the Python thread dropped the call".into())),
        Err(_) => Err(Fault::Timeout(format!("no answer within {} ms (the thread stays busy until the code returns)", timeout.as_millis()))),
    }
}

/// Runs a sync call inline on the event loop's thread, at its next turn,
/// waiting at most `timeout` for its result (the loop's watchdog stops a
/// call that runs past its limit; see `aloop`).
async fn on_loop_inline(
    interp: &Interp,
    timeout: Duration,
    call: impl FnOnce(Python<'_>) -> PyResult_ + Send + 'static,
) -> Result<PyResult_, Fault> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let due = Due::after(timeout);
    interp.aloop.submit(Box::new(move |py| {
        let Some(tx) = due.admit(tx) else { return };
        let _ = tx.send(call(py));
    }));
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(_)) => Err(Fault::Error("the event loop dropped the call".into())),
        Err(_) => Err(Fault::Timeout(format!("no answer within {} ms (the loop's watchdog stops the call)", timeout.as_millis()))),
    }
}

/// `(function, args)` for the bridge's `spawn`, built on the loop thread.
type Prepared = PyResult<(Py<PyAny>, Py<PyTuple>)>;

/// The task of a coroutine, kept to cancel it on timeout.
type TaskCell = Arc<Mutex<Option<Py<PyAny>>>>;

/// Runs a coroutine function on the event loop; on timeout its task is cancelled.
async fn on_loop(
    interp: &'static Interp,
    instance: &Arc<PyInstance>,
    timeout: Duration,
    prepare: impl FnOnce(Python<'_>) -> Prepared + Send + 'static,
) -> Result<PyResult_, Fault> {
    let _permit = interp.aloop.permit()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task: TaskCell = Arc::default();
    let cell = task.clone();
    let instance = instance.clone();
    let due = Due::after(timeout);
    interp.aloop.submit(Box::new(move |py| {
        let Some(tx) = due.admit(tx) else { return };
        let started = prepare(py).and_then(|(func, args)| {
            let tx = Mutex::new(Some(tx));
            let done = move |result: &Bound<'_, PyAny>| {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(convert::read(result));
                }
            };
            services::spawn_in(py, &instance, func.bind(py), args.into_bound(py), done)
        });
        match started {
            // None: an eager task that already finished (nothing to cancel).
            Ok(t) if t.is_none() => {}
            Ok(t) => *cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.unbind()),
            Err(e) => tracing::error!(target: "covet::python", "cannot start a coroutine: {}", describe(py, e)),
        }
    }));
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(_)) => Err(Fault::Error("the coroutine could not be started".into())),
        Err(_) => {
            cancel(interp, task);
            Err(Fault::Timeout(format!("no answer within {} ms (the task was cancelled)", timeout.as_millis())))
        }
    }
}

/// Cancels a task on the loop thread.
fn cancel(interp: &Interp, task: TaskCell) {
    interp.aloop.submit(Box::new(move |py| {
        if let Some(t) = task.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.bind(py).call_method0("cancel");
        }
    }));
}

/// Runs a hook (`init`, `shutdown`, `_covet_init`...) at load or retire time:
/// on the loop thread, in the instance's context, awaiting it there if it
/// is a coroutine. Call without the GIL.
fn run_hook(
    interp: &'static Interp,
    instance: &Arc<PyInstance>,
    what: &str,
    hook: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
) -> Result<(), String> {
    let wait = Duration::from_secs(60);
    let instance = instance.clone();
    let answer = interp.aloop.call(wait, move |py, tx: std::sync::mpsc::Sender<Result<(), String>>| {
        let fail = tx.clone();
        let result = in_context(py, &instance, hook).and_then(|awaitable| {
            let bridge = interp::bridge(py)?;
            let awaitable = awaitable.into_bound(py);
            if !py.import("asyncio")?.getattr("iscoroutine")?.call1((&awaitable,))?.is_truthy()? {
                let _ = tx.send(Ok(()));
                return Ok(());
            }
            let done = move |r: &Bound<'_, PyAny>| {
                let _ = tx.send(match convert::read_optional(r) {
                    Some(PyResult_::Error(tb)) => Err(tb),
                    _ => Ok(()),
                });
            };
            let await_plain = bridge.getattr("await_plain")?;
            services::spawn_in(py, &instance, &await_plain, PyTuple::new(py, [awaitable])?, done).map(drop)
        });
        if let Err(e) = result {
            let _ = fail.send(Err(describe(py, e)));
        }
    });
    answer?.map_err(|e| format!("{what} raised: {e}"))
}

/// Runs `f` inside the instance's context (so what it starts belongs to the instance).
fn in_context(py: Python<'_>, instance: &PyInstance, f: impl FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static) -> PyResult<Py<PyAny>> {
    let cell = Mutex::new(Some(f));
    let call = pyo3::types::PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<Py<PyAny>> {
        let f = cell.lock().ok().and_then(|mut f| f.take());
        f.map_or_else(|| Ok(args.py().None()), |f| f(args.py()))
    })?;
    instance.run_in(py, call.as_any(), PyTuple::empty(py)).map(Bound::unbind)
}
