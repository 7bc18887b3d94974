//! The hyper service: one HTTP request in, one response out. Applies the
//! header and body limits, answers `/_covet/*`, routes, runs the pipeline,
//! stamps `x-request-id`, and writes the access-log line.
//!
//! The request body is read whole (up to `limits.max_body`) before the
//! pipeline runs, except on a route that streams it (an ASGI app with
//! `request_body: stream`, or a chain whose every plugin declares
//! `BodyMode::Stream`): there it is left unread in [`Exchange::body_stream`]
//! and `body` is empty. A native plugin reading such a body past
//! `limits.max_body` gets an error, and the client a 413 (the response has
//! not started while the pipeline runs).
//!
//! An upgrade request (WebSocket, HTTP/2 extended CONNECT) gets the
//! client's bytes after the upgrade as its request body stream, and a 101
//! answer is tunnelled ([`crate::server::tunnel`]); an ordinary request pays
//! one header lookup for it.
//!
//! An HTTP/2 or HTTP/3 request without `host` gets one made from its
//! `:authority` before routing ([`present_authority`]), so plugins see the
//! same `host` whatever the protocol.
//!
//! With tracing on ([`crate::otel`]), the server span starts once the route
//! is known (its `trace_sample_ratio` applies; answers no route gives use
//! the default ratio), is the parent of the plugin spans, and ends when the
//! response head is ready, with the access-log line that carries its ids.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header, request::Parts};
use http_body_util::{BodyExt, Full, Limited};

use covet_telemetry::Span;

use crate::{
    access_log::{AccessLog, Entry},
    exchange::{BodyError, Exchange, HostResponse, RequestBody, StreamSource},
    manifest::Limits,
    metrics::RequestMetrics,
    otel::server_span,
    pipeline::{self, Timings},
    problem,
    registry::Registry,
    request_id::{self, RequestIds},
    router::Miss,
    routes::RouteTable,
    server::watchdog::ConnState,
};

/// The response body of every covet response: one buffer (with its exact
/// length, so hyper writes `content-length`), or a buffer followed by the
/// chunks of a [`crate::exchange::BodyStream`], flushed as they arrive.
///
/// On HTTP/1 and HTTP/2 it also tells the connection's [`ConnState`] while
/// a chunk it handed to hyper waits on the client (from handing it over
/// until hyper asks for the next one): the watchdog's `send_timeout`
/// (docs/hardening.md); and while the response is being sent at all (an
/// HTTP/1 client's half-close is held back from hyper until then,
/// [`crate::server::tracked_io`]). The watch lives in the body rather than in a
/// wrapper around the service's future, which cost a copy of that large
/// future per request.
pub struct Body {
    kind: BodyKind,
    watch: Option<SendWatch>,
}

/// A body's side of the connection's send tracking.
struct SendWatch {
    state: Arc<ConnState>,
    /// A chunk was handed over and hyper has not asked for the next one.
    waiting: bool,
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(watch) = self.watch.as_ref() {
            if watch.waiting {
                watch.state.send_done();
            }
            watch.state.response_ends();
        }
    }
}

enum BodyKind {
    Full(Full<Bytes>),
    Stream {
        first: Option<Bytes>,
        rx: tokio::sync::mpsc::UnboundedReceiver<crate::exchange::Chunk>,
        _guard: Arc<dyn Send + Sync>,
    },
    Plugin {
        first: Option<Bytes>,
        body: crate::runtime::native::body::FfiBody,
    },
}

impl Body {
    /// A body of one buffer.
    pub fn full(bytes: Bytes) -> Body {
        Body::of(BodyKind::Full(Full::new(bytes)))
    }

    fn of(kind: BodyKind) -> Body {
        Body { kind, watch: None }
    }

    /// This body, reporting to `state` while a chunk waits on the client.
    pub fn watched(mut self, state: Arc<ConnState>) -> Body {
        state.response_begins();
        self.watch = Some(SendWatch { state, waiting: false });
        self
    }

