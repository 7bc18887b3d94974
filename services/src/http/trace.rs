//! Client spans of outbound calls (outbound HTTP here, upstream attempts in
//! `upstream/send.rs`): made in the async body of the call, so at its first
//! poll, inside the calling plugin phase's [`current`] scope, which makes
//! them children of the plugin's span.
//!
//! [`client_span`] is [`current::client_span`] with a lazily made name:
//! with tracing off (no tracer installed) it is one relaxed atomic load
//! (`tracer::enabled`), and no name is formatted; a name is formatted only
//! for a span that is recorded (or a new root the tracer may sample).
//!
//! A [`ClientSpan`] ends when the call reaches its response head
//! ([`ClientSpan::status`]) or fails ([`ClientSpan::fail`]); dropped before
//! either (the caller gave up), it ends as `cancelled`.

use std::borrow::Cow;

use covet_telemetry::{KeyValue, Span, SpanKind, current, tracer};
use http::HeaderMap;

/// A client span for a call made now (see the module docs); `None`: tracing is off.
#[inline]
pub(crate) fn client_span(name: impl FnOnce() -> String) -> Option<ClientSpan> {
    if !tracer::enabled() {
        return None;
    }
    start(name)
}

fn start(name: impl FnOnce() -> String) -> Option<ClientSpan> {
    let span = match current::get() {
        Some(parent) if parent.is_recording() => parent.child(name(), SpanKind::Client),
        // An unrecorded child keeps no name.
        Some(parent) => parent.child(Cow::Borrowed(""), SpanKind::Client),
        None => tracer::installed()?.start_root(name(), SpanKind::Client),
    };
    Some(ClientSpan(Some(span)))
}

/// A client span until the call's response head or failure.
#[derive(Debug)]
pub(crate) struct ClientSpan(Option<Span>);

impl ClientSpan {
    /// The span (until it ends).
    fn span(&self) -> Option<&Span> {
        self.0.as_ref()
    }

    /// Sets `traceparent` / `tracestate` on the outbound request (replacing
    /// the caller's): the receiver's parent is this span, sampled or not.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        if let Some(span) = self.span() {
            span.context().inject(headers);
        }
    }

    /// Sets attributes (when recorded).
    pub(crate) fn set(&self, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if let Some(span) = self.span().filter(|s| s.is_recording()) {
            for attribute in attributes() {
                span.set_attribute(attribute);
            }
        }
    }

    /// Ends the span at a response head with `status` (an error from 400 on,
    /// as OpenTelemetry's HTTP client conventions ask).
    pub(crate) fn status(mut self, status: u16) {
        let Some(span) = self.0.take() else { return };
        if span.is_recording() {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
            if status >= 400 {
                span.set_attribute(KeyValue::new("error.type", status.to_string()));
                span.set_error(format!("response status {status}"));
            }
        }
        span.end();
    }

    /// Ends the span as failed: `error.type` = `kind`, the status
    /// description = `description` (made only when recorded).
    pub(crate) fn fail(mut self, kind: &'static str, description: impl FnOnce() -> String) {
        let Some(span) = self.0.take() else { return };
        fail(&span, kind, description);
    }
}

fn fail(span: &Span, kind: &'static str, description: impl FnOnce() -> String) {
    if span.is_recording() {
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_error(description());
    }
    span.end();
}

impl Drop for ClientSpan {
    fn drop(&mut self) {
        if let Some(span) = self.0.take() {
            fail(&span, "cancelled", || "the caller stopped waiting before the response head".to_owned());
        }
    }
}

/// The attributes of an outbound HTTP request's client span: method,
/// `url.full` (without userinfo), `server.address`, `server.port`.
pub(crate) fn request_attributes<B>(request: &http::Request<B>) -> Vec<KeyValue> {
    let uri = request.uri();
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    let authority = match uri.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    vec![
        KeyValue::new("http.request.method", request.method().as_str().to_owned()),
        KeyValue::new("url.full", format!("{scheme}://{authority}{path}")),
        KeyValue::new("server.address", host.to_owned()),
        KeyValue::new("server.port", i64::from(port)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(attributes: &[KeyValue], key: &str) -> String {
        attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string()).unwrap_or_default()
    }

    #[test]
    fn url_full_leaves_out_userinfo_and_keeps_path_and_query() {
        let request = http::Request::post("https://user:secret@api.example.com:8443/v1/items?id=7").body(()).unwrap();
        let attributes = request_attributes(&request);
        assert_eq!(attribute(&attributes, "url.full"), "https://api.example.com:8443/v1/items?id=7");
        assert_eq!(attribute(&attributes, "server.address"), "api.example.com");
        assert_eq!(attribute(&attributes, "server.port"), "8443");
        assert_eq!(attribute(&attributes, "http.request.method"), "POST");
    }

    #[test]
    fn the_default_port_follows_the_scheme() {
        let request = http::Request::get("https://example.com").body(()).unwrap();
        let attributes = request_attributes(&request);
        assert_eq!(attribute(&attributes, "server.port"), "443");
        assert_eq!(attribute(&attributes, "url.full"), "https://example.com/");
    }
}
