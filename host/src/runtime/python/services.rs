//! Host services for Python plugins (the Rust half of `covet._services` and
//! `covet.http`): `_covet_host.Services`, one per plugin instance, holding
//! that instance's [`PluginServices`] (its manifest grants, its task set).
//!
//! Every method is called on the event-loop thread with an asyncio future:
//! it starts the operation as a task in the instance's [`TaskSet`] (on the
//! host's tokio runtime, no GIL held) and returns a [`Pending`] whose
//! `cancel()` stops it. The result goes back through the loop's job queue
//! ([`Delivery`]), which resolves the future on the loop thread with
//! `(True, value)` or `(False, (kind, message, grant))`; no thread waits and
//! no Python object is touched off the loop thread. When the instance shuts
//! down its task set aborts what is still running, and each aborted
//! operation resolves its future with `shut_down`.
//!
//! [`PyInstance`] is the instance's Python side (`covet._services._Instance`):
//! the context the host runs the plugin's code in, and its background tasks.

use std::{sync::Mutex, time::Duration};

use bytes::Bytes;
use covet_services::{PluginServices, ServiceError, tasks::TaskSet};
use pyo3::{prelude::*, types::PyBytes};

use super::{interp, outbound, trace::PySpan, workers};
use crate::runtime::python::interp::Interp;

/// What a finished operation hands to Python.
pub enum Reply {
    /// `None`.
    Unit,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// Bytes, or `None` (absent key, end of a body).
    Bytes(Option<Bytes>),
    /// A response head: `(status, headers, version, reader)`.
    Head(outbound::Head),
}

impl Reply {
    fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(match self {
            Reply::Unit => py.None().into_bound(py),
            Reply::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
            Reply::Int(i) => i.into_pyobject(py)?.into_any(),
            Reply::Bytes(None) => py.None().into_bound(py),
            Reply::Bytes(Some(b)) => PyBytes::new(py, &b).into_any(),
            Reply::Head(head) => head.into_py(py)?,
        })
    }
}

/// The outcome of an operation.
pub type Outcome = Result<Reply, ServiceError>;

/// Resolves one asyncio future, once, on the loop thread. Dropped unsent
/// (the operation was aborted at shutdown), it resolves with `shut_down`.
pub struct Delivery {
    interp: &'static Interp,
    future: Option<Py<PyAny>>,
}

impl Delivery {
    /// Sends `outcome` to the future.
    pub fn send(mut self, outcome: Outcome) {
        if let Some(future) = self.future.take() {
            post(self.interp, future, outcome);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            post(self.interp, future, Err(ServiceError::ShutDown));
        }
    }
}

fn post(interp: &'static Interp, future: Py<PyAny>, outcome: Outcome) {
    interp.aloop.submit(Box::new(move |py| resolve(py, future.bind(py), outcome)));
}

/// Sets the future's result, unless it is already done (cancelled).
fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: Outcome) {
    if future.call_method0(pyo3::intern!(py, "done")).and_then(|d| d.is_truthy()).unwrap_or(true) {
        return;
    }
    let value = match outcome {
        Ok(reply) => reply.into_py(py).and_then(|v| (true, v).into_pyobject(py).map(Bound::into_any)),
        Err(e) => {
            let grant = match &e {
                ServiceError::Denied { grant, .. } => Some(*grant),
                _ => None,
            };
            (false, (e.kind(), e.to_string(), grant)).into_pyobject(py).map(Bound::into_any)
        }
    };
    if let Err(e) = value.and_then(|v| future.call_method1(pyo3::intern!(py, "set_result"), (v,))) {
        tracing::error!(target: "covet::python", "resolving a host service call: {e}");
    }
}

/// A started operation; `cancel()` stops it (the awaiting task was cancelled).
#[pyclass(module = "_covet_host")]
pub struct Pending(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

#[pymethods]
impl Pending {
    fn cancel(&self) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    }
}