    /// `first`, then the chunks of `stream` (when there is one).
    pub fn streaming(first: Bytes, stream: Option<StreamSource>) -> Body {
        match stream {
            Some(StreamSource::Channel(rx, guard)) => Body::of(BodyKind::Stream { first: Some(first), rx, _guard: guard }),
            Some(StreamSource::Plugin(stream)) => Body::of(BodyKind::Plugin { first: Some(first), body: stream }),
            None => Body::full(first),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(watch) = this.watch.as_mut().filter(|w| w.waiting) {
            watch.waiting = false;
            watch.state.send_done();
        }
        let polled = this.kind.poll_frame(cx);
        if let (Some(watch), std::task::Poll::Ready(Some(Ok(_)))) = (this.watch.as_mut(), &polled) {
            watch.waiting = true;
            watch.state.send_waiting();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.kind.size_hint()
    }
}

impl BodyKind {
    fn poll_frame(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>> {
        use hyper::body::Body as _;
        use std::task::Poll;
        match self {
            BodyKind::Full(full) => std::pin::Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            BodyKind::Stream { first, rx, .. } => {
                if let Some(bytes) = first.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes))));
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes)))),
                    Poll::Ready(Some(Err(reason))) => Poll::Ready(Some(Err(reason.into()))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
            BodyKind::Plugin { first, body } => {
                if let Some(bytes) = first.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes))));
                }
                std::pin::Pin::new(body).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        use hyper::body::Body as _;
        match self {
            BodyKind::Full(full) => full.is_end_stream(),
            BodyKind::Stream { .. } | BodyKind::Plugin { .. } => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        use hyper::body::Body as _;
        match self {
            BodyKind::Full(full) => full.size_hint(),
            BodyKind::Stream { .. } => hyper::body::SizeHint::default(),
            BodyKind::Plugin { first, body } => {
                let first = first.as_ref().map_or(0, |b| b.len() as u64);
                body.size_hint().exact().map_or_else(Default::default, |n| hyper::body::SizeHint::with_exact(n + first))
            }
        }
    }
}

/// State shared by every connection of the host.
pub struct Shared {
    /// The live route table.
    pub routes: ArcSwap<RouteTable>,
    /// Plugin slots.
    pub registry: Registry,
    /// Request limits.
    pub limits: Limits,
    /// The access log, when the manifest turns it on.
    pub access_log: Option<AccessLog>,
    /// Set once every plugin has initialised.
    pub ready: AtomicBool,
    /// Request id source.
    pub ids: RequestIds,
    /// Request counters and latency.
    pub metrics: RequestMetrics,
}

impl Shared {
    /// Installs the route table with the slots' current instances, after a
    /// swap, reload or retirement changed them; returns the table it
    /// replaced (its instances are released when it drops).
    pub fn refresh_routes(&self) -> Arc<RouteTable> {
        self.routes.rcu(|table| Arc::new(table.refreshed()))
    }
}

/// What the service knows about the connection a request came on.
pub struct ConnInfo {
    /// `ip:port` of the client.
    pub client: Arc<str>,
    /// Activity tracking for the connection's timeouts.
    pub state: Arc<ConnState>,
    /// What the TLS handshake established (TLS and HTTP/3 connections).
    pub tls: Option<Arc<crate::server::tls::identity::ConnTls>>,
    /// The connection's place under `max_connections` (TCP connections):
    /// held here, it lasts as long as the connection or a tunnel made of it.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The runtime of the thread the connection's IO is bound to (io_uring):
    /// a tunnel made of the connection runs there. `None`: any runtime.
    pub home: Option<tokio::runtime::Handle>,
}


/// Serves one request. Generic over the request body: hyper's
/// on HTTP/1 and HTTP/2 (`hyper::body::Incoming`), a buffered body on HTTP/3 ([`crate::server::h3`]).
///
/// The future is boxed: it is large (~3 KB, the chain's state), and hyper
/// moves a request's future into its connection state, copying it each
/// time (up to four copies were seen per request); a box moves as a pointer.
pub fn serve<B>(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> std::pin::Pin<Box<impl Future<Output = Result<Response<Body>, Infallible>> + Send + use<B>>>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    Box::pin(serve_request(shared, conn, req))
}

