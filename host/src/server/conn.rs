//! One accepted TCP connection: HTTP/1.1 or h2c (hyper-util's auto builder
//! sniffs the preface), served until it ends, idles out, times out reading a
//! head, or the host shuts down (graceful: in-flight requests finish).
//! Every connection is served with upgrades ([`super::tunnel`]): tokio
//! streams are `Send`; an io_uring stream is not (it must stay on its
//! thread), so it comes wrapped in [`super::uring::bound::ThreadBound`], and
//! its tunnel runs on its thread ([`ConnContext::home`]).
//!
//! Slow clients and HTTP/2 abuse (docs/hardening.md): request bodies are
//! read under `body_read_timeout` / `body_min_rate`, response bodies under
//! `send_timeout` ([`super::body`]); HTTP/2 runs with h2's rapid-reset,
//! CONTINUATION and header-list limits set explicitly and a small per-stream
//! send buffer, so a peer that does not read holds little.
//! Both I/O backends (epoll, io_uring) serve through here.

use std::{net::SocketAddr, pin::Pin, sync::Arc};

use hyper::{
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, watch},
};

use super::{
    park,
    body::ReadTimed,
    tracked_io::TrackedIo,
    watchdog::{self, ConnState, Expiry, Timeouts},
};
use crate::{
    exchange::client_string,
    manifest::Limits,
    service::{self, ConnInfo, Shared},
};

/// Headers hyper's HTTP/1 parser holds on the stack (its default limit).
const HYPER_STACK_HEADERS: usize = 100;

/// Streams a peer may reset before the server accepts them (rapid reset,
/// CVE-2023-44487): past it, GOAWAY `ENHANCE_YOUR_CALM`. h2's default, set
/// here so an upgrade cannot silently change it.
const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset for the peer's protocol errors before it
/// sends GOAWAY (RUSTSEC-2024-0003): hyper's default, set explicitly.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Response bytes h2 takes from a body per stream ahead of the socket
/// (hyper's default is 400 KiB): a peer that opens a wide window and never
/// reads pins about 130 KiB a stream (this and the chunk over it), 32 MiB
/// for 256 streams rather than about 115 MiB (tests/e2e/h2_attacks/window.rs).
const H2_MAX_SEND_BUF: usize = 64 * 1024;
/// After a connection is told to close for idleness or a stalled send, how
/// long it may take to wind down before it is dropped.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The protocol builders of a listener, configured from the limits.
pub struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// The connection builders for a listener, configured from the limits.
pub fn builder(limits: &Limits) -> Builders {
    Builders { http1: http1_builder(limits), http2: http2_builder(limits) }
}

fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut http1 = http1::Builder::new();
    // Our own checks answer 431 with the structured body; hyper's buffer
    // limit (twice ours) only catches what is far beyond them. No hyper timer
    // on HTTP/1: with one, hyper arms its own 30 s header-read timer on every
    // request. The watchdog covers header-read and idle timeouts.
    // No `pipeline_flush`: with it hyper buffers a streamed response body
    // without limit (its write buffer then never says "full"), so a slow
    // client made the host hold a whole streamed download in memory.
    http1.header_read_timeout(None).keep_alive(true);
    http1.max_buf_size(limits.max_header_bytes.saturating_mul(2).max(8192));
    // hyper parses up to 100 headers into a stack array; setting max_headers
    // moves that to the heap on every request (~5% in hyper's own numbers).
    // So it is raised only when the manifest allows more than 100; with the
    // default limit (100), a request with more than 100 headers gets hyper's
    // own 431, without the structured body.
    if limits.max_headers > HYPER_STACK_HEADERS {
        http1.max_headers(limits.max_headers.saturating_mul(2));
    }
    http1
}

fn http2_builder(limits: &Limits) -> http2::Builder<TokioExecutor> {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .max_header_list_size(u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX));
    // Ping the peer every interval; no answer within another interval closes
    // the connection. `0s` turns pings off.
    let keepalive = limits.h2_keepalive_interval;
    if !keepalive.is_zero() {
        http2.keep_alive_interval(Some(keepalive)).keep_alive_timeout(keepalive);
    }
    http2
}

