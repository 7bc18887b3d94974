//! `_covet_host`: the native module the bridge imports. It holds what
//! Python calls back into Rust: `log` (print → the host log), `Done` (a task's completion, handed to a
//! Rust closure), `Sink` (an ASGI app's `send`, feeding a channel) and
//! `BodySource` (a streamed request body, see [`super::body`]), and the host
//! services' classes (`Services`, `Pending`, `Reader`, `BodyWriter`, see
//! [`super::services`]), and `Span` (the span of a plugin call, see
//! [`super::trace`]).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::{
    prelude::*,
    types::{PyBytes, PyModule, PyString},
};

/// `_covet_host.log(level, text)`.
#[pyfunction]
fn log(level: &str, text: &str) {
    match level {
        "warn" => tracing::warn!(target: "covet::python", "{text}"),
        "error" => tracing::error!(target: "covet::python", "{text}"),
        _ => tracing::info!(target: "covet::python", "{text}"),
    }
}

/// Builds the module.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "_covet_host")?;
    m.add_function(wrap_pyfunction!(log, &m)?)?;
    m.add_class::<Done>()?;
    m.add_class::<Sink>()?;
    m.add_class::<super::body::BodySource>()?;
    m.add_class::<super::services::Services>()?;
    m.add_class::<super::services::Pending>()?;
    m.add_class::<super::outbound::Reader>()?;
    m.add_class::<super::outbound::BodyWriter>()?;
    m.add_class::<super::trace::PySpan>()?;
    Ok(m)
}

/// A closure run with a task's result, on the loop thread.
pub type DoneFn = Box<dyn FnOnce(&Bound<'_, PyAny>) + Send>;

/// A callable that runs its closure once.
#[pyclass]
pub struct Done(Mutex<Option<DoneFn>>);

impl Done {
    /// Wraps `f`.
    pub fn new(f: impl FnOnce(&Bound<'_, PyAny>) + Send + 'static) -> Done {
        Done(Mutex::new(Some(Box::new(f))))
    }
}

#[pymethods]
impl Done {
    fn __call__(&self, result: &Bound<'_, PyAny>) {
        let f = self.0.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = f {
            f(result);
        }
    }
}

/// What an ASGI app sent. The head travels with the first body chunk, so a
/// plain response is one message (one wake-up of the request's task).
#[derive(Debug)]
pub enum AsgiMsg {
    /// `http.response.start` and the first `http.response.body` (`more_body`).
    Head(u16, Vec<(Bytes, Bytes)>, Bytes, bool),
    /// A later `http.response.body`, its `more_body`, and whether the app's
    /// `send` waits for it to be let through ([`super::window`]).
    Body(Bytes, bool, bool),
    /// The app returned (`None`) or raised (the traceback).
    Finish(Option<String>),
    /// A streamed request body was cut off (see [`super::body`]).
    BodyFailed(BodyFailure),
}

/// Why a streamed request body was cut off.
#[derive(Debug)]
pub enum BodyFailure {
    /// Past `limits.max_body` (the limit).
    TooLarge(u64),
    /// The client's body could not be read (the reason).
    Unreadable(String),
}

/// The Rust end of one ASGI request: its channel, and the app's
/// `finished` event (set to deliver `http.disconnect`).
pub struct SinkShared {
    /// Where messages go.
    pub tx: tokio::sync::mpsc::UnboundedSender<AsgiMsg>,
    /// The `asyncio.Event` whose setting makes `receive()` return `http.disconnect`.
    pub finished: Mutex<Option<Py<PyAny>>>,
    /// The streamed body's back-pressure.
    pub window: super::window::Window,
}

/// The object `send` writes to; holds `http.response.start` until the
/// first body chunk.
#[pyclass]
pub struct Sink {
    shared: Arc<SinkShared>,
    start: Mutex<Option<Start>>,
}

/// A held `http.response.start`: status and headers.
type Start = (u16, Vec<(Bytes, Bytes)>);

impl Sink {
    /// A sink writing to `shared`.
    pub fn new(shared: Arc<SinkShared>) -> Sink {
        Sink { shared, start: Mutex::new(None) }
    }

    fn take_start(&self) -> Option<Start> {
        self.start.lock().ok().and_then(|mut s| s.take())
    }
}

fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Bytes::from(s.to_str()?.to_owned()));
    }
    Ok(Bytes::from(value.extract::<Vec<u8>>()?))
}

#[pymethods]
impl Sink {
    fn bind(&self, finished: Py<PyAny>) {
        if let Ok(mut slot) = self.shared.finished.lock() {
            *slot = Some(finished);
        }
    }

    fn start(&self, status: u16, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut list = Vec::new();
        for item in headers.try_iter()? {
            let item = item?;
            list.push((bytes_of(&item.get_item(0)?)?, bytes_of(&item.get_item(1)?)?));
        }
        if let Ok(mut start) = self.start.lock() {
            *start = Some((status, list));
        }
        Ok(())
    }

    /// Sends a body chunk. True: the app's `send` must wait (it registers
    /// a future with `wait`) until the client has taken enough of the body.
    fn body(&self, data: &Bound<'_, PyAny>, more: bool) -> PyResult<bool> {
        let body = bytes_of(data)?;
        if let Some((status, headers)) = self.take_start() {
            let _ = self.shared.tx.send(AsgiMsg::Head(status, headers, body, more));
            return Ok(false);
        }
        let (msg, wait) = match self.shared.window.try_hold(body) {
            Ok(held) => (AsgiMsg::Body(held, more, false), false),
            // The last chunk needs no waiting: the app is done sending.
            Err(body) => (AsgiMsg::Body(body, more, more), more),
        };
        Ok(self.shared.tx.send(msg).is_ok() && wait)
    }

    /// The future a `send` that `body` told to wait awaits.
    fn wait(&self, py: Python<'_>, future: Py<PyAny>) -> PyResult<()> {
        self.shared.window.wait(py, future)
    }

    fn finish(&self, error: Option<String>) {
        if let (None, Some((status, headers))) = (&error, self.take_start()) {
            let _ = self.shared.tx.send(AsgiMsg::Head(status, headers, Bytes::new(), false));
        }
        let _ = self.shared.tx.send(AsgiMsg::Finish(error));
    }
}