async fn serve_request<B>(shared: Arc<Shared>, conn: Arc<ConnInfo>, mut req: Request<B>) -> Result<Response<Body>, Infallible>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let _in_flight = conn.state.begin_request();
    let (upgrade, tunnel_body) = if crate::server::tunnel::requested(&req) {
        let (pending, body) = crate::server::tunnel::begin(&mut req);
        (Some(pending), Some(body))
    } else {
        (None, None)
    };
    let started = Instant::now();
    let id = shared.ids.for_request(req.headers());
    let request_id = request_id::as_str(&id);
    let (parts, body) = req.into_parts();
    let log = shared.access_log.as_ref().map(|_| (parts.method.clone(), parts.uri.path().to_string()));
    let mut timings: Timings = log.as_ref().map(|_| Vec::new());
    let head = parts.method == Method::HEAD;
    let http1 = parts.version <= http::Version::HTTP_11;
    // HTTP/1 and HTTP/2 responses report a send waiting on the client (send_timeout).
    let watch = (parts.version <= http::Version::HTTP_2).then(|| conn.state.clone());
    let mut upstream = None; // the access log's metadata fields: upstream, cache (set only when it is on)
    let mut span = None; // the server span (tracing on)
    let out = (&mut timings, &mut upstream, &mut span);
    let (mut resp, route) = dispatch(&shared, &conn, parts, body, tunnel_body, &id, out).await;
    if let Some(upgrade) = upgrade {
        upgrade.accept(&mut resp, &conn, shared.limits.idle_timeout);
    }
    if !http1 {
        resp.headers.remove(header::CONNECTION);
    }
    let elapsed = started.elapsed();
    shared.metrics.record(resp.status.as_u16(), elapsed);
    if let Some(span) = &span {
        crate::otel::server_span::finish(span, resp.status);
    }
    if let (Some(access), Some((method, path))) = (&shared.access_log, log) {
        access.record(&Entry {
            method: method.as_str(),
            path: &path,
            route: route.as_deref(),
            status: resp.status.as_u16(),
            latency_us: elapsed.as_micros() as u64,
            timings: &timings,
            request_id,
            client: &conn.client,
            tags: upstream.as_ref(),
            trace: span.as_ref().map(Span::context).as_ref(),
        });
    }
    let mut out = finish(resp, id, head, watch);
    if let Some(alt_svc) = conn.tls.as_ref().and_then(|tls| tls.alt_svc.clone()) {
        out.headers_mut().insert(header::ALT_SVC, alt_svc);
    }
    Ok(out)
}

