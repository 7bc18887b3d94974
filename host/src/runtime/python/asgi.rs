//! ASGI 3.0 apps (`asgi:`): the `http` scope, `receive`/`send`, streaming
//! responses and the lifespan protocol.
//!
//! Every request runs as a task on the event loop (bridge `asgi_http`).
//! `send` writes into a [`Sink`] feeding a channel this side reads: the
//! response head and the first body chunk make the [`HostResponse`]; if
//! the app said `more_body`, the rest is forwarded as a streaming body,
//! each chunk written to the client as it arrives. The request body is the
//! buffered body (one `http.request` message), or with `request_body:
//! stream` the client's body chunk by chunk as the app asks for it (see
//! [`super::body`]); `receive` then waits and returns `http.disconnect` once
//! the response is complete or the client went away. The time limit covers
//! the wait for the head and first chunk (so, when streaming, the part of
//! the upload the app reads before answering).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use covet_plugin_api::Phases;
use pyo3::{prelude::*, types::{PyBytes, PyTuple}};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{
    TaskCell, Target, cancel, describe,
    services::{self, PyInstance},
    body::{self, BodySource},
    hostmod::{AsgiMsg, BodyFailure, Sink, SinkShared},
    interp::{self, Interp},
    trace::PySpan,
};
use crate::{
    exchange::{BodyStream, Exchange, HostResponse, RequestBody},
    problem,
    runtime::{Decision, Executor, Fault, Outcome, PluginInfo},
};

/// One live ASGI app instance.
pub struct AsgiExecutor {
    info: PluginInfo,
    interp: &'static Interp,
    app: Arc<Py<PyAny>>,
    lifespan: Option<Arc<Py<PyAny>>>,
    state: Option<Arc<Py<PyAny>>>,
    timeout: Duration,
    instance: Arc<PyInstance>,
}