/// Everything a connection task needs.
#[derive(Clone)]
pub struct ConnContext {
    /// Host state.
    pub shared: Arc<Shared>,
    /// Protocol builders.
    pub builder: Arc<Builders>,
    /// Flips to `true` when the host shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The listener's TLS handshake side; `None` for plain HTTP.
    pub tls: Option<Arc<super::tls::TlsEndpoint>>,
    /// The main multi-threaded runtime, on io_uring threads: requests run
    /// there while a `blocking` native plugin is live (see [`offloaded`]).
    pub offload: Option<tokio::runtime::Handle>,
    /// The runtime of the thread the connection's IO is bound to (io_uring
    /// threads): its tunnel task is spawned there, wherever the service
    /// future runs. `None` on epoll (any worker will do).
    pub home: Option<tokio::runtime::Handle>,
}

/// The service future of one request: on the connection's own thread, or,
/// with `offload` set and a `blocking` native plugin live, on the main
/// runtime. io_uring threads are current-thread runtimes where a blocking
/// plugin call would stall every connection of that core; on the main
/// runtime it goes through `block_in_place` as on epoll.
fn offloaded<F>(offload: Option<&tokio::runtime::Handle>, fut: F) -> impl Future<Output = F::Output> + Send + use<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use futures_util::future::Either;
    match offload.filter(|_| crate::runtime::native::blocking_plugins_live()) {
        None => Either::Left(fut),
        Some(handle) => {
            let task = AbortOnDrop(handle.spawn(fut));
            Either::Right(async move {
                let mut task = task;
                (&mut task.0).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
            })
        }
    }
}

/// An offloaded request's task, cancelled when the connection drops its
/// service future (the client left, a timeout cut it): as on the worker,
/// where the future itself would be dropped, the plugins' futures are
/// dropped too rather than running on for no one.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves one accepted TCP connection (epoll backend) to its end.
pub async fn serve_tcp(stream: TcpStream, peer: SocketAddr, ctx: ConnContext, permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    match ctx.tls.clone() {
        // Boxed: the handshake's state would otherwise size every plain
        // connection's task too (12.5 KiB rather than about 1 KiB).
        Some(tls) => Box::pin(super::tls::serve(tls, stream, peer, ctx, permit, serve)).await,
        None => serve(stream, peer, ctx, permit, None).await,
    }
}

/// Serves one connection (tokio TCP, or an io_uring stream bound to its
/// thread; plain or under TLS) to its end, with upgrades. Holds `permit`
/// (the connection limit) throughout, and a tunnel made of the connection
/// holds it on. The caller sets socket options (nodelay). hyper serves the
/// connection only while it has work: until its first byte, and while an
/// HTTP/1 connection is parked, the task waits on the socket alone
/// ([`super::park`]).
pub async fn serve<S>(stream: S, peer: SocketAddr, ctx: ConnContext, permit: OwnedSemaphorePermit, tls: Option<Arc<super::tls::identity::ConnTls>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _open = park::Counted::open();
    let (mut io, info, state) = prepare(stream, peer, tls, permit, &ctx);
    let (shared, offload) = (ctx.shared.clone(), ctx.offload.clone());
    let (read_timeout, min_rate) = (shared.limits.body_read_timeout, shared.limits.body_min_rate);
    let mut svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let req = req.map(|body| ReadTimed::new(body, read_timeout, min_rate));
        offloaded(offload.as_ref(), service::serve(shared.clone(), info.clone(), req))
    });
    let limits = &ctx.shared.limits;
    let mut stop = ctx.shutdown.clone();
    let Some(first) = park::next_byte(&mut io, &state, limits.idle_timeout, &mut stop).await else { return };
    match park::first_bytes(&mut io, &state, first, limits.header_read_timeout).await {
        None => return tracing::debug!(%peer, "closing connection: no protocol named within header_read_timeout"),
        Some(true) => {
            // Boxed: hyper's connection is large, and a plain connection's
            // task is sized for its largest state.
            let mut conn = Box::pin(ctx.builder.http2.serve_connection(TokioIo::new(io), svc));
            drive(&mut conn, |conn| conn.graceful_shutdown(), &state, &ctx, peer, None).await;
            return;
        }
        Some(false) => {}
    }
    loop {
        let mut conn = Box::pin(ctx.builder.http1.serve_connection(TokioIo::new(io), svc).with_upgrades());
        if drive(&mut conn, |conn| conn.graceful_shutdown(), &state, &ctx, peer, Some(park::PARK_AFTER)).await == Ended::Closed {
            return;
        }
        // Parked: hyper's connection (and its buffers) go; the socket stays.
        let Some(parts) = Pin::into_inner(conn).into_parts() else { return };
        state.parked();
        (io, svc) = (parts.io.into_inner(), parts.service);
        // Even empty, hyper's bytes are a view of its whole read buffer:
        // dropped here, not held through the wait.
        let unparsed = parts.read_buf;
        if !unparsed.is_empty() {
            io.replay(unparsed, true);
            continue;
        }
        drop(unparsed);
        park::release_memory_soon();
        let Some(next) = park::next_byte(&mut io, &state, limits.idle_timeout, &mut stop).await else { return };
        io.replay(bytes::Bytes::copy_from_slice(&[next]), false);
    }
}