async fn dispatch<B>(
    shared: &Shared,
    conn: &ConnInfo,
    mut parts: Parts,
    body: B,
    tunnel: Option<Box<RequestBody>>,
    id: &HeaderValue,
    (timings, upstream, span): (&mut Timings, &mut Option<crate::access_log::Tags>, &mut Option<Span>),
) -> (HostResponse, Option<Arc<str>>)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let request_id = request_id::as_str(id);
    if let Some(resp) = crate::server::framing::check(&parts, &conn.state, &shared.limits, request_id) {
        return (unrouted(resp, span, &parts, conn, request_id), None);
    }
    if let Some(rest) = parts.uri.path().strip_prefix("/_covet/") {
        let resp = health(shared, rest, &parts.method, request_id);
        return (unrouted(resp, span, &parts, conn, request_id), None);
    }
    if let Some(resp) = check_headers(&parts.headers, &shared.limits, request_id) {
        return (unrouted(resp, span, &parts, conn, request_id), None);
    }
    if parts.version >= http::Version::HTTP_2 {
        present_authority(&mut parts);
    }
    let table = shared.routes.load_full();
    let found = match table.router.lookup(&parts.method, parts.uri.path()) {
        Ok(found) => found,
        Err(Miss::NotFound) => {
            let resp = problem::not_found(parts.uri.path(), request_id);
            return (unrouted(resp, span, &parts, conn, request_id), None);
        }
        Err(Miss::MethodNotAllowed(allowed)) => {
            let resp = problem::method_not_allowed(parts.method.as_str(), &allowed, request_id);
            return (unrouted(resp, span, &parts, conn, request_id), None);
        }
    };
    let entry = &table.entries[found.route];
    let route = Some(entry.pattern.clone());
    let route_ratio = Some((&*entry.pattern, entry.trace_ratio));
    *span = server_span::start_installed(&parts, span_conn(conn), route_ratio, request_id);
    let Some(live) = table.live(found.route) else {
        return (problem::not_ready(request_id), route);
    };
    let max = shared.limits.max_body;
    let mut body_stream = None;
    let mut over_limit: Option<crate::runtime::native::body::OverLimit> = None;
    let streams = entry.stream_body || live.streams_body();
    // Boxed: reading a body is the rarer path, and keeping its state out of
    // this future keeps every request's future small.
    let body = if let Some(tunnel) = tunnel {
        body_stream = Some(tunnel); // the client's bytes after the upgrade
        Ok(Bytes::new())
    } else if body.is_end_stream() {
        Ok(Bytes::new())
    } else if streams && declared_over(&parts.headers, max) {
        Err(problem::closing(problem::payload_too_large(max, request_id)))
    } else if streams {
        let over = over_limit.insert(Arc::default()).clone();
        body_stream = Some(Box::new(RequestBody::limited(body, max, over)));
        Ok(Bytes::new())
    } else {
        Box::pin(read_body(body, &parts.headers, max, request_id)).await
    };
    let body = match body {
        Ok(body) => body,
        Err(resp) => return (resp, route),
    };
    let mut ex = Exchange::from_parts(parts, conn.client.clone(), entry.pattern.clone(), found.params, body, body_stream, id.clone());
    if let Some(tls) = &conn.tls {
        tls.metadata.iter().for_each(|(key, value)| ex.metadata.set(key, value));
    }
    let resp = pipeline::run(&live, &mut ex, timings, span.as_ref()).await;
    if timings.is_some() {
        *upstream = crate::access_log::Tags::from_metadata(&ex.metadata);
    }
    crate::exchange::recycle_headers(std::mem::take(&mut ex.headers));
    match over_limit {
        Some(over) if over.load(Ordering::Acquire) => (problem::closing(problem::payload_too_large(max, request_id)), route),
        _ => (resp, route),
    }
}

/// An answer no route gave (health, 404, 405, refused head): with tracing
/// on, it gets a server span with the default ratio.
#[cold]
fn unrouted(resp: HostResponse, span: &mut Option<Span>, parts: &Parts, conn: &ConnInfo, request_id: &str) -> HostResponse {
    *span = server_span::start_installed(parts, span_conn(conn), None, request_id);
    resp
}

fn span_conn(conn: &ConnInfo) -> server_span::Conn<'_> {
    server_span::Conn { client: &conn.client, tls: conn.tls.is_some() }
}

/// HTTP/2 and HTTP/3 carry the authority in the URI (`:authority`), not in
/// a `host` header; plugins read `host` (and forward it: the proxy's
/// `host: preserve`, `X-Forwarded-Host`, `Forwarded host=`), so the host
/// presents it as one, as RFC 9113 §8.3.1 asks of an intermediary. A `host`
/// the client sent is left alone; userinfo (forbidden there) is dropped.
#[doc(hidden)] // public for the fuzz targets (fuzz/)
pub fn present_authority(parts: &mut Parts) {
    if parts.headers.contains_key(header::HOST) {
        return;
    }
    let Some(authority) = parts.uri.authority() else { return };
    let host = authority.as_str().rsplit('@').next().unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(host) {
        parts.headers.insert(header::HOST, value);
    }
}