impl AsgiExecutor {
    /// Loads the app and runs its lifespan startup (a failure refuses the plugin).
    pub fn load(interp: &'static Interp, target: &Target) -> Result<AsgiExecutor, String> {
        let app = Python::attach(|py| target.load(py))?;
        let app_ref = Python::attach(|py| app.clone_ref(py));
        let instance = target.instance.clone();
        let started = interp.aloop.call(Duration::from_secs(60), move |py, tx| {
            let fail = tx.clone();
            let run = interp::bridge(py).and_then(|bridge| {
                let start = bridge.getattr("lifespan_start")?;
                let done = move |r: &Bound<'_, PyAny>| {
                    let _ = tx.send(lifespan_result(r));
                };
                services::spawn_in(py, &instance, &start, pyo3::types::PyTuple::new(py, [app_ref])?, done).map(drop)
            });
            if let Err(e) = run {
                let _ = fail.send(Err(describe(py, e)));
            }
        })?;
        let (lifespan, state) = started.map_err(|m| format!("lifespan startup failed: {m}"))?;
        let info = PluginInfo {
            name: target.plugin.clone(),
            kind: "python",
            plugin_name: target.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            version: "asgi".into(),
            api_version: "asgi 3.0".into(),
            phases: Phases::HANDLE,
        };
        let instance = target.instance.clone();
        Ok(AsgiExecutor { info, interp, app: Arc::new(app), lifespan: Some(Arc::new(lifespan)), state: state.map(Arc::new), timeout: target.settings.timeout, instance })
    }

    async fn serve(&self, head: Head, stream: Option<Box<RequestBody>>) -> Result<HostResponse, Fault> {
        let permit = self.interp.aloop.permit()?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let source = stream.map(|body| body::start(self.interp, *body, tx.clone()));
        let shared = Arc::new(SinkShared { tx, finished: Mutex::new(None), window: Default::default() });
        let task: TaskCell = Arc::default();
        let request_id = head.request_id.clone();
        self.start(head, source, shared.clone(), task.clone());
        // Until the response is complete, dropping this (the client went
        // away, or a timeout) makes the app's receive() return http.disconnect.
        let mut disconnect = Disconnect { interp: self.interp, shared, armed: true };
        let (status, headers, first, more) = match tokio::time::timeout(self.timeout, read_head(&mut rx)).await {
            Ok(Ok(Ok(head))) => head,
            Ok(Ok(Err(failure))) => return Ok(refusal(failure, &request_id)),
            Ok(Err(fault)) => return Err(self.log_fault(fault)),
            Err(_) => {
                cancel(self.interp, task);
                return Err(Fault::Timeout(format!("no response within {} ms (the task was cancelled)", self.timeout.as_millis())));
            }
        };
        let mut resp = HostResponse::new(http::StatusCode::from_u16(status).map_err(|_| Fault::Error(format!("invalid status {status}")))?);
        for (n, v) in headers {
            let name = http::HeaderName::from_bytes(&n).map_err(|_| Fault::Error("invalid header name from the ASGI app".into()))?;
            let value = http::HeaderValue::from_bytes(&v).map_err(|_| Fault::Error(format!("invalid value for header {name}")))?;
            resp.headers.append(name, value);
        }
        resp.body = first;
        if !more {
            disconnect.armed = false;
        } else {
            let (ctx, crx) = tokio::sync::mpsc::unbounded_channel();
            let plugin = self.info.name.clone();
            let (interp, sink) = (self.interp, disconnect.shared.clone());
            tokio::spawn(async move {
                let _permit = permit;
                forward(&plugin, rx, ctx, &sink, interp).await;
                // Whatever ended the stream, a send still waiting must not hang.
                sink.window.release(interp);
            });
            let guard: Arc<dyn Send + Sync> = Arc::new(disconnect);
            resp.stream = Some(BodyStream::new(crx, guard));
        }
        Ok(resp)
    }

    fn log_fault(&self, fault: Fault) -> Fault {
        if let Fault::Error(tb) = &fault {
            tracing::error!(target: "covet::python", plugin = %self.info.name, "ASGI app failed:\n{tb}");
            let last = tb.trim_end().lines().last().unwrap_or("").to_owned();
            return Fault::Error(format!("the ASGI app failed: {last}"));
        }
        fault
    }

    fn start(&self, head: Head, source: Option<BodySource>, shared: Arc<SinkShared>, task: TaskCell) {
        let (app, state, instance) = (self.app.clone(), self.state.clone(), self.instance.clone());
        let due = super::Due::after(self.timeout);
        self.interp.aloop.submit(Box::new(move |py| {
            // Its request has answered 504 or lost its client: not started (see `Due`).
            if due.passed() || shared.tx.is_closed() {
                return;
            }
            let run = interp::bridge(py).and_then(|bridge| {
                let (scope_head, headers) = head.to_py(py)?;
                let state = state.as_ref().map(|s| s.clone_ref(py));
                let sink = Py::new(py, Sink::new(shared.clone()))?;
                let source = source.map(|s| Py::new(py, s)).transpose()?;
                let span = PySpan::wrap(py, head.span.as_ref())?;
                let body = PyBytes::new(py, &head.body);
                let args = (app.clone_ref(py), scope_head, headers, body, source, state, sink, instance.obj().clone_ref(py), span);
                bridge.getattr(pyo3::intern!(py, "asgi_start"))?.call1(args)
            });
            match run {
                Ok(t) if t.is_none() => {} // an eager task that already finished
                Ok(t) => *task.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.unbind()),
                Err(e) => {
                    let _ = shared.tx.send(AsgiMsg::Finish(Some(describe(py, e))));
                }
            }
        }));
    }
}

/// The lifespan object and the state its startup filled (None: no lifespan support).
type Started = (Py<PyAny>, Option<Py<PyAny>>);

fn lifespan_result(r: &Bound<'_, PyAny>) -> Result<Started, String> {
    let read = || -> PyResult<Result<Started, String>> {
        let tag: String = r.get_item(0)?.extract()?;
        if tag != "ok" {
            return Ok(Err(r.get_item(1)?.str()?.to_string()));
        }
        let lifespan = r.get_item(1)?;
        let state = lifespan.call_method0("state_items")?;
        Ok(Ok((lifespan.unbind(), (!state.is_none()).then(|| state.unbind()))))
    };
    read().unwrap_or_else(|e| Err(e.to_string()))
}

