//! Upstream tests over real sockets: tiny hyper servers on 127.0.0.1:0,
//! started by each test, answering with their name. Balancing, sticky
//! cookies, retries, timeouts and the breaker here; health, reconcile and
//! DNS in `health_tests.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;

use super::*;
use crate::http::full;

/// A test server: counts requests, answers `status` (health checks on
/// `/healthz` answer `health`) after `delay_ms`, with its name as the body.
#[derive(Clone)]
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    pub(super) hits: Arc<AtomicUsize>,
    pub(super) status: Arc<AtomicU16>,
    pub(super) health: Arc<AtomicU16>,
    pub(super) delay_ms: Arc<AtomicU64>,
}

pub(super) async fn server(name: &'static str) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server {
        addr: listener.local_addr().unwrap(),
        hits: Arc::default(),
        status: Arc::new(AtomicU16::new(200)),
        health: Arc::new(AtomicU16::new(200)),
        delay_ms: Arc::default(),
    };
    let state = server.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let answer = service_fn(move |request: http::Request<Incoming>| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(name, &state, request).await) }
                });
                let io = hyper_util::rt::TokioIo::new(socket);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, answer).await;
            });
        }
    });
    server
}

async fn answer(name: &'static str, state: &Server, request: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    if request.uri().path() == "/healthz" {
        let status = state.health.load(Ordering::SeqCst);
        return http::Response::builder().status(status).body(Full::new(Bytes::from(name))).unwrap();
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let host = request.headers().get("host").map(|h| h.to_str().unwrap().to_owned()).unwrap_or_default();
    // Read the whole body first, as a real server would before answering.
    let _ = request.into_body().collect().await;
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = state.status.load(Ordering::SeqCst);
    http::Response::builder().status(status).header("x-host", host).body(Full::new(Bytes::from(name))).unwrap()
}

/// An address where nothing listens (a listener bound, then closed).
pub(super) async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub(super) fn spec(addr: SocketAddr, weight: u32) -> EndpointSpec {
    EndpointSpec { host: addr.ip().to_string(), port: addr.port(), weight }
}

pub(super) fn config(name: &str, addrs: &[SocketAddr]) -> UpstreamConfig {
    let mut config = UpstreamConfig::new(name, addrs.iter().map(|a| spec(*a, 1)).collect());
    config.retries.backoff = Duration::from_millis(1);
    config
}

pub(super) fn get(path: &str) -> UpstreamRequest {
    request(http::Method::GET, path, None)
}

pub(super) fn request(method: http::Method, path: &str, body: Option<crate::http::RequestBody>) -> UpstreamRequest {
    UpstreamRequest {
        method,
        path_and_query: path.to_owned(),
        headers: http::HeaderMap::new(),
        body,
        client_ip: None,
        overrides: Overrides::default(),
    }
}

/// Builds one upstream from `config` in a fresh registry.
pub(super) fn upstream(config: UpstreamConfig) -> (Upstreams, Arc<Upstream>) {
    let upstreams = Upstreams::new();
    let name = config.name.clone();
    upstreams.reconcile(vec![config]).unwrap();
    let upstream = upstreams.get(&name).unwrap();
    (upstreams, upstream)
}