/// Runs `work` in `tasks`, delivering its outcome to `future`. If the
/// instance is shutting down the task is refused and dropped, and its
/// delivery resolves the future with `shut_down`.
pub fn start<F>(interp: &'static Interp, tasks: &TaskSet, future: Py<PyAny>, work: F) -> Pending
where
    F: Future<Output = Outcome> + Send + 'static,
{
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let mut delivery = Delivery { interp, future: Some(future) };
    let _ = tasks.spawn(async move {
        tokio::select! {
            outcome = work => delivery.send(outcome),
            // The awaiting task was cancelled: nobody reads the result.
            Ok(()) = cancelled => drop(delivery.future.take()),
        }
    });
    Pending(Mutex::new(Some(cancel)))
}

/// `_covet_host.Services`: one plugin instance's services, as Python sees them.
#[pyclass(module = "_covet_host", frozen)]
pub struct Services {
    pub(super) interp: &'static Interp,
    pub(super) svc: PluginServices,
}

/// Runs `work` with `span` as the current span (`covet_telemetry::current`),
/// so the host services it reaches make their client spans its children;
/// without one (tracing off, a background task) as it is.
async fn in_span<F: Future>(span: Option<covet_telemetry::Span>, work: F) -> F::Output {
    match span {
        Some(span) => covet_telemetry::current::scope(span, work).await,
        None => work.await,
    }
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}

fn ttl(value: Option<f64>) -> Option<Duration> {
    value.map(seconds)
}

impl Services {
    /// Starts `work` for `future` in this instance's task set.
    pub(super) fn run<F>(&self, future: Py<PyAny>, work: F) -> Pending
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        start(self.interp, &self.svc.tasks, future, work)
    }

    /// Starts a state operation on namespace `ns` (checked against the grants now).
    fn state<F, Fut>(&self, future: Py<PyAny>, ns: &str, op: F) -> Pending
    where
        F: FnOnce(covet_services::state::Namespace) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        match self.svc.state.namespace(ns) {
            Ok(namespace) => self.run(future, op(namespace)),
            Err(denied) => self.run(future, async move { Err(denied) }),
        }
    }
}

#[pymethods]
impl Services {
    /// `covet.sleep(seconds)`: ends early with `shut_down` when the instance shuts down.
    fn sleep(&self, future: Py<PyAny>, secs: f64) -> Pending {
        let sleep = self.svc.tasks.sleep(seconds(secs));
        self.run(future, async move { sleep.await.map(|()| Reply::Unit) })
    }

    fn state_get(&self, future: Py<PyAny>, ns: &str, key: String) -> Pending {
        self.state(future, ns, |n| async move { n.get(&key).await.map(|v| Reply::Bytes(v.map(Bytes::from))) })
    }

    #[pyo3(signature = (future, ns, key, value, ttl_s=None))]
    fn state_set(&self, future: Py<PyAny>, ns: &str, key: String, value: Vec<u8>, ttl_s: Option<f64>) -> Pending {
        self.state(future, ns, |n| async move { n.set(&key, value, ttl(ttl_s)).await.map(|()| Reply::Unit) })
    }

    #[pyo3(signature = (future, ns, key, delta, ttl_s=None))]
    fn state_incr(&self, future: Py<PyAny>, ns: &str, key: String, delta: i64, ttl_s: Option<f64>) -> Pending {
        self.state(future, ns, |n| async move { n.incr(&key, delta, ttl(ttl_s)).await.map(Reply::Int) })
    }

    #[pyo3(signature = (future, ns, key, expected, new, ttl_s=None))]
    fn state_cas(
        &self,
        future: Py<PyAny>,
        ns: &str,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
        ttl_s: Option<f64>,
    ) -> Pending {
        self.state(future, ns, |n| async move {
            n.compare_and_set(&key, expected.as_deref(), new, ttl(ttl_s)).await.map(Reply::Bool)
        })
    }

    fn state_delete(&self, future: Py<PyAny>, ns: &str, key: String) -> Pending {
        self.state(future, ns, |n| async move { n.delete(&key).await.map(Reply::Bool) })
    }

    /// `covet.http.request(...)`: see [`outbound`]. `span`: the calling
    /// plugin call's span (tracing on), the parent of the call's client span.
    #[pyo3(signature = (future, method, url, headers, body, writer, timeout_s=None, span=None))]
    #[allow(clippy::too_many_arguments)]
    fn http(
        &self,
        future: Py<PyAny>,
        method: String,
        url: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Option<Vec<u8>>,
        writer: Option<PyRef<'_, outbound::BodyWriter>>,
        timeout_s: Option<f64>,
        span: Option<PyRef<'_, PySpan>>,
    ) -> Pending {
        let request = outbound::Call { method, url, headers, body, stream: writer.and_then(|w| w.take_stream()), timeout: timeout_s.map(seconds) };
        let (client, interp, tasks) = (self.svc.http.clone(), self.interp, self.svc.tasks.clone());
        let send = async move { outbound::send(client, interp, tasks, request).await.map(Reply::Head) };
        self.run(future, in_span(PySpan::inner(span), send))
    }

