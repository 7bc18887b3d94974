//! Configurable upstreams for the proxy suite: a hyper server on
//! 127.0.0.1:0 speaking HTTP/1.1 and h2c (hyper-util's auto builder picks
//! per connection), or either over TLS with a test certificate (ALPN `h2`,
//! `http/1.1`), optionally requiring a client certificate. Every response carries `x-upstream: <name>`, so a test sees
//! which endpoint answered, and the upstream counts what reached it.
//!
//! Paths:
//! - `/healthz`: the health status ([`TestUpstream::set_health`]), counted apart.
//! - `/bytes/<n>`: `n` bytes of `x`, made in 64 KiB chunks as the reader
//!   pulls (counted in [`TestUpstream::produced`]).
//! - `/break`: declares 1 MiB, sends 64 KiB, then aborts (h1: connection
//!   closed; h2: stream reset): an upstream dying mid-body.
//! - anything else: reads the whole request body (counting it), waits while
//!   held ([`TestUpstream::hold`]) and for the delay, then answers the
//!   status (or the next of [`TestUpstream::fail_next`]) with a JSON echo of
//!   the request: `{upstream, method, uri, version, headers, received}`,
//!   with each request header `x-reply-<name>: v` answered as `<name>: v`.
//!
//! [`TestUpstream::stop`] drops the listener and every connection (new
//! connections are refused); [`TestUpstream::restart`] binds the same port again.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming},
    service::service_fn,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde_json::{Map, Value, json};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::certs::{Ca, Leaf};

/// How big each chunk of a generated body is.
const CHUNK: usize = 64 * 1024;
static FILL: [u8; CHUNK] = [b'x'; CHUNK];

/// A test upstream; stops serving when dropped.
pub struct TestUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// What the upstream answers and what it saw.
struct State {
    name: String,
    status: AtomicU16,
    health: AtomicU16,
    /// The next `.0` ordinary requests answer `.1`.
    fail: Mutex<(usize, u16)>,
    delay_ms: AtomicU64,
    held: watch::Sender<bool>,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    health_checks: AtomicUsize,
    received: AtomicU64,
    /// Bytes of `/bytes/<n>` bodies handed to hyper so far.
    produced: Arc<AtomicU64>,
}

type Answer = Response<Either<Full<Bytes>, Filler>>;

impl TestUpstream {
    /// A plain-TCP upstream (HTTP/1.1 and h2c) named `name`, answering 200.
    pub async fn start(name: &str) -> TestUpstream {
        TestUpstream::serve(name, None).await
    }

    /// A TLS upstream presenting `leaf` (ALPN `h2` and `http/1.1`).
    pub async fn start_tls(name: &str, leaf: &Leaf) -> TestUpstream {
        TestUpstream::serve(name, Some(acceptor(leaf, None))).await
    }

    /// A TLS upstream presenting `leaf` that requires a client certificate issued by `clients`.
    pub async fn start_mtls(name: &str, leaf: &Leaf, clients: &Ca) -> TestUpstream {
        TestUpstream::serve(name, Some(acceptor(leaf, Some(clients)))).await
    }