/// Where a streamed body's chunks go to the client.
type ClientTx = tokio::sync::mpsc::UnboundedSender<crate::exchange::Chunk>;

/// `http.response.start` with the first body chunk: status, headers, chunk, `more_body`.
type FirstPart = (u16, Vec<(Bytes, Bytes)>, Bytes, bool);

/// Waits for `http.response.start` and the first body chunk, or a streamed
/// request body's cut-off before them.
async fn read_head(rx: &mut UnboundedReceiver<AsgiMsg>) -> Result<Result<FirstPart, BodyFailure>, Fault> {
    match rx.recv().await {
        Some(AsgiMsg::Head(status, headers, body, more)) => Ok(Ok((status, headers, body, more))),
        Some(AsgiMsg::BodyFailed(failure)) => Ok(Err(failure)),
        Some(AsgiMsg::Body(..)) => Err(Fault::Error("the ASGI app sent a body before http.response.start".into())),
        Some(AsgiMsg::Finish(Some(tb))) => Err(Fault::Error(tb)),
        Some(AsgiMsg::Finish(None)) | None => Err(Fault::Error("the ASGI app returned without sending a response".into())),
    }
}

/// The host's answer to a request whose streamed body was cut off before the app answered.
fn refusal(failure: BodyFailure, request_id: &str) -> HostResponse {
    match failure {
        BodyFailure::TooLarge(max) => problem::payload_too_large(max, request_id),
        BodyFailure::Unreadable(reason) => problem::bad_body(&reason, request_id),
    }
}

/// Moves the rest of a streaming body from the app's channel to the
/// client's; a chunk the app waits on goes on once the client has room for
/// it, and then lets the app's `send` go on.
async fn forward(plugin: &str, mut rx: UnboundedReceiver<AsgiMsg>, tx: ClientTx, sink: &SinkShared, interp: &'static Interp) {
    while let Some(msg) = rx.recv().await {
        match msg {
            AsgiMsg::Body(body, more, wait) => {
                let body = match wait {
                    false => body,
                    true => match tokio::select! { () = tx.closed() => None, held = sink.window.hold(body) => held } {
                        Some(held) => held,
                        None => return,
                    },
                };
                if tx.send(Ok(body)).is_err() || !more {
                    return;
                }
                if wait {
                    sink.window.release(interp);
                }
            }
            AsgiMsg::Finish(Some(tb)) => {
                tracing::error!(target: "covet::python", plugin, "ASGI app failed while streaming:\n{tb}");
                let _ = tx.send(Err("the ASGI app failed while streaming its response".into()));
                return;
            }
            AsgiMsg::Finish(None) | AsgiMsg::Head(..) => return,
            // The response has started: the app saw http.disconnect, the client gets what it sends.
            AsgiMsg::BodyFailed(_) => {}
        }
    }
}

/// While armed (the response is not complete), dropping it — the client
/// went away during the request or the streamed body, or the call timed
/// out — sets the app's `finished` event so `receive()` returns
/// `http.disconnect`. A streamed body holds it until written.
struct Disconnect {
    interp: &'static Interp,
    shared: Arc<SinkShared>,
    armed: bool,
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let shared = self.shared.clone();
        self.interp.aloop.submit(Box::new(move |py| {
            if let Some(event) = shared.finished.lock().ok().and_then(|mut e| e.take()) {
                let _ = event.bind(py).call_method0("set");
            }
        }));
    }
}

/// The request, as Rust data, for the scope.
pub(super) struct Head {
    method: String,
    scheme: &'static str,
    path: String,
    raw_path: Vec<u8>,
    query: Vec<u8>,
    version: &'static str,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    client: Option<(String, u16)>,
    server: Option<(String, u16)>,
    body: Bytes,
    request_id: String,
    /// The plugin call's span (tracing on).
    span: Option<covet_telemetry::Span>,
}

