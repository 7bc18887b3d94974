//! Upgrades tunnelled as two body streams: a native handler (the
//! `covet-async-plugin` fixture's `echo` mode) answers an upgrade with 101
//! and its request body stream as the response body, so whatever the
//! client sends after the upgrade comes back. HTTP/1.1 `Upgrade` over a raw
//! TCP connection, and HTTP/2 extended CONNECT (RFC 8441) with hyper's
//! client, which the host presents to the plugin as an HTTP/1.1 upgrade.
//! The HTTP/1.1 tests run on both backends (`COVET_IO=epoll` and `uring`):
//! on io_uring the upgraded connection stays on its thread (docs/io.md),
//! also while a `blocking` plugin is live and requests run on the main
//! runtime.

use std::time::Duration;

use covet_e2e::{Host, Manifest, Route};
use http::{Method, Request};
use http_body_util::Empty;
use hyper::ext::Protocol;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::common::{PATIENCE, labelled};

const FIXTURE: &str = "covet-async-plugin";

fn gateway() -> Manifest {
    Manifest::new()
        .plugin("echo", FIXTURE, json!({ "mode": "echo" }))
        .plugin("plain", FIXTURE, json!({ "mode": "download", "bytes": 5 }))
        .route(Route::new("/tunnel").handler("echo"))
        .route(Route::new("/plain").handler("plain"))
}

/// Reads until `want` bytes came (or the peer closed).
async fn read_exact_within<R: AsyncRead + Unpin>(io: &mut R, want: usize) -> Vec<u8> {
    let mut got = vec![0u8; want];
    timeout(PATIENCE, io.read_exact(&mut got)).await.expect("echo within patience").expect("echoed bytes");
    got
}

/// Writes `message` and expects it back, twice (the tunnel stays up).
async fn ping_pong<T: AsyncRead + AsyncWrite + Unpin>(io: &mut T) {
    for message in [&b"ping through the tunnel"[..], &[7u8; 40_000][..]] {
        io.write_all(message).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(read_exact_within(io, message.len()).await, message);
    }
}

/// The response head, read byte by byte up to the blank line.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = timeout(PATIENCE, tcp.read_u8()).await.expect("a head within patience").expect("a head");
        head.push(byte);
    }
    String::from_utf8(head).unwrap()
}

/// A host for `manifest` on `backend` (`epoll` or `uring`; asserted).
async fn host_on(backend: &str, manifest: Manifest) -> Host {
    let host = Host::builder(manifest).env("COVET_IO", backend).start();
    host.wait_ready().await;
    let line = host.log_line(&[&format!("io backend: {backend}")]).await;
    assert!(line.is_some(), "the host serves on {backend}; logs:\n{}", host.logs());
    host
}

/// Sends a few bytes every 300 ms for 2.5 s (well past an `idle_timeout` of
/// 1 s) and expects each back: a tunnel in use is never cut.
async fn keep_talking<T: AsyncRead + AsyncWrite + Unpin>(io: &mut T) {
    for round in 0..8u8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let message = [b'0' + round; 3];
        io.write_all(&message).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(read_exact_within(io, 3).await, message, "round {round}");
    }
}

/// Waits for the host to close an idle tunnel (EOF or a reset both count).
async fn closed_by_host<T: AsyncRead + Unpin>(io: &mut T) {
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, io.read_to_end(&mut rest)).await;
    assert!(read.is_ok() && rest.is_empty(), "the idle tunnel was not closed: {read:?} {rest:?}");
}

/// An HTTP/1.1 upgrade on a raw connection: 101, bytes both ways, and the
/// host's side closed after ours.
async fn http1_upgrade_round_trip(host: &Host) {
    let mut tcp = TcpStream::connect(host.addr()).await.unwrap();
    let request = "GET /tunnel HTTP/1.1\r\nhost: covet.test\r\nconnection: Upgrade\r\nupgrade: echo-protocol\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo-protocol"), "{head}");
    ping_pong(&mut tcp).await;
    // Closing our side ends the plugin's request body, hence its response
    // body, hence the host's side of the tunnel.
    tcp.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, tcp.read_to_end(&mut rest)).await.expect("the host closes its side");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
}

async fn http1_tunnel_idles_out(backend: &str) {
    let host = host_on(backend, gateway().limit("idle_timeout", "1s")).await;
    let mut tcp = TcpStream::connect(host.addr()).await.unwrap();
    let request = "GET /tunnel HTTP/1.1\r\nhost: covet.test\r\nconnection: upgrade\r\nupgrade: echo-protocol\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.unwrap();
    assert!(read_head(&mut tcp).await.starts_with("HTTP/1.1 101"));
    keep_talking(&mut tcp).await;
    closed_by_host(&mut tcp).await;
}

