//! Conversions at the Python boundary. A request crosses as [`ReqData`]
//! (Rust data, built on the tokio thread without the GIL) and becomes the
//! positional arguments of `covet.Request` on a Python thread; a result
//! comes back as a tuple from the bridge and is read into [`PyResult_`]
//! there, so no Python object ever reaches a tokio thread.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pyo3::{
    prelude::*,
    types::{PyBytes, PyDict, PyTuple},
};
use serde_json::Value;

use crate::{exchange::Exchange, problem, runtime::Fault};

/// A request, as `covet.Request` takes it.
pub struct ReqData {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    params: Vec<(String, String)>,
    body: Bytes,
    metadata: Vec<(String, String)>,
    id: String,
    client: String,
}

impl ReqData {
    /// Copies what Python needs from the exchange (`params`: the app's own route parameters).
    pub fn new(ex: &Exchange, params: Vec<(String, String)>) -> ReqData {
        let headers = ex.headers.iter().filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())));
        ReqData {
            method: ex.method.as_str().to_owned(),
            path: ex.uri.path().to_owned(),
            query: ex.uri.query().unwrap_or("").to_owned(),
            headers: headers.collect(),
            params,
            body: ex.body.clone(),
            metadata: ex.metadata.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            id: ex.id().to_owned(),
            client: ex.client.to_string(),
        }
    }

    /// The arguments of `covet.Request(...)`, as a tuple.
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let params = PyDict::new(py);
        for (k, v) in &self.params {
            params.set_item(k, v)?;
        }
        let metadata = PyDict::new(py);
        for (k, v) in &self.metadata {
            metadata.set_item(k, v)?;
        }
        let body = PyBytes::new(py, &self.body);
        let args = (
            &self.method,
            &self.path,
            &self.query,
            self.headers.clone(),
            params,
            body,
            metadata,
            &self.id,
            &self.client,
        );
        args.into_pyobject(py)
    }
}

/// What Python answered, read on the Python thread.
#[derive(Debug)]
pub enum PyResult_ {
    /// A wire tuple.
    Ok(Wire),
    /// `covet.HTTPException` or `RequestValidationError`.
    Http { status: u16, headers: Vec<(String, String)>, message: Option<String>, details: String },
    /// Any other exception: its traceback.
    Error(String),
    /// The task was cancelled (after a timeout).
    Cancelled,
    /// A filter's `on_request` let the request through (metadata, replaced headers).
    Continue(Vec<(String, String)>, Option<Vec<(String, String)>>),
    /// A filter's `on_request` answered (metadata, replaced headers, response).
    Respond(Vec<(String, String)>, Option<Vec<(String, String)>>, Wire),
}

/// `(status, headers, body)`.
#[derive(Debug)]
pub struct Wire {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

fn body_of(value: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    match value.cast::<PyBytes>() {
        Ok(b) => Ok(Bytes::copy_from_slice(b.as_bytes())),
        Err(_) => Ok(Bytes::from(value.extract::<Vec<u8>>()?)),
    }
}

fn wire(t: &Bound<'_, PyAny>, at: usize) -> PyResult<Wire> {
    Ok(Wire { status: t.get_item(at)?.extract()?, headers: t.get_item(at + 1)?.extract()?, body: body_of(&t.get_item(at + 2)?)? })
}

/// Reads a bridge result that may be `None`.
pub fn read_optional(result: &Bound<'_, PyAny>) -> Option<PyResult_> {
    (!result.is_none()).then(|| read(result))
}

/// Reads a bridge result tuple.
pub fn read(result: &Bound<'_, PyAny>) -> PyResult_ {
    match read_inner(result) {
        Ok(r) => r,
        Err(e) => PyResult_::Error(format!("the plugin returned something covet cannot read: {e}")),
    }
}

fn read_inner(t: &Bound<'_, PyAny>) -> PyResult<PyResult_> {
    let tag: String = t.get_item(0)?.extract()?;
    Ok(match tag.as_str() {
        "ok" => PyResult_::Ok(wire(t, 1)?),
        "http" => PyResult_::Http {
            status: t.get_item(1)?.extract()?,
            headers: t.get_item(2)?.extract()?,
            message: t.get_item(3)?.extract()?,
            details: t.get_item(4)?.extract()?,
        },
        "error" => PyResult_::Error(t.get_item(1)?.extract()?),
        "cancelled" => PyResult_::Cancelled,
        "continue" => PyResult_::Continue(t.get_item(1)?.extract()?, t.get_item(2)?.extract()?),
        "respond" => PyResult_::Respond(t.get_item(1)?.extract()?, t.get_item(2)?.extract()?, wire(t, 3)?),
        other => PyResult_::Error(format!("unknown bridge result {other:?}")),
    })
}

/// A wire tuple as a host response.
pub fn response(w: Wire) -> Result<crate::exchange::HostResponse, Fault> {
    let status = StatusCode::from_u16(w.status).map_err(|_| Fault::Error(format!("invalid status code {}", w.status)))?;
    let mut resp = crate::exchange::HostResponse::new(status);
    resp.headers = headers(&w.headers).map_err(Fault::Error)?;
    resp.body = w.body;
    Ok(resp)
}

/// Parses header pairs.
pub fn headers(pairs: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(pairs.len() + 2);
    for (n, v) in pairs {
        let name = HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name {n:?}"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {name}"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// An `HTTPException` / `RequestValidationError` as a structured error response.
pub fn http_error(
    status: u16,
    headers: &[(String, String)],
    message: Option<String>,
    details: &str,
    request_id: &str,
) -> crate::exchange::HostResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("error");
    let code = match status.as_u16() {
        422 => "VALIDATION_ERROR".to_owned(),
        _ => reason.to_ascii_uppercase().replace([' ', '-'], "_").replace('\'', ""),
    };
    let details: Value = serde_json::from_str(details).unwrap_or(Value::Null);
    let mut resp = problem::error(status, &code, message.as_deref().unwrap_or(reason), details, request_id);
    if let Ok(extra) = self::headers(headers) {
        for (n, v) in &extra {
            resp.headers.insert(n.clone(), v.clone());
        }
    }
    resp
}

/// Logs an exception's traceback and turns it into a fault.
pub fn exception(plugin: &str, request_id: &str, traceback: &str) -> Fault {
    tracing::error!(target: "covet::python", plugin, request_id, "Python exception:\n{traceback}");
    let last = traceback.trim_end().lines().last().unwrap_or("exception").to_owned();
    Fault::Error(format!("the Python code raised {last}"))
}

/// A handler result as the response (or the fault) the pipeline wants.
pub fn handler_outcome(plugin: &str, request_id: &str, result: PyResult_) -> Result<crate::exchange::HostResponse, Fault> {
    match result {
        PyResult_::Ok(w) => response(w),
        PyResult_::Http { status, headers, message, details } => Ok(http_error(status, &headers, message, &details, request_id)),
        PyResult_::Error(tb) => Err(exception(plugin, request_id, &tb)),
        PyResult_::Cancelled => Err(Fault::Timeout("the Python task was cancelled".into())),
        other => Err(Fault::Error(format!("unexpected result from a handler: {other:?}"))),
    }
}