    /// A streamed request body's writer (the body of one `http` call).
    fn body_writer(&self) -> outbound::BodyWriter {
        outbound::BodyWriter::new(self.interp, self.svc.tasks.clone())
    }
}

/// One plugin instance's Python side (`covet._services._Instance`) and its services.
pub struct PyInstance {
    obj: Py<PyAny>,
    svc: PluginServices,
    interp: &'static Interp,
}

impl PyInstance {
    /// Builds the instance object for plugin `plugin` with `svc`.
    /// `limit` is the plugin's time limit (`limits.timeout`): a coroutine of
    /// it holding the event loop longer is cancelled (see `aloop::watchdog`).
    pub fn new(py: Python<'_>, interp: &'static Interp, plugin: &str, svc: PluginServices, limit: Duration) -> PyResult<PyInstance> {
        let host = Py::new(py, Services { interp, svc: svc.clone() })?;
        let obj = interp::bridge(py)?.getattr("instance")?.call1((plugin, host, limit.as_secs_f64()))?.unbind();
        Ok(PyInstance { obj, svc, interp })
    }

    /// The `_Instance` object.
    pub fn obj(&self) -> &Py<PyAny> {
        &self.obj
    }

    /// `fn(*args)` in the instance's context (call on the thread holding the GIL).
    pub fn run_in<'py>(&self, py: Python<'py>, func: &Bound<'py, PyAny>, args: Bound<'py, pyo3::types::PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        interp::bridge(py)?.getattr("run_in")?.call1((self.obj.bind(py), func, args))
    }

    /// Starts the periodic functions registered while loading (after init).
    pub fn start(&self) {
        let obj = Python::attach(|py| self.obj.clone_ref(py));
        self.interp.aloop.submit(Box::new(move |py| {
            if let Err(e) = obj.bind(py).call_method0("_start") {
                tracing::error!(target: "covet::python", "starting a plugin's periodic tasks: {e}");
            }
        }));
    }

    /// At retire time (after the plugin's shutdown hook): cancels its
    /// background tasks, then aborts the host operations still running.
    /// Call without the GIL.
    pub fn close(&self) {
        let obj = Python::attach(|py| self.obj.clone_ref(py));
        let closed = self.interp.aloop.call(Duration::from_secs(10), move |py, tx| {
            let _ = tx.send(obj.bind(py).call_method0("_close").and_then(|n| n.extract::<usize>()).map_err(|e| e.to_string()));
        });
        match closed {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(target: "covet::python", tasks = n, "cancelled the background tasks of a retired instance"),
            Ok(Err(e)) | Err(e) => tracing::error!(target: "covet::python", "cancelling background tasks: {e}"),
        }
        self.svc.tasks.shutdown();
    }
}

/// Runs `workers::spawn` for `func(*args)` in the instance's context.
pub fn spawn_in<'py>(
    py: Python<'py>,
    instance: &PyInstance,
    func: &Bound<'py, PyAny>,
    args: Bound<'py, pyo3::types::PyTuple>,
    done: impl FnOnce(&Bound<'_, PyAny>) + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    workers::spawn_in(py, Some(instance.obj.bind(py)), func, args, done)
}

/// The services of a new instance of `spec`: the host's (built from the
/// manifest's `services:`) with the plugin's grants and a fresh task set on
/// the host's tokio runtime — or, outside one (`covet check`), on a small
/// runtime of its own.
pub fn for_instance(spec: &crate::manifest::PluginSpec) -> Result<PluginServices, String> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return crate::runtime::services::for_plugin(spec);
    }
    let own = own_runtime()?;
    let _inside = own.enter();
    let outbound = covet_services::http::OutboundPolicy::new(&spec.grants.outbound_http)?;
    let grants = covet_services::Grants { outbound, state_namespaces: spec.grants.state.clone() };
    Ok(crate::runtime::services::current()?.for_plugin(&spec.name, grants, own.handle().clone()))
}

fn own_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static OWN: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> = std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1).thread_name("covet-py-services").enable_all();
        builder.build().map_err(|e| format!("cannot start a runtime for its host services: {e}"))
    });
    own.as_ref().map_err(Clone::clone)
}
