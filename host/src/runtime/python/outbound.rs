//! `covet.http` on the Rust side: one outbound call through the plugin's
//! [`Outbound`] handle (its grants), a streamed response body read chunk by
//! chunk on demand ([`Reader`]), and a streamed request body fed from Python
//! through a one-slot channel ([`BodyWriter`]): each `send` resolves only
//! once the client has taken the previous chunk, so a producer never runs
//! ahead of the connection.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use covet_services::{
    ServiceError,
    http::{BoxError, Outbound, RequestBody, ResponseBody},
    tasks::TaskSet,
};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use pyo3::prelude::*;
use tokio::sync::mpsc;

use super::services::{Pending, Reply, start};
use crate::runtime::python::interp::Interp;

/// One call, as Python made it.
pub struct Call {
    /// The method (upper-case).
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// Header pairs.
    pub headers: Vec<(String, Vec<u8>)>,
    /// A buffered body.
    pub body: Option<Vec<u8>>,
    /// A streamed body's receiving end (from a [`BodyWriter`]).
    pub stream: Option<mpsc::Receiver<Result<Bytes, BoxError>>>,
    /// The plugin's limit until the response head.
    pub timeout: Option<Duration>,
}

/// A response head, and its body to read.
pub struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    version: &'static str,
    reader: Reader,
}

impl Head {
    /// `(status, headers, version, reader)`.
    pub fn into_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let reader = Py::new(py, self.reader)?;
        (self.status, self.headers, self.version, reader).into_pyobject(py).map(Bound::into_any)
    }
}

fn build(call: Call) -> Result<http::Request<RequestBody>, ServiceError> {
    let bad = |what: String| ServiceError::Http(what);
    let method = http::Method::from_bytes(call.method.as_bytes()).map_err(|_| bad(format!("invalid method {:?}", call.method)))?;
    let uri: http::Uri = call.url.parse().map_err(|e| bad(format!("invalid URL {:?}: {e}", call.url)))?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in &call.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(format!("invalid header name {name:?}")))?;
        let value = http::HeaderValue::from_bytes(value).map_err(|_| bad(format!("invalid value for header {name}")))?;
        builder = builder.header(name, value);
    }
    let body = match (call.stream, call.body) {
        (Some(rx), _) => ChannelBody { rx }.boxed_unsync(),
        (None, Some(data)) => covet_services::http::full(data),
        (None, None) => covet_services::http::empty(),
    };
    builder.body(body).map_err(|e| bad(e.to_string()))
}

/// Sends the call; resolves at the response head.
pub async fn send(client: Outbound, interp: &'static Interp, tasks: TaskSet, call: Call) -> Result<Head, ServiceError> {
    let timeout = call.timeout;
    let response = client.send(build(call)?, timeout).await?;
    let (parts, body) = response.into_parts();
    let headers = parts.headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().iter().map(|&b| char::from(b)).collect())).collect();
    let version = match parts.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    };
    let reader = Reader { interp, tasks, body: Arc::new(tokio::sync::Mutex::new(Some(body))) };
    Ok(Head { status: parts.status.as_u16(), headers, version, reader })
}

/// `_covet_host.Reader`: a response body, read on demand.
#[pyclass(module = "_covet_host", frozen)]
pub struct Reader {
    interp: &'static Interp,
    tasks: TaskSet,
    body: Arc<tokio::sync::Mutex<Option<ResponseBody>>>,
}

/// The next data chunk (trailers skipped); `None` at the end.
async fn next_chunk(body: &mut ResponseBody) -> Result<Option<Bytes>, ServiceError> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data()
            && !data.is_empty()
        {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

#[pymethods]
impl Reader {
    /// Resolves with the next chunk, or `None` at the end.
    fn next(&self, future: Py<PyAny>) -> Pending {
        let body = self.body.clone();
        start(self.interp, &self.tasks, future, async move {
            let mut slot = body.lock().await;
            let Some(stream) = slot.as_mut() else { return Ok(Reply::Bytes(None)) };
            let chunk = next_chunk(stream).await?;
            if chunk.is_none() {
                *slot = None;
            }
            Ok(Reply::Bytes(chunk))
        })
    }

    /// Resolves with the whole (rest of the) body; longer than `limit` is an error.
    #[pyo3(signature = (future, limit=None))]
    fn read_all(&self, future: Py<PyAny>, limit: Option<usize>) -> Pending {
        let body = self.body.clone();
        start(self.interp, &self.tasks, future, async move {
            let mut slot = body.lock().await;
            let Some(mut stream) = slot.take() else { return Ok(Reply::Bytes(Some(Bytes::new()))) };
            let mut all = BytesMut::new();
            while let Some(chunk) = next_chunk(&mut stream).await? {
                if limit.is_some_and(|l| all.len() + chunk.len() > l) {
                    return Err(ServiceError::Http(format!("the response body is longer than the limit of {} bytes", limit.unwrap_or(0))));
                }
                all.extend_from_slice(&chunk);
            }
            Ok(Reply::Bytes(Some(all.freeze())))
        })
    }

    /// Drops the unread body (unless a read is in progress; it ends with the reader).
    fn close(&self) {
        if let Ok(mut slot) = self.body.try_lock() {
            *slot = None;
        }
    }
}

/// `_covet_host.BodyWriter`: the Python end of a streamed request body.
#[pyclass(module = "_covet_host", frozen)]
pub struct BodyWriter {
    interp: &'static Interp,
    tasks: TaskSet,
    tx: Mutex<Option<mpsc::Sender<Result<Bytes, BoxError>>>>,
    rx: Mutex<Option<mpsc::Receiver<Result<Bytes, BoxError>>>>,
}

impl BodyWriter {
    /// A writer whose body is not yet attached to a call.
    pub fn new(interp: &'static Interp, tasks: TaskSet) -> BodyWriter {
        let (tx, rx) = mpsc::channel(1);
        BodyWriter { interp, tasks, tx: Mutex::new(Some(tx)), rx: Mutex::new(Some(rx)) }
    }

    /// The receiving end, for the call's body (once).
    pub fn take_stream(&self) -> Option<mpsc::Receiver<Result<Bytes, BoxError>>> {
        self.rx.lock().ok().and_then(|mut rx| rx.take())
    }

    fn sender(&self) -> Option<mpsc::Sender<Result<Bytes, BoxError>>> {
        self.tx.lock().ok().and_then(|tx| tx.clone())
    }
}

#[pymethods]
impl BodyWriter {
    /// Resolves once the client has room for `data`.
    fn send(&self, future: Py<PyAny>, data: Vec<u8>) -> Pending {
        let tx = self.sender();
        start(self.interp, &self.tasks, future, async move {
            let gone = || ServiceError::Http("the request body is no longer read (the request ended)".into());
            let tx = tx.ok_or_else(gone)?;
            tx.send(Ok(Bytes::from(data))).await.map_err(|_| gone())?;
            Ok(Reply::Unit)
        })
    }

    /// Ends the body.
    fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }

    /// Ends the body with an error: the request fails rather than sending a truncated body.
    fn fail(&self, reason: String) {
        if let Some(tx) = self.tx.lock().ok().and_then(|mut tx| tx.take()) {
            let _ = self.tasks.spawn(async move {
                let _ = tx.send(Err(reason.into())).await;
            });
        }
    }
}

/// A request body fed through a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }
}