    async fn serve(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> TestUpstream {
        let state = Arc::new(State {
            name: name.to_owned(),
            status: AtomicU16::new(200),
            health: AtomicU16::new(200),
            fail: Mutex::new((0, 200)),
            delay_ms: AtomicU64::new(0),
            held: watch::Sender::new(false),
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            health_checks: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            produced: Arc::new(AtomicU64::new(0)),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream");
        let addr = listener.local_addr().expect("upstream address");
        let upstream = TestUpstream { addr, state, tls, server: Mutex::new(None) };
        upstream.accept(listener);
        upstream
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:<port>`, as a manifest's `endpoints:` entry.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Its name (the `x-upstream` header of its answers).
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The status of ordinary answers from now on.
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// The status of `/healthz` from now on.
    pub fn set_health(&self, status: u16) {
        self.state.health.store(status, Ordering::SeqCst);
    }

    /// How long ordinary answers wait (after reading the request body).
    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The next `n` ordinary requests answer `status`, then the usual status again.
    pub fn fail_next(&self, n: usize, status: u16) {
        *self.state.fail.lock().unwrap() = (n, status);
    }

    /// Ordinary requests wait (in flight) until [`TestUpstream::release`].
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Lets held requests (and later ones) answer.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Ordinary requests that reached it so far (not health checks).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Ordinary requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// `/healthz` requests so far.
    pub fn health_checks(&self) -> usize {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    /// Request body bytes read so far, all ordinary requests together.
    pub fn received(&self) -> u64 {
        self.state.received.load(Ordering::SeqCst)
    }

    /// Bytes of `/bytes/<n>` answers handed to hyper so far (what a reader
    /// pulled, plus what the buffers on the way hold).
    pub fn produced(&self) -> u64 {
        self.state.produced.load(Ordering::SeqCst)
    }

    /// Stops serving: the listener and every open connection are dropped, so
    /// connecting is refused until [`TestUpstream::restart`].
    pub fn stop(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }

    /// Serves again on the same port (after [`TestUpstream::stop`]).
    pub async fn restart(&self) {
        self.stop();
        let listener = rebind(self.addr).await;
        self.accept(listener);
    }

    fn accept(&self, listener: TcpListener) {
        let (state, tls) = (self.state.clone(), self.tls.clone());
        let server = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((socket, _)) = accepted else { break };
                        connections.spawn(connection(socket, state.clone(), tls.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.server.lock().unwrap() = Some(server);
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` again; the port was ours a moment ago, so retry briefly
/// while the kernel lets go of it.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not bind {addr} again: {last:?}");
}

fn acceptor(leaf: &Leaf, clients: Option<&Ca>) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("upstream certificate")];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("upstream key");
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots()), provider)
                .build()
                .expect("client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).expect("upstream TLS config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn connection(socket: tokio::net::TcpStream, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    let service = service_fn(move |req| answer(state.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let _ = match tls {
        None => builder.serve_connection(TokioIo::new(socket), service).await,
        Some(tls) => match tls.accept(socket).await {
            Ok(stream) => builder.serve_connection(TokioIo::new(stream), service).await,
            Err(_) => return,
        },
    };
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let path = req.uri().path().to_owned();
    let mut response = if path == "/healthz" {
        state.health_checks.fetch_add(1, Ordering::SeqCst);
        let status = state.health.load(Ordering::SeqCst);
        text(status, "health")
    } else if let Some(size) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<u64>().ok()) {
        state.requests.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Either::Right(Filler::counted(size, state.produced.clone())));
        response.headers_mut().insert("content-length", size.into());
        response
    } else if path == "/break" {
        state.requests.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Either::Right(Filler::breaking(1 << 20, CHUNK as u64)));
        response.headers_mut().insert("content-length", (1u64 << 20).into());
        response
    } else {
        ordinary(&state, req).await
    };
    response.headers_mut().insert("x-upstream", state.name.parse().expect("a header-safe name"));
    Ok(response)
}

/// Counts, reads the body, waits while held and for the delay, answers.
async fn ordinary(state: &Arc<State>, req: Request<Incoming>) -> Answer {
    state.requests.fetch_add(1, Ordering::SeqCst);
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(state.clone());
    let (parts, mut body) = req.into_parts();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return text(400, "request body broke") };
        if let Some(data) = frame.data_ref() {
            received += data.len() as u64;
            state.received.fetch_add(data.len() as u64, Ordering::SeqCst);
        }
    }
    let _ = state.held.subscribe().wait_for(|held| !*held).await;
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = {
        let mut fail = state.fail.lock().unwrap();
        if fail.0 > 0 {
            fail.0 -= 1;
            fail.1
        } else {
            state.status.load(Ordering::SeqCst)
        }
    };
    let headers: Map<String, Value> = parts
        .headers
        .keys()
        .map(|name| {
            let values: Vec<&str> =
                parts.headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("<bytes>")).collect();
            (name.to_string(), Value::String(values.join(", ")))
        })
        .collect();
    let echo = json!({
        "upstream": state.name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "received": received,
    });
    let mut response = text(status, &echo.to_string());
    response.headers_mut().insert("content-type", "application/json".parse().expect("header"));
    response.headers_mut().insert("x-received", received.into());
    for (name, value) in &parts.headers {
        if let Some(reply_name) = name.as_str().strip_prefix("x-reply-") {
            let reply_name = http::HeaderName::from_bytes(reply_name.as_bytes()).expect("a header name");
            response.headers_mut().append(reply_name, value.clone());
        }
    }
    response
}

fn text(status: u16, body: &str) -> Answer {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body.to_owned()))));
    *response.status_mut() = http::StatusCode::from_u16(status).expect("a valid status");
    response
}

/// Decrements the in-flight count when an answer ends (or is dropped).
struct InFlight(Arc<State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A body of `x` bytes made in 64 KiB chunks as the reader pulls; with
/// `break_after`, it fails once that many bytes are out (an aborted answer),
/// after a pause that lets hyper flush the head and those bytes first
/// (failing at once would drop them unsent with the connection).
pub struct Filler {
    left: u64,
    break_after: Option<u64>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    produced: Option<Arc<AtomicU64>>,
}

impl Filler {
    /// `size` bytes.
    pub fn new(size: u64) -> Filler {
        Filler { left: size, break_after: None, pause: None, produced: None }
    }

    /// `size` bytes, adding what it hands out to `produced`.
    fn counted(size: u64, produced: Arc<AtomicU64>) -> Filler {
        Filler { produced: Some(produced), ..Filler::new(size) }
    }

    /// Declares `size` bytes but fails after `after`.
    fn breaking(size: u64, after: u64) -> Filler {
        Filler { break_after: Some(after), ..Filler::new(size) }
    }
}

impl Body for Filler {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.break_after == Some(0) {
            let pause = self.pause.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(200))));
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err(std::io::Error::other("the test upstream breaks off its answer"))));
        }
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let mut n = self.left.min(CHUNK as u64);
        if let Some(after) = self.break_after {
            n = n.min(after);
            self.break_after = Some(after - n);
        }
        self.left -= n;
        if let Some(produced) = &self.produced {
            produced.fetch_add(n, Ordering::SeqCst);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n as usize])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0 && self.break_after.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.break_after {
            None => hyper::body::SizeHint::with_exact(self.left),
            Some(_) => hyper::body::SizeHint::default(),
        }
    }
}
