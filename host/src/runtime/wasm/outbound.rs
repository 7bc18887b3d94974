//! A WASM plugin's outbound HTTP (`wasi:http/outgoing-handler`), sent
//! through the host's outbound HTTP service: the plugin's
//! [`covet_services::http::Outbound`], so a component's requests share the
//! host's connection pools per origin, speak HTTP/2 where ALPN offers it,
//! trust the custom CA and present the client certificate of
//! `services.http`, obey its timeouts and count in the plugin's counters.
//!
//! **Grants.** The service checks the plugin's `capabilities.outbound_http`
//! (denied by default). A denied request fails in the guest with wasi:http's
//! `HTTP-request-denied`; the host logs why, naming the plugin, the host and
//! the manifest key that would allow it.
//!
//! **Timeouts.** wasi:http's per-request options map onto the service's
//! limits, and can only shorten them: `first-byte-timeout` (plus
//! `connect-timeout` when both are set, as the service's request timeout
//! covers connecting too) shortens `services.http.request_timeout`;
//! `between-bytes-timeout` adds a limit on each wait for the next response
//! chunk besides `services.http.body_idle_timeout`. `connect-timeout` alone
//! cannot shorten `services.http.connect_timeout` (the pool connects, and may
//! not connect at all).
//!
//! **Tracing.** wasmtime spawns the future [`Hooks::send_request`] returns
//! on a task of its own, where the pipeline's current span
//! (`covet_telemetry::current`) is not set. So the hook takes the span of
//! the plugin call in progress synchronously (the store's, see
//! `Ctx::set_span`; it is also right while a wasi:http component streams
//! its body after the head, outside the phase) and runs the send inside
//! `current::scope` of it. The client span itself is made by the host's HTTP
//! service, as for a native plugin's `host.http()` (one path, one span): a
//! child of the plugin span, named after the method, injected into the
//! request as `traceparent`, ended at the response head or the failure.
//! With tracing off there is no span and nothing is injected.
//!
//! **Streaming.** The request body streams from the guest to the server as
//! the guest writes it, the response body from the server to the guest as it
//! arrives. The pooled client drives each connection itself, so the
//! "connection driver" handed back to wasmtime is already finished.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use covet_services::{
    ServiceError,
    http::{BoxError, Outbound, RequestBody, ResponseBody},
};
use covet_telemetry::{Span, current};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// What the guest waits on after the response head (nothing, here).
type Driver = Box<dyn Future<Output = Result<(), Error>> + Send>;

type SendResult = wasmtime_wasi_http::Result<(http::Response<WasiBody>, Driver)>;

/// The wasi:http hooks of one store: its plugin's outbound HTTP service.
pub struct Hooks {
    service: Outbound,
    /// The span of the plugin call in progress (see `Ctx::span`).
    pub span: Option<Span>,
}

impl Hooks {
    /// Hooks sending through `service` (the plugin's grants and counters).
    pub fn new(service: Outbound) -> Hooks {
        Hooks { service, span: None }
    }
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Driver,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let send = send(self.service.clone(), request, options);
        match self.span.clone().or_else(current::get) {
            Some(parent) => Box::new(current::scope(parent, send)),
            None => Box::new(send),
        }
    }
}