pub(super) async fn body_text(response: UpstreamResponse) -> String {
    let bytes = response.response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn round_robin_sends_each_endpoint_its_weight() {
    let (a, b) = (server("a").await, server("b").await);
    let mut config = config("rr", &[]);
    config.endpoints = vec![spec(a.addr, 3), spec(b.addr, 1)];
    let (_registry, upstream) = upstream(config);
    let mut names = Vec::new();
    for _ in 0..8 {
        let response = upstream.send(get("/")).await.unwrap();
        assert_eq!(response.attempts, 1);
        names.push(body_text(response).await);
    }
    assert_eq!(names.iter().filter(|n| *n == "a").count(), 6, "{names:?}");
    assert_eq!((a.hits.load(Ordering::SeqCst), b.hits.load(Ordering::SeqCst)), (6, 2));
    let status = upstream.status();
    assert_eq!(status.policy, "round_robin");
    let requests: Vec<u64> = status.endpoints.iter().map(|e| e.requests).collect();
    assert_eq!(requests, vec![6, 2]);
    assert_eq!(status.endpoints[0].latency_count, 6);
}

#[tokio::test]
async fn host_header_defaults_to_the_configured_host_and_port() {
    let a = server("a").await;
    let (_registry, upstream) = upstream(config("host", &[a.addr]));
    let response = upstream.send(get("/")).await.unwrap();
    assert_eq!(response.response.headers()["x-host"], format!("127.0.0.1:{}", a.addr.port()).as_str());
    let mut with_host = get("/");
    with_host.headers.insert("host", "example.com".parse().unwrap());
    let response = upstream.send(with_host).await.unwrap();
    assert_eq!(response.response.headers()["x-host"], "example.com");
}

#[tokio::test]
async fn least_request_prefers_the_idle_endpoint() {
    let (a, b) = (server("a").await, server("b").await);
    let mut config = config("p2c", &[a.addr, b.addr]);
    config.balance = Balance::LeastRequest;
    let (_registry, upstream) = upstream(config);
    // Endpoint a looks busy: 5 requests in flight.
    upstream.shared.endpoints.load().endpoints[0].in_flight.store(5, Ordering::SeqCst);
    for _ in 0..200 {
        upstream.send(get("/")).await.unwrap();
    }
    let (hits_a, hits_b) = (a.hits.load(Ordering::SeqCst), b.hits.load(Ordering::SeqCst));
    // a wins only when both random picks land on it (1 in 4: ~50 of 200;
    // 80 is 5 standard deviations above, and far below a blind 50/50).
    assert_eq!(hits_a + hits_b, 200);
    assert!(hits_a < 80, "busy a got {hits_a}, idle b got {hits_b}");
}

async fn hashed_endpoint(upstream: &Upstream, user: &str) -> SocketAddr {
    let mut request = get("/profile");
    request.headers.insert("x-user", user.parse().unwrap());
    upstream.send(request).await.unwrap().endpoint
}

#[tokio::test]
async fn ring_hash_and_maglev_send_a_key_to_the_same_endpoint() {
    let servers = [server("a").await, server("b").await, server("c").await];
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    for balance in [
        Balance::RingHash { key: HashKey::Header("x-user".into()), bounded_load: Some(1.25) },
        Balance::Maglev { key: HashKey::Header("x-user".into()), bounded_load: None },
    ] {
        let mut config = config("hash", &addrs);
        config.balance = balance.clone();
        let (_registry, upstream) = upstream(config);
        let mut seen = std::collections::HashSet::new();
        for user in (0..30).map(|i| format!("user-{i}")) {
            let first = hashed_endpoint(&upstream, &user).await;
            for _ in 0..2 {
                assert_eq!(hashed_endpoint(&upstream, &user).await, first, "{balance:?}: {user}");
            }
            seen.insert(first);
        }
        // Ports (and so hashes) change every run: with 30 keys, an endpoint left
        // without any has a chance of about 3 × (2/3)^30 ≈ 1.5e-5.
        assert_eq!(seen.len(), 3, "{balance:?}: 30 keys not spread over the 3 endpoints");
    }
}

#[tokio::test]
async fn sticky_cookie_pins_the_endpoint() {
    let (a, b) = (server("a").await, server("b").await);
    let mut config = config("sticky", &[a.addr, b.addr]);
    config.sticky = Some(Sticky { cookie: "covet-sticky".into(), ttl: Some(Duration::from_secs(3600)) });
    let (_registry, upstream) = upstream(config);
    let first = upstream.send(get("/")).await.unwrap();
    let set_cookie = first.response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("covet-sticky=") && set_cookie.contains("Max-Age=3600"), "{set_cookie}");
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    for _ in 0..4 {
        let mut request = get("/");
        request.headers.insert("cookie", format!("other=1; {pair}").parse().unwrap());
        let response = upstream.send(request).await.unwrap();
        assert_eq!(response.endpoint, first.endpoint);
        assert!(!response.response.headers().contains_key("set-cookie"), "a valid cookie is not set again");
    }
    let mut stale = get("/");
    stale.headers.insert("cookie", "covet-sticky=0000".parse().unwrap());
    let response = upstream.send(stale).await.unwrap();
    assert!(response.response.headers().contains_key("set-cookie"), "an unknown id gets a new cookie");
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_the_next_endpoint() {
    let (dead, live) = (dead_addr().await, server("live").await);
    let (_registry, upstream) = upstream(config("retry", &[dead, live.addr]));
    let response = upstream.send(request(http::Method::POST, "/", Some(full("data")))).await.unwrap();
    assert_eq!((response.endpoint, response.attempts), (live.addr, 2), "the first pick is the dead endpoint");
    assert_eq!(body_text(response).await, "live");
    let status = upstream.status();
    assert_eq!(status.retries, 1);
    assert_eq!(status.endpoints[0].errors, 1);
}

#[tokio::test]
async fn only_dead_endpoints_is_unavailable() {
    let (one, two) = (dead_addr().await, dead_addr().await);
    let (_registry, upstream) = upstream(config("dead", &[one, two]));
    let error = upstream.send(get("/")).await.err().expect("an error");
    assert_eq!(error.kind(), "unavailable", "{error}");
    assert!(error.to_string().starts_with("upstream 'dead': no endpoint available: "), "{error}");
}

#[tokio::test]
async fn a_503_is_retried_and_returned_when_retries_run_out() {
    let (a, b) = (server("a").await, server("b").await);
    a.status.store(503, Ordering::SeqCst);
    let (_registry, retried) = upstream(config("503", &[a.addr, b.addr]));
    let response = retried.send(get("/")).await.unwrap();
    assert_eq!((response.response.status().as_u16(), response.attempts), (200, 2));
    b.status.store(503, Ordering::SeqCst);
    let response = retried.send(get("/")).await.unwrap();
    assert_eq!(response.response.status(), 503, "the upstream's 503 is not hidden");
    assert_eq!(response.attempts, 3, "1 try + 2 retries");
}

#[tokio::test]
async fn retries_give_up_for_post_budget_and_replay_buffer() {
    let (a, b) = (server("a").await, server("b").await);
    a.status.store(503, Ordering::SeqCst);
    b.status.store(503, Ordering::SeqCst);
    // Non-idempotent: a 503 to a POST is returned as is.
    let (_r1, plain) = upstream(config("post", &[a.addr, b.addr]));
    let response = plain.send(request(http::Method::POST, "/", Some(full("x")))).await.unwrap();
    assert_eq!((response.response.status().as_u16(), response.attempts), (503, 1));
    let mut forced = request(http::Method::POST, "/", Some(full("x")));
    forced.overrides.retry_non_idempotent = Some(true);
    assert_eq!(plain.send(forced).await.unwrap().attempts, 3, "unless the request allows it");
    // A body past the replay buffer is not retried; one within it is.
    let mut small_buffer = config("replay", &[a.addr, b.addr]);
    small_buffer.retries.replay_buffer = 1024;
    let (_r2, replay) = upstream(small_buffer);
    let big = replay.send(request(http::Method::PUT, "/", Some(full(vec![7u8; 10_000])))).await.unwrap();
    assert_eq!((big.response.status().as_u16(), big.attempts), (503, 1));
    let small = replay.send(request(http::Method::PUT, "/", Some(full(vec![7u8; 100])))).await.unwrap();
    assert_eq!(small.attempts, 3);
    // An empty budget refuses the retry (and counts it).
    let mut no_budget = config("budget", &[a.addr, b.addr]);
    (no_budget.retries.budget_percent, no_budget.retries.budget_min_per_sec) = (0.0, 0);
    let (_r3, budget) = upstream(no_budget);
    assert_eq!(budget.send(get("/")).await.unwrap().attempts, 1);
    let status = budget.status();
    assert_eq!((status.retries, status.retries_budget_exhausted), (0, 1));
}

#[tokio::test]
async fn a_per_try_timeout_moves_on_and_the_overall_timeout_ends_the_request() {
    let (slow, fast) = (server("slow").await, server("fast").await);
    slow.delay_ms.store(10_000, Ordering::SeqCst);
    let mut per_try = config("per-try", &[slow.addr, fast.addr]);
    per_try.retries.per_try_timeout = Some(Duration::from_millis(200));
    let (_r1, upstream_1) = upstream(per_try);
    let response = upstream_1.send(get("/")).await.unwrap();
    assert_eq!((response.endpoint, response.attempts), (fast.addr, 2));
    assert_eq!(upstream_1.status().endpoints[0].errors, 1, "the slow try counts as an error");
    // Both slow: the overall deadline wins.
    fast.delay_ms.store(10_000, Ordering::SeqCst);
    let mut overall = config("overall", &[slow.addr, fast.addr]);
    overall.timeout = Duration::from_millis(300);
    let (_r2, upstream_2) = upstream(overall);
    let error = upstream_2.send(get("/")).await.err().expect("an error");
    assert_eq!(error.kind(), "timeout", "{error}");
    // A request may shorten the deadline, and a per-try timeout alone gives `timeout` too.
    let mut short = get("/");
    short.overrides.timeout = Some(Duration::from_millis(100));
    short.overrides.max_retries = Some(0);
    assert_eq!(upstream_1.send(short).await.err().expect("an error").kind(), "timeout");
}

#[tokio::test]
async fn the_breaker_refuses_when_full() {
    let a = server("a").await;
    a.delay_ms.store(10_000, Ordering::SeqCst);
    let mut config = config("breaker", &[a.addr]);
    config.circuit = Circuit { max_requests: 1, max_pending: 0, retry_after: Duration::from_secs(7) };
    let (_registry, upstream) = upstream(config);
    let busy = upstream.clone();
    let in_flight = tokio::spawn(async move { busy.send(get("/")).await.map(|r| r.attempts) });
    while upstream.status().in_flight == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match upstream.send(get("/")).await {
        Err(ServiceError::Overloaded { upstream, retry_after }) => {
            assert_eq!((upstream.as_str(), retry_after), ("breaker", Duration::from_secs(7)));
        }
        other => panic!("expected Overloaded, got {:?}", other.map(|r| r.attempts)),
    }
    assert_eq!(upstream.status().overloaded, 1);
    in_flight.abort();
}

#[tokio::test]
async fn a_response_stays_in_flight_until_its_body_ends() {
    let a = server("a").await;
    let (_registry, upstream) = upstream(config("in-flight", &[a.addr]));
    let response = upstream.send(get("/")).await.unwrap();
    let status = upstream.status();
    assert_eq!((status.in_flight, status.endpoints[0].in_flight), (1, 1), "the body is not read yet");
    assert_eq!(body_text(response).await, "a");
    let status = upstream.status();
    assert_eq!((status.in_flight, status.endpoints[0].in_flight), (0, 0));
}

#[tokio::test]
async fn a_body_cut_mid_way_fails_and_counts_against_the_endpoint() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello").await;
            let _ = socket.shutdown().await;
        }
    });
    let (_registry, upstream) = upstream(config("cut", &[addr]));
    let response = upstream.send(get("/")).await.unwrap();
    assert_eq!(upstream.status().endpoints[0].errors, 0, "the head was fine");
    let read = response.response.into_body().collect().await;
    assert!(read.is_err(), "a cut body must fail, not end");
    let status = upstream.status();
    assert_eq!((status.endpoints[0].errors, status.in_flight), (1, 0));
}

