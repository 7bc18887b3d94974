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
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header, request::Parts};
use http_body_util::{BodyExt, Limited};

use covet_telemetry::Span;

use crate::{
    access_log::{AccessLog, Entry},
    exchange::{BodyError, Exchange, HostResponse, RequestBody},
    manifest::Limits,
    metrics::RequestMetrics,
    otel::server_span,
    pipeline::{self, Timings},
    problem,
    registry::Registry,
    request_id::{self, RequestIds},
    router::Miss,
    routes::RouteTable,
    server::watchdog::{ConnState, InFlight},
};

mod body;

pub use body::Body;

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
/// What needs no waiting is done here, before the future exists ([`begin`]):
/// the head checks, routing, the exchange. The future then holds only what
/// outlives a wait (the request's state and the chain's), 1.7 KB where one
/// `async fn` doing it all held 3.4 KB (parts, body and request were each
/// stored twice: as arguments and as locals). It is boxed: hyper moves a
/// request's future into its connection state, and a box moves as a pointer.
pub fn serve<B>(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> std::pin::Pin<Box<impl Future<Output = Result<Response<Body>, Infallible>> + Send + use<B>>>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let begun = begin(&shared, &conn, req);
    Box::pin(complete(shared, conn, begun))
}

/// A request as far as it goes without waiting.
struct Begun<B> {
    /// Counts the request as in flight until the future ends (see [`complete`]).
    in_flight: InFlight,
    upgrade: Option<Box<crate::server::tunnel::Pending>>,
    /// When the request began ([`crate::clock::now_ns`]).
    started: u64,
    id: HeaderValue,
    /// Method and path for the access log (when it is on).
    log: Option<(Method, String)>,
    head: bool,
    http1: bool,
    /// HTTP/1 and HTTP/2 responses report a send waiting on the client (send_timeout).
    watch: Option<Arc<ConnState>>,
    /// The server span (tracing on).
    span: Option<Span>,
    /// The matched route's pattern.
    route: Option<Arc<str>>,
    next: Next<B>,
}

/// What is left to do.
#[expect(clippy::large_enum_variant, reason = "boxing the chain cost more in allocator churn than the copies it saves")]
enum Next<B> {
    /// Nothing: the answer is known and no plugin runs (a refused head,
    /// health, 404, 405, a declared body over the limit, not ready).
    Answer(HostResponse),
    /// The route's chain.
    Chain(ChainRun<B>),
}

/// A routed request waiting for its chain.
struct ChainRun<B> {
    table: Arc<RouteTable>,
    index: usize,
    ex: Exchange,
    /// A body to read whole into `ex.body` before the chain runs.
    unread: Option<B>,
    /// Raised when a plugin reading the streamed body went past the limit.
    over_limit: Option<crate::runtime::native::body::OverLimit>,
}

fn begin<B>(shared: &Shared, conn: &ConnInfo, mut req: Request<B>) -> Begun<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let in_flight = conn.state.begin_request();
    let (upgrade, tunnel_body) = if crate::server::tunnel::requested(&req) {
        let (pending, body) = crate::server::tunnel::begin(&mut req);
        (Some(pending), Some(body))
    } else {
        (None, None)
    };
    let started = crate::clock::now_ns();
    let id = shared.ids.for_request(req.headers());
    let (parts, body) = req.into_parts();
    let log = shared.access_log.as_ref().map(|_| (parts.method.clone(), parts.uri.path().to_string()));
    let (head, http1) = (parts.method == Method::HEAD, parts.version <= http::Version::HTTP_11);
    let watch = (parts.version <= http::Version::HTTP_2).then(|| conn.state.clone());
    let (mut span, mut route) = (None, None);
    let next = dispatch(shared, conn, parts, body, tunnel_body, &id, (&mut span, &mut route));
    Begun { in_flight, upgrade, started, id, log, head, http1, watch, span, route, next }
}

/// Checks the head, routes, and builds the exchange: an answer, or the chain to run.
fn dispatch<B>(
    shared: &Shared,
    conn: &ConnInfo,
    mut parts: Parts,
    body: B,
    tunnel: Option<Box<RequestBody>>,
    id: &HeaderValue,
    (span, route): (&mut Option<Span>, &mut Option<Arc<str>>),
) -> Next<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let request_id = request_id::as_str(id);
    if let Some(resp) = crate::server::framing::check(&parts, &conn.state, &shared.limits, request_id) {
        return Next::Answer(unrouted(resp, span, &parts, conn, request_id));
    }
    if let Some(rest) = parts.uri.path().strip_prefix("/_covet/") {
        let resp = health(shared, rest, &parts.method, request_id);
        return Next::Answer(unrouted(resp, span, &parts, conn, request_id));
    }
    if let Some(resp) = check_headers(&parts.headers, &shared.limits, request_id) {
        return Next::Answer(unrouted(resp, span, &parts, conn, request_id));
    }
    if parts.version >= http::Version::HTTP_2 {
        present_authority(&mut parts);
    }
    let table = shared.routes.load_full();
    let found = match table.router.lookup(&parts.method, parts.uri.path()) {
        Ok(found) => found,
        Err(Miss::NotFound) => {
            let resp = problem::not_found(parts.uri.path(), request_id);
            return Next::Answer(unrouted(resp, span, &parts, conn, request_id));
        }
        Err(Miss::MethodNotAllowed(allowed)) => {
            let resp = problem::method_not_allowed(parts.method.as_str(), &allowed, request_id);
            return Next::Answer(unrouted(resp, span, &parts, conn, request_id));
        }
    };
    let entry = &table.entries[found.route];
    *route = Some(entry.pattern.clone());
    *span = server_span::start_installed(&parts, span_conn(conn), Some((&*entry.pattern, entry.trace_ratio)), request_id);
    let Some(streams) = table.live(found.route).map(|live| entry.stream_body || live.streams_body()) else {
        return Next::Answer(problem::not_ready(request_id));
    };
    let max = shared.limits.max_body;
    let (mut unread, mut body_stream) = (None, None);
    let mut over_limit: Option<crate::runtime::native::body::OverLimit> = None;
    if let Some(tunnel) = tunnel {
        body_stream = Some(tunnel); // the client's bytes after the upgrade
    } else if body.is_end_stream() {
    } else if declared_over(&parts.headers, max) {
        return Next::Answer(problem::closing(problem::payload_too_large(max, request_id)));
    } else if streams {
        let over = over_limit.insert(Arc::default()).clone();
        body_stream = Some(Box::new(RequestBody::limited(body, max, over)));
    } else {
        unread = Some(body);
    }
    let pattern = entry.pattern.clone();
    let mut ex = Exchange::from_parts(parts, conn.client.clone(), pattern, found.params, Bytes::new(), body_stream, id.clone());
    if let Some(tls) = &conn.tls {
        tls.metadata.iter().for_each(|(key, value)| ex.metadata.set(key, value));
    }
    Next::Chain(ChainRun { table, index: found.route, ex, unread, over_limit })
}