/// Sends `request` through `service`; resolves at the response head.
async fn send(service: Outbound, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> SendResult {
    let options = options.unwrap_or_default();
    let (parts, body) = request.into_parts();
    let body: RequestBody = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
    let uri = parts.uri.clone();
    let response = match service.send(http::Request::from_parts(parts, body), head_timeout(&options)).await {
        Ok(response) => response,
        Err(error) => {
            match &error {
                ServiceError::Denied { .. } => tracing::warn!(%uri, "{error}"),
                _ => tracing::debug!(%uri, "outbound request failed: {error}"),
            }
            return Err(request_error(&error));
        }
    };
    let between = options.between_bytes_timeout;
    let response = response.map(|body| match between {
        Some(limit) => TimedBody::new(body, limit).boxed_unsync(),
        None => body.map_err(|e| body_error(&e)).boxed_unsync(),
    });
    Ok((response, Box::new(std::future::ready(Ok(())))))
}

/// The limit on reaching the response head that the guest asked for, if any.
fn head_timeout(options: &RequestOptions) -> Option<Duration> {
    options.first_byte_timeout.map(|first| first + options.connect_timeout.unwrap_or_default())
}

/// The wasi:http error code for a request that failed before its response head.
fn request_error(error: &ServiceError) -> Error {
    match error {
        ServiceError::Denied { .. } => Error::HttpRequestDenied,
        ServiceError::Timeout { what, .. } if what.starts_with("connect") => Error::ConnectionTimeout,
        ServiceError::Timeout { .. } => Error::HttpResponseTimeout,
        ServiceError::Connect { reason, .. } if reason.contains("dns") || reason.contains("lookup") => {
            Error::DnsError { rcode: None, info_code: None }
        }
        ServiceError::Connect { .. } => Error::ConnectionRefused,
        ServiceError::Tls(text) if text.contains("certificate") => Error::TlsCertificateError,
        ServiceError::Tls(_) => Error::TlsProtocolError,
        ServiceError::Http(text) if text.starts_with("URL") => Error::HttpRequestUriInvalid,
        ServiceError::Http(_) => Error::HttpProtocolError,
        other => Error::InternalError(Some(other.to_string())),
    }
}

/// The wasi:http error code for a response body that failed.
fn body_error(error: &ServiceError) -> Error {
    match error {
        ServiceError::Timeout { .. } => Error::ConnectionReadTimeout,
        ServiceError::Http(_) => Error::HttpResponseIncomplete,
        other => Error::InternalError(Some(other.to_string())),
    }
}

/// A response body that also fails when no chunk arrives within the guest's
/// `between-bytes-timeout`.
struct TimedBody {
    inner: ResponseBody,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: ResponseBody, limit: Duration) -> TimedBody {
        let limit = limit.max(Duration::from_nanos(1));
        TimedBody { inner, limit, timer: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer.as_mut().reset(tokio::time::Instant::now() + this.limit);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(body_error(&e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_timeouts_shorten_the_head_wait_only_with_a_first_byte_limit() {
        let secs = Duration::from_secs;
        let options = |c, f| RequestOptions { connect_timeout: c, first_byte_timeout: f, between_bytes_timeout: None };
        assert_eq!(head_timeout(&options(None, None)), None);
        assert_eq!(head_timeout(&options(Some(secs(2)), None)), None, "connecting is the pool's");
        assert_eq!(head_timeout(&options(None, Some(secs(3)))), Some(secs(3)));
        assert_eq!(head_timeout(&options(Some(secs(2)), Some(secs(3)))), Some(secs(5)));
    }

    #[test]
    fn service_errors_become_the_wasi_http_codes() {
        let denied = ServiceError::Denied { plugin: "p".into(), what: "x".into(), grant: "outbound_http" };
        assert!(matches!(request_error(&denied), Error::HttpRequestDenied));
        let connect = ServiceError::Timeout { what: "connect to a:80".into(), after: Duration::from_secs(1) };
        assert!(matches!(request_error(&connect), Error::ConnectionTimeout));
        let head = ServiceError::Timeout { what: "HTTP request to a:80".into(), after: Duration::from_secs(1) };
        assert!(matches!(request_error(&head), Error::HttpResponseTimeout));
        let refused = ServiceError::Connect { target: "a:80".into(), reason: "Connection refused".into() };
        assert!(matches!(request_error(&refused), Error::ConnectionRefused));
        let url = ServiceError::Http("URL '/x' must be absolute, with scheme http or https".into());
        assert!(matches!(request_error(&url), Error::HttpRequestUriInvalid));
        assert!(matches!(body_error(&head), Error::ConnectionReadTimeout));
    }
}