fn health(shared: &Shared, what: &str, method: &Method, request_id: &str) -> HostResponse {
    if method != Method::GET && method != Method::HEAD {
        return problem::method_not_allowed(method.as_str(), &[Method::GET, Method::HEAD], request_id);
    }
    match what {
        "health" => json_ok(r#"{"status":"serving"}"#),
        "ready" if shared.ready.load(Ordering::Acquire) => json_ok(r#"{"status":"ready"}"#),
        "ready" => problem::not_ready(request_id),
        _ => problem::not_found(&format!("/_covet/{what}"), request_id),
    }
}

fn json_ok(body: &'static str) -> HostResponse {
    let mut resp = HostResponse::new(http::StatusCode::OK);
    resp.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.body = Bytes::from_static(body.as_bytes());
    resp
}

/// The header count and size limits (`limits.max_headers`, `max_header_bytes`).
#[doc(hidden)] // public for the fuzz targets (fuzz/)
pub fn check_headers(headers: &HeaderMap, limits: &Limits, request_id: &str) -> Option<HostResponse> {
    if headers.len() > limits.max_headers {
        return Some(problem::closing(problem::headers_too_large("header count", limits.max_headers, request_id)));
    }
    let bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if bytes > limits.max_header_bytes {
        return Some(problem::closing(problem::headers_too_large("header bytes", limits.max_header_bytes, request_id)));
    }
    None
}

async fn read_body<B>(body: B, headers: &HeaderMap, max: u64, request_id: &str) -> Result<Bytes, HostResponse>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BodyError>,
{
    if declared_over(headers, max) {
        return Err(problem::closing(problem::payload_too_large(max, request_id)));
    }
    // Body errors end the connection: the rest of the body is unread or unframed.
    match Limited::new(body, max as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(problem::closing(problem::payload_too_large(max, request_id))),
        Err(e) if e.is::<crate::server::body::BodyTimedOut>() => Err(problem::closing(problem::body_timeout(&e.to_string(), request_id))),
        Err(e) => Err(problem::closing(problem::bad_body(&e.to_string(), request_id))),
    }
}

/// Whether the body's declared `content-length` is over the limit (413 at once).
fn declared_over(headers: &HeaderMap, max: u64) -> bool {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    declared.is_some_and(|len| len > max)
}

/// A streamed answer to HEAD: hyper sends no body for HEAD, so a
/// `content-length` the plugin set (say the proxy relaying its upstream's)
/// goes out as set; without one, a stream of known exact length announces
/// it, as hyper would for the same answer to GET. The stream is dropped
/// unread.
fn head_length(status: http::StatusCode, headers: &mut HeaderMap, streamed: Body) {
    use hyper::body::Body as _;
    use http::StatusCode;
    let bodiless = status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if bodiless || headers.contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(len) = streamed.size_hint().exact() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

fn finish(resp: HostResponse, id: HeaderValue, head: bool, watch: Option<Arc<ConnState>>) -> Response<Body> {
    let HostResponse { status, mut headers, body, stream } = resp;
    headers.insert(request_id::HEADER, id);
    let body = match stream.and_then(|s| s.take()) {
        Some(source) if head => {
            head_length(status, &mut headers, Body::streaming(body, Some(source)));
            Body::full(Bytes::new())
        }
        Some(source) => {
            headers.remove(header::CONTENT_LENGTH);
            Body::streaming(body, Some(source))
        }
        None if head => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            Body::full(Bytes::new())
        }
        None => Body::full(body),
    };
    let body = match watch {
        Some(state) => body.watched(state),
        None => body,
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut req = Request::builder().uri(uri).version(http::Version::HTTP_2);
        if let Some(host) = host {
            req = req.header(header::HOST, host);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_authority_becomes_host_unless_one_was_sent() {
        let mut p = parts("https://api.example:8443/x", None);
        present_authority(&mut p);
        assert_eq!(p.headers[header::HOST], "api.example:8443");
        let mut p = parts("https://user@api.example/x", None);
        present_authority(&mut p);
        assert_eq!(p.headers[header::HOST], "api.example", "no userinfo");
        let mut p = parts("https://api.example/x", Some("other.example"));
        present_authority(&mut p);
        assert_eq!(p.headers.get_all(header::HOST).iter().collect::<Vec<_>>(), ["other.example"]);
        let mut p = parts("/x", None);
        present_authority(&mut p);
        assert!(!p.headers.contains_key(header::HOST));
    }
}