/// The part that may wait: the body read, the chain; then the response's
/// metrics, access-log line and head. An `async` block rather than an
/// `async fn`: an `async fn` copies its arguments into locals, and `begun`
/// (~770 bytes) would be stored twice in the future; the block uses the
/// captured value in place.
#[expect(clippy::manual_async_fn, reason = "an async fn would store `begun` twice (see above)")]
fn complete<B>(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    mut begun: Begun<B>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    async move {
        let mut timings: Timings = begun.log.as_ref().map(|_| Vec::new());
        let mut upstream = None; // the access log's metadata fields: upstream, cache (set only when it is on)
        let request_id = request_id::as_str(&begun.id);
        let mut resp = match &mut begun.next {
            Next::Answer(resp) => std::mem::replace(resp, HostResponse::new(http::StatusCode::OK)),
            Next::Chain(run) => run_chain(&shared, run, (&mut timings, &mut upstream), begun.span.as_ref(), request_id).await,
        };
        if let Some(upgrade) = begun.upgrade.take() {
            upgrade.accept(&mut resp, &conn, shared.limits.idle_timeout);
        }
        if !begun.http1 {
            resp.headers.remove(header::CONNECTION);
        }
        let elapsed_ns = crate::clock::now_ns().saturating_sub(begun.started);
        shared.metrics.record_ns(resp.status.as_u16(), elapsed_ns);
        if let Some(span) = &begun.span {
            crate::otel::server_span::finish(span, resp.status);
        }
        if let (Some(access), Some((method, path))) = (&shared.access_log, &begun.log) {
            access.record(&Entry {
                method: method.as_str(),
                path,
                route: begun.route.as_deref(),
                status: resp.status.as_u16(),
                latency_us: elapsed_ns / 1_000,
                timings: &timings,
                request_id,
                client: &conn.client,
                tags: upstream.as_ref(),
                trace: begun.span.as_ref().map(Span::context).as_ref(),
            });
        }
        let mut out = finish(resp, begun.id.clone(), begun.head, begun.watch.take());
        if let Some(alt_svc) = conn.tls.as_ref().and_then(|tls| tls.alt_svc.clone()) {
            out.headers_mut().insert(header::ALT_SVC, alt_svc);
        }
        // The block captures only the fields of `begun` it names: without
        // this line the in-flight guard was dropped when the future was
        // made, and a half-closed client's slow request lost its answer
        // (tests/e2e/half_close.rs).
        drop(begun.in_flight);
        Ok(out)
    }
}

/// Reads a buffered body, then runs the chain on the exchange.
async fn run_chain<B>(
    shared: &Shared,
    run: &mut ChainRun<B>,
    (timings, upstream): (&mut Timings, &mut Option<crate::access_log::Tags>),
    span: Option<&Span>,
    request_id: &str,
) -> HostResponse
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BodyError>,
{
    let max = shared.limits.max_body;
    if let Some(body) = run.unread.take() {
        // Boxed: reading a body is the rarer path, and keeping its state out
        // of this future keeps every request's future small.
        match Box::pin(read_body(body, max, request_id)).await {
            Ok(bytes) => run.ex.body = bytes,
            Err(resp) => return resp,
        }
    }
    let Some(live) = run.table.live(run.index) else {
        return problem::not_ready(request_id);
    };
    let resp = pipeline::run(&live, &mut run.ex, timings, span).await;
    if timings.is_some() {
        *upstream = crate::access_log::Tags::from_metadata(&run.ex.metadata);
    }
    crate::exchange::recycle_headers(std::mem::take(&mut run.ex.headers));
    match &run.over_limit {
        Some(over) if over.load(Ordering::Acquire) => problem::closing(problem::payload_too_large(max, request_id)),
        _ => resp,
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

/// Reads the whole body (a declared length over `max` was refused before).
async fn read_body<B>(body: B, max: u64, request_id: &str) -> Result<Bytes, HostResponse>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BodyError>,
{
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
        // A length the plugin announced for its stream stays (an ASGI app's
        // FileResponse, a proxied upstream's body): hyper then sends exactly
        // that many bytes, and a stream that ends short aborts the connection.
        Some(source) => Body::streaming(body, Some(source)),
        None if head => {
            // A HEAD answer without its body (say Starlette's FileResponse)
            // keeps the length it announced; one with the GET body gets its length.
            if !body.is_empty() || !headers.contains_key(header::CONTENT_LENGTH) {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
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