impl Head {
    pub(super) fn new(ex: &Exchange) -> Head {
        let raw = ex.uri.path();
        let version = match ex.version {
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_3 => "3",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        let headers = ex.headers.iter().map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        let client = ex.client.parse::<std::net::SocketAddr>().ok().map(|a| (a.ip().to_string(), a.port()));
        Head {
            method: ex.method.as_str().to_owned(),
            scheme: if ex.uri.scheme_str() == Some("https") { "https" } else { "http" },
            path: percent_decode(raw),
            raw_path: raw.as_bytes().to_vec(),
            query: ex.uri.query().unwrap_or("").as_bytes().to_vec(),
            version,
            headers,
            client,
            server: server(ex),
            body: ex.body.clone(),
            request_id: ex.id().to_owned(),
            span: ex.span.clone(),
        }
    }
}

/// The scope's `head` tuple as `asgi_http` (bridge.py) unpacks it, and its headers.
pub(super) type ScopeArgs<'py> = (Bound<'py, PyTuple>, Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>);

impl Head {
    /// The head as the bridge's `asgi_http` takes it: `(method, scheme,
    /// path, raw_path, query, http_version, client, server)`, and the header pairs.
    pub(super) fn to_py<'py>(&self, py: Python<'py>) -> PyResult<ScopeArgs<'py>> {
        let headers = self.headers.iter().map(|(n, v)| (PyBytes::new(py, n), PyBytes::new(py, v))).collect();
        let scope_head = (
            &self.method,
            self.scheme,
            &self.path,
            PyBytes::new(py, &self.raw_path),
            PyBytes::new(py, &self.query),
            self.version,
            self.client.clone(),
            self.server.clone(),
        );
        Ok((scope_head.into_pyobject(py)?, headers))
    }
}

/// `[host, port]` of the server, from the `Host` header (or the URI's authority).
fn server(ex: &Exchange) -> Option<(String, u16)> {
    let authority = ex.uri.authority().map(|a| a.as_str().to_owned()).or_else(|| ex.headers.get(http::header::HOST)?.to_str().ok().map(str::to_owned))?;
    let authority: http::uri::Authority = authority.parse().ok()?;
    Some((authority.host().trim_matches(['[', ']']).to_owned(), authority.port_u16().unwrap_or(80)))
}

/// `%XX` → the byte; invalid escapes stay as written; the result is UTF-8 (lossy).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Executor for AsgiExecutor {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn on_request<'a>(&'a self, _: &'a mut Exchange) -> Outcome<'a, Decision> {
        Outcome::Ready(Ok(Decision::Continue))
    }

    fn handle<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, HostResponse> {
        let head = Head::new(ex);
        Outcome::Pending(Box::pin(self.serve(head, ex.body_stream.take())))
    }

    fn on_response<'a>(&'a self, _: &'a mut Exchange, _: &'a mut HostResponse) -> Outcome<'a, ()> {
        Outcome::Ready(Ok(()))
    }

    fn shutdown(&self) {
        self.stop_lifespan();
        self.instance.close();
    }
}

impl AsgiExecutor {
    /// Runs the lifespan shutdown (when the app supports lifespan).
    fn stop_lifespan(&self) {
        let Some(lifespan) = self.lifespan.clone() else { return };
        let instance = self.instance.clone();
        let stopped = self.interp.aloop.call(Duration::from_secs(15), move |py, tx| {
            let run = interp::bridge(py).and_then(|bridge| {
                let stop = bridge.getattr("lifespan_stop")?;
                let args = pyo3::types::PyTuple::new(py, [lifespan.clone_ref(py)])?;
                services::spawn_in(py, &instance, &stop, args, move |_| {
                    let _ = tx.send(());
                })
                .map(drop)
            });
            if let Err(e) = run {
                tracing::error!(target: "covet::python", "lifespan shutdown: {}", describe(py, e));
            }
        });
        if let Err(e) = stopped {
            tracing::warn!(target: "covet::python", plugin = %self.info.name, "lifespan shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(percent_decode("/a%20b/%E2%82%AC"), "/a b/€");
        assert_eq!(percent_decode("/bad%zz/%4"), "/bad%zz/%4");
    }
}
