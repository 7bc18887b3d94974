//! Responses: the owned [`Response`] a handler or short-circuiting filter
//! returns, the [`Flow`] of `on_request`, and [`ResponseMut`], the view of the
//! outgoing response that `on_response` edits.

use abi_stable::{
    StableAbi,
    external_types::RMutex,
    std_types::{RArc, RNone, ROption, RSome, RString, RVec},
};

use crate::{Body, BodyStream, Header, Headers, ffi::{BodyStreamBox, ResponseRef}};

/// An HTTP response made by a plugin. Headers and body are shared by
/// reference count: cloning a prebuilt response copies nothing.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Headers,
    /// Body bytes (the host sets `content-length`); with `stream`, the bytes sent first.
    pub body: Body,
    /// The rest of the body as a stream (see [`Response::stream`]).
    pub stream: StreamSlot,
}

/// A response's streaming body, if it has one. Clones share it: whoever
/// takes it first (the host, writing the response) reads it.
#[repr(transparent)]
#[derive(StableAbi, Clone, Default)]
pub struct StreamSlot(ROption<RArc<RMutex<ROption<BodyStreamBox>>>>);

impl StreamSlot {
    /// A slot holding `body`.
    pub fn new(body: BodyStream) -> StreamSlot {
        StreamSlot(RSome(RArc::new(RMutex::new(RSome(body.into_ffi())))))
    }

    /// Takes the stream out (once; later takes and clones see none).
    pub fn take(&self) -> Option<BodyStream> {
        let RSome(slot) = &self.0 else { return None };
        let taken = std::mem::replace(&mut *slot.lock(), RNone);
        taken.into_option().map(BodyStream::from_ffi)
    }

    /// Whether a stream was set (and maybe taken since).
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl PartialEq for StreamSlot {
    fn eq(&self, other: &StreamSlot) -> bool {
        match (&self.0, &other.0) {
            (RSome(a), RSome(b)) => std::ptr::eq(&**a, &**b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }
}

impl Eq for StreamSlot {}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() { "StreamSlot(set)" } else { "StreamSlot(none)" })
    }
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Headers::default(), body: Body::default(), stream: StreamSlot::default() }
    }

    /// A response whose body is `body`, written to the client as it is read
    /// (make one with [`BodyStream::channel`] or [`BodyStream::map`]). When
    /// the stream knows its exact length the host sends `content-length`,
    /// otherwise the body is chunked (HTTP/1.1) or framed (HTTP/2).
    pub fn stream(status: u16, body: BodyStream) -> Response {
        Response { stream: StreamSlot::new(body), ..Response::new(status) }
    }

    /// Takes the streaming body out of this response, if it has one.
    pub fn take_stream(&mut self) -> Option<BodyStream> {
        self.stream.take()
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into().into_bytes())
    }

    /// An `application/json` response from already-serialised JSON.
    pub fn json(status: u16, json: impl Into<String>) -> Response {
        Response::new(status)
            .with_header("content-type", "application/json")
            .with_body(json.into().into_bytes())
    }

    /// A structured error in the shape the host uses for its own errors, so
    /// clients see one format whoever refused the request:
    /// `{"error": {"code", "message", "details", "request_id", "timestamp"}}`
    /// with `content-type: application/json`. Pass `Value::Null` for no details.
    pub fn error(status: u16, code: &str, message: &str, details: serde_json::Value, request_id: &str) -> Response {
        let timestamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let body = serde_json::json!({
            "error": {
                "code": code,
                "message": message,
                "details": details,
                "request_id": request_id,
                "timestamp": timestamp,
            }
        });
        Response::json(status, body.to_string())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = Body::from(body.into());
        self
    }

    /// The first value of a header (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.name.as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_has_the_host_shape() {
        let resp = Response::error(429, "RATE_LIMITED", "slow down", serde_json::json!({"n": 1}), "r-1");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "RATE_LIMITED");
        assert_eq!(body["error"]["details"]["n"], 1);
        assert_eq!(body["error"]["request_id"], "r-1");
        assert!(body["error"]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

/// What `on_request` decides.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next filter, then the handler.
    Continue,
    /// Stop here and send this response (filters already passed still run `on_response`).
    Respond(Response),
    /// Send this response now (as [`Flow::Respond`]), and run the rest of the
    /// chain in the background for a copy of the request: the later filters'
    /// `on_request`, the handler, their `on_response`, and then this filter's
    /// own `on_response`, which sees the fresh response; the host then reads
    /// that response's body to the end and drops it. It is how a cache serves
    /// a stale entry at once and refreshes it (`stale-while-revalidate`).
    ///
    /// The copy has the request's method, target, headers and metadata (as
    /// this filter left them) and no body. The host runs it as
    /// [`Flow::Respond`] (nothing in the background) when the request has a
    /// body, or when too many background runs are in flight
    /// (`limits.background_max`). Filters before this one never see the
    /// background response. Native plugins only (ABI 0.4).
    RespondAndContinue(Response),
}

/// The outgoing response as `on_response` sees it: edits go straight to the host's response.
pub struct ResponseMut<'a> {
    ops: ResponseRef<'a>,
}

impl<'a> ResponseMut<'a> {
    /// Wraps the host's view. Used by the export macro.
    pub fn from_ffi(ops: ResponseRef<'a>) -> ResponseMut<'a> {
        ResponseMut { ops }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.ops.status()
    }

    /// Changes the status code; refused outside 100..=999.
    pub fn set_status(&mut self, status: u16) -> Result<(), String> {
        self.ops.set_status(status).into_result().map_err(RString::into_string)
    }

    /// The first value of a header, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.ops.header(name.into()).into_option().map(|s| s.as_str())
    }

    /// Replaces a header; refused when the name or value is not valid HTTP.
    pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.ops.set_header(name.into(), value.into()).into_result().map_err(RString::into_string)
    }

    /// Adds one more value for a header.
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.ops.append_header(name.into(), value.into()).into_result().map_err(RString::into_string)
    }

    /// Removes a header.
    pub fn remove_header(&mut self, name: &str) {
        self.ops.remove_header(name.into());
    }

    /// Every header, in order (copied; values that are not UTF-8 are skipped).
    pub fn headers(&self) -> Vec<Header> {
        self.ops.headers().into_vec()
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        self.ops.body().as_slice()
    }

    /// Replaces the body.
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.ops.set_body(RVec::from(body));
    }

    /// Takes the body (buffered or streaming) to read or transform it chunk
    /// by chunk; the response has an empty body until one is set.
    pub fn take_body(&mut self) -> BodyStream {
        BodyStream::from_ffi(self.ops.take_body())
    }

    /// Replaces the body with a stream, written to the client as it is read.
    pub fn set_body_stream(&mut self, body: BodyStream) {
        self.ops.set_body_stream(body.into_ffi());
    }
}