async fn upgrade_without_101(backend: &str) {
    let host = host_on(backend, gateway()).await;
    let mut tcp = TcpStream::connect(host.addr()).await.unwrap();
    // A handler that does not switch protocols: the upgrade is dropped and
    // the connection goes on serving HTTP/1.1.
    let upgrade = "GET /plain HTTP/1.1\r\nhost: covet.test\r\nconnection: upgrade\r\nupgrade: echo-protocol\r\n\r\n";
    tcp.write_all(upgrade.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(read_exact_within(&mut tcp, 5).await, b"xxxxx");
    tcp.write_all(b"GET /plain HTTP/1.1\r\nhost: covet.test\r\n\r\n").await.unwrap();
    let head = read_head(&mut tcp).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "the connection still serves requests: {head}");
}

#[tokio::test]
async fn an_http1_upgrade_is_tunnelled_through_a_native_handler() {
    http1_upgrade_round_trip(&host_on("epoll", gateway()).await).await;
}

#[tokio::test]
async fn an_http1_upgrade_is_tunnelled_on_io_uring() {
    http1_upgrade_round_trip(&host_on("uring", gateway()).await).await;
}

/// With a `blocking` native plugin live, io_uring requests run on the main
/// runtime; the tunnel must still run on the connection's own thread.
#[tokio::test]
async fn an_http1_upgrade_is_tunnelled_on_io_uring_while_requests_are_offloaded() {
    let manifest = gateway().plugin("slow", "covet-test-plugin", labelled("slow")).route(Route::new("/slow").handler("slow"));
    let host = host_on("uring", manifest).await;
    let reply = host.http1().get("/slow").await.expect("GET /slow");
    assert_eq!(reply.json()["label"], "slow", "the blocking plugin is live");
    for _ in 0..3 {
        http1_upgrade_round_trip(&host).await;
    }
}

#[tokio::test]
async fn an_http1_tunnel_outlives_idle_timeout_while_used_and_closes_when_idle() {
    http1_tunnel_idles_out("epoll").await;
}

#[tokio::test]
async fn an_http1_tunnel_on_io_uring_outlives_idle_timeout_while_used_and_closes_when_idle() {
    http1_tunnel_idles_out("uring").await;
}

#[tokio::test]
async fn an_upgrade_answered_without_101_is_an_ordinary_exchange() {
    upgrade_without_101("epoll").await;
}

#[tokio::test]
async fn an_upgrade_answered_without_101_on_io_uring_is_an_ordinary_exchange() {
    upgrade_without_101("uring").await;
}

#[tokio::test]
async fn an_http2_extended_connect_is_tunnelled_as_an_http1_upgrade() {
    let host = Host::start(gateway()).await;
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    // One ordinary request first: the server's SETTINGS (with
    // ENABLE_CONNECT_PROTOCOL) have arrived once it is answered.
    let warm = Request::get(format!("http://{}/_covet/health", host.addr())).body(Empty::new()).unwrap();
    assert_eq!(sender.send_request(warm).await.expect("health").status(), 200);

    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{}/tunnel", host.addr()))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    req.extensions_mut().insert(Protocol::from_static("websocket"));
    let mut resp = timeout(PATIENCE, sender.send_request(req)).await.expect("an answer").expect("a response");
    assert_eq!(resp.status(), 200, "a 101 from the plugin goes out as 200 on HTTP/2");
    assert!(resp.headers().get("sec-websocket-accept").is_none() && resp.headers().get("upgrade").is_none());
    assert_eq!(resp.headers()["x-seen-method"], "GET", "the plugin saw an HTTP/1.1-style upgrade");
    assert_eq!(resp.headers()["x-seen-key"].len(), 24, "a generated sec-websocket-key");
    let upgraded = timeout(PATIENCE, hyper::upgrade::on(&mut resp)).await.expect("upgrade").expect("upgraded");
    let mut io = TokioIo::new(upgraded);
    ping_pong(&mut io).await;
    io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, io.read_to_end(&mut rest)).await.expect("the stream ends");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    // The connection still serves ordinary requests.
    let again = Request::get(format!("http://{}/_covet/health", host.addr())).body(Empty::new()).unwrap();
    let status = timeout(Duration::from_secs(30), sender.send_request(again)).await.expect("answer").expect("response").status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_http2_tunnel_outlives_idle_timeout_while_used_and_closes_when_idle() {
    let host = Host::start(gateway().limit("idle_timeout", "1s")).await;
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let warm = Request::get(format!("http://{}/_covet/health", host.addr())).body(Empty::new()).unwrap();
    assert_eq!(sender.send_request(warm).await.expect("health").status(), 200);
    let mut req = Request::builder().method(Method::CONNECT).uri(format!("http://{}/tunnel", host.addr())).body(Empty::new()).unwrap();
    req.extensions_mut().insert(Protocol::from_static("echo-protocol"));
    let mut resp = timeout(PATIENCE, sender.send_request(req)).await.expect("an answer").expect("a response");
    assert_eq!(resp.status(), 200);
    let mut io = TokioIo::new(hyper::upgrade::on(&mut resp).await.expect("upgraded"));
    keep_talking(&mut io).await;
    closed_by_host(&mut io).await;
}