/// A server that upgrades `upgrade: echo` requests and echoes the tunnel's bytes.
async fn echo_upgrade_server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let answer = service_fn(|mut request: http::Request<Incoming>| async move {
                let upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    let mut io = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
                    let mut buf = vec![0u8; 1024];
                    while let Ok(n @ 1..) = io.read(&mut buf).await {
                        io.write_all(&buf[..n]).await.unwrap();
                    }
                    let _ = io.shutdown().await;
                });
                let response =
                    http::Response::builder().status(101).header("connection", "upgrade").header("upgrade", "echo");
                Ok::<_, Infallible>(response.body(Full::new(Bytes::new())).unwrap())
            });
            let io = hyper_util::rt::TokioIo::new(socket);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, answer).with_upgrades());
        }
    });
    addr
}

#[tokio::test]
async fn an_upgrade_is_tunnelled_both_ways() {
    let addr = echo_upgrade_server().await;
    let (_registry, upstream) = upstream(config("tunnel", &[addr]));
    let mut request = request(http::Method::GET, "/ws", Some(full("ping over the tunnel")));
    request.headers.insert("connection", "upgrade".parse().unwrap());
    request.headers.insert("upgrade", "echo".parse().unwrap());
    let response = upstream.send(request).await.unwrap();
    assert_eq!((response.response.status().as_u16(), response.attempts), (101, 1));
    assert_eq!(body_text(response).await, "ping over the tunnel");
}
