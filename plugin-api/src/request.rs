//! [`Request`]: the plugin's handle on the in-flight request. Reads borrow
//! host memory; writes go straight to the host's request.

use abi_stable::std_types::{RString, Tuple2};

use crate::{BodyStream, Header, HttpVersion, ffi::RequestRef, span::AttrValue};

/// The request as a plugin sees it in every phase.
pub struct Request<'a> {
    ops: RequestRef<'a>,
}

impl<'a> Request<'a> {
    /// Wraps the host's view. Used by the export macro.
    pub fn from_ffi(ops: RequestRef<'a>) -> Request<'a> {
        Request { ops }
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.ops.method().as_str()
    }

    /// The request target: path plus `?query` when present.
    pub fn uri(&self) -> &str {
        self.ops.uri().as_str()
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        let uri = self.uri();
        uri.split_once('?').map_or(uri, |(path, _)| path)
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri().split_once('?').map(|(_, q)| q)
    }

    /// The HTTP version.
    pub fn version(&self) -> HttpVersion {
        self.ops.version()
    }

    /// The first value of a header (case-insensitive), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.ops.header(name.into()).into_option().map(|s| s.as_str())
    }

    /// Every header, in arrival order (copied).
    pub fn headers(&self) -> Vec<Header> {
        self.ops.headers().into_vec()
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

    /// The client's address, `ip:port`.
    pub fn client_addr(&self) -> &str {
        self.ops.client_addr().as_str()
    }

    /// The client's IP without the port.
    pub fn client_ip(&self) -> &str {
        let addr = self.client_addr();
        match addr.rsplit_once(':') {
            Some((ip, _)) => ip.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        }
    }

    /// A route parameter: `{name}` or the catch-all `{*name}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.ops.param(name.into()).into_option().map(|s| s.as_str())
    }

    /// The route pattern that matched.
    pub fn route(&self) -> &str {
        self.ops.route().as_str()
    }

    /// The buffered body (at most the listener's `max_body` bytes). Empty on
    /// a route that streams its body (every plugin declares `BodyMode::Stream`)
    /// and after [`Request::take_body`].
    pub fn body(&self) -> &[u8] {
        self.ops.body().as_slice()
    }

    /// Takes the body to read it chunk by chunk: as it arrives from the
    /// client on a streaming route, as one chunk (not copied) when it was
    /// buffered, empty when an earlier call took it. A body longer than
    /// `limits.max_body` breaks off with an error (the client gets a 413).
    pub fn take_body(&mut self) -> BodyStream {
        BodyStream::from_ffi(self.ops.take_body())
    }

    /// Replaces the body with a stream (e.g. `req.take_body().map(..)`):
    /// later plugins and the handler read this one.
    pub fn set_body(&mut self, body: BodyStream) {
        self.ops.set_body_stream(body.into_ffi());
    }

    /// A metadata value set by an earlier plugin, e.g. `jwt.sub`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.ops.metadata(key.into()).into_option().map(|s| s.as_str())
    }

    /// Sets a metadata value for later plugins. Keys are `plugin.field` by convention.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        self.ops.set_metadata(key.into(), value.into());
    }

    /// The request id (from `x-request-id`, or made by the host).
    pub fn request_id(&self) -> &str {
        self.ops.request_id().as_str()
    }

    /// Whether the span of this plugin call is recorded: attributes and
    /// events set now are exported (see [`crate::span`]).
    pub fn span_is_recording(&self) -> bool {
        self.ops.span_is_recording()
    }

    /// Sets an attribute on the span of this plugin call (a no-op when it is not recorded).
    pub fn set_span_attribute(&self, key: &str, value: impl Into<AttrValue>) {
        self.ops.span_set_attribute(key.into(), value.into());
    }

    /// Adds an event to the span of this plugin call (a no-op when it is not recorded).
    pub fn add_span_event(&self, name: &str, attributes: &[(&str, AttrValue)]) {
        let attributes = attributes.iter().map(|(k, v)| Tuple2(RString::from(*k), v.clone())).collect();
        self.ops.span_add_event(name.into(), attributes);
    }

    /// The `traceparent` of this plugin call's span; `None` when tracing is off.
    pub fn traceparent(&self) -> Option<String> {
        self.ops.traceparent().into_option().map(RString::into_string)
    }
}