/// The connection's tracked I/O, what the service knows of it, and its
/// activity state.
fn prepare<S>(
    stream: S,
    peer: SocketAddr,
    tls: Option<Arc<super::tls::identity::ConnTls>>,
    permit: OwnedSemaphorePermit,
    ctx: &ConnContext,
) -> (TrackedIo<S>, Arc<ConnInfo>, Arc<ConnState>) {
    let state = Arc::new(ConnState::default());
    let io = TrackedIo::new(stream, state.clone(), ctx.shared.limits.max_header_bytes);
    let home = ctx.home.clone();
    let info = Arc::new(ConnInfo { client: client_string(peer), state: state.clone(), tls, permit: Some(permit), home });
    (io, info, state)
}

/// How [`drive`] left a connection.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Over: served to its end, closed or dropped.
    Closed,
    /// Idle and closed in hyper's view only: the socket is open and the
    /// connection's parts can be taken ([`super::park`]).
    Parked,
}

/// Runs `conn` under the connection's watchdog until it ends or, with
/// `park` set, idles that long: a head read too slowly drops it, idleness
/// (the idle timeout) or shutdown closes it gracefully.
async fn drive<C>(
    conn: &mut Pin<Box<C>>,
    graceful: impl Fn(Pin<&mut C>),
    state: &Arc<ConnState>,
    ctx: &ConnContext,
    peer: SocketAddr,
    park: Option<std::time::Duration>,
) -> Ended
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let limits = &ctx.shared.limits;
    let timeouts = Timeouts { header_read: limits.header_read_timeout, idle: limits.idle_timeout, send: limits.send_timeout, park };
    let verdict = loop {
        let (mut alarm, watchdog) = watchdog::spawn(state.clone(), timeouts, ctx.shutdown.clone());
        let verdict = tokio::select! {
            biased;
            result = conn.as_mut() => {
                watchdog.abort();
                log_end(peer, result);
                return Ended::Closed;
            }
            Ok(verdict) = &mut alarm => verdict,
        };
        match (verdict, park) {
            (Some(Expiry::Park), Some(after)) if state.try_park(after) => return park_hyper(conn, graceful, state, peer).await,
            // Bytes moved since the watchdog looked: watch on.
            (Some(Expiry::Park), _) => continue,
            (verdict, _) => break verdict,
        }
    };
    match verdict {
        Some(Expiry::HeaderRead) => {
            tracing::debug!(%peer, "closing connection: request head not received within header_read_timeout");
            return Ended::Closed;
        }
        Some(Expiry::SendStall) => tracing::debug!(%peer, "closing connection: the client took no response bytes within send_timeout"),
        Some(Expiry::Flood) => tracing::debug!(%peer, "closing connection: HTTP/2 SETTINGS/PING flood"),
        // Idle, or the host shutting down: the peer is not sending; no linger.
        Some(Expiry::Idle | Expiry::Park) | None => state.skip_linger(),
    }
    graceful(conn.as_mut());
    if verdict.is_none() {
        // Host shutdown: requests in flight finish (the server bounds it by shutdown_timeout).
        log_end(peer, conn.as_mut().await);
        return Ended::Closed;
    }
    // Idle or stalled: a response that never drains must not hold the connection.
    match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
        Ok(result) => log_end(peer, result),
        Err(_) => tracing::debug!(%peer, "connection dropped: it did not wind down after being closed"),
    }
    Ended::Closed
}

/// Closes an idle connection in hyper's view ([`ConnState::try_park`] said
/// it is idle): hyper ends it at once, leaving the socket open.
async fn park_hyper<C>(conn: &mut Pin<Box<C>>, graceful: impl Fn(Pin<&mut C>), state: &ConnState, peer: SocketAddr) -> Ended
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    graceful(conn.as_mut());
    match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
        Ok(Ok(())) => Ended::Parked,
        Ok(Err(e)) => {
            state.parked();
            log_end(peer, Err(e));
            Ended::Closed
        }
        Err(_) => {
            state.parked();
            tracing::debug!(%peer, "connection dropped: it did not wind down when parked");
            Ended::Closed
        }
    }
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
}
