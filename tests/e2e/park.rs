//! Idle connections without hyper's state (docs/io.md "Memory per
//! connection"): an HTTP/1.1 keep-alive connection idle for a second is
//! parked (hyper's connection and buffers dropped, the socket kept) and
//! served as before when its next bytes come, whole, split or pipelined,
//! plain or under TLS; a parked connection still idles out and closes at
//! shutdown. `covet_connections_parked` counts them. Both backends (the
//! suite's `COVET_IO=uring` pass).

use std::time::Duration;

use covet_e2e::{Client, Host, Manifest, Route, certs::Ca, secure::TlsConn};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::{
    common::{PATIENCE, labelled},
    tls::{SITE_TLS, manifest as tls_manifest, with_site},
};

const BOTH: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn echo(extra_limits: &[(&str, &str)]) -> String {
    let mut manifest = Manifest::new().plugin("echo", "covet-test-plugin", labelled("echo")).route(Route::new("/echo").handler("echo"));
    for (key, value) in extra_limits {
        manifest = manifest.limit(key, value);
    }
    manifest.into()
}

/// `(covet_connections_open, covet_connections_parked)` from `/metrics`.
async fn gauges(host: &Host) -> (u64, u64) {
    let scrape = Client::http1(host.admin_addr()).get("/metrics").await.expect("metrics").text();
    let value = |name: &str| -> u64 {
        let line = scrape.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name} in:\n{scrape}"));
        line[name.len()..].trim().parse().expect("a gauge value")
    };
    (value("covet_connections_open"), value("covet_connections_parked"))
}

/// Waits until `parked` connections are parked (panics after PATIENCE).
async fn until_parked(host: &Host, parked: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = gauges(host).await;
        if now.1 == parked {
            return;
        }
        assert!(Instant::now() < deadline, "(open, parked) stayed {now:?}, waiting for {parked} parked; logs:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.1 response read off `stream`: its head and body (framed by
/// `content-length`, or chunked); nothing may follow it.
async fn response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut pending = Vec::new();
    let one = next_response(stream, &mut pending).await;
    assert!(pending.is_empty(), "{} bytes past the response: {}", pending.len(), one.0);
    one
}

/// The next response on `stream`, starting from the bytes already read
/// into `pending`, which is left holding what came after it (the host may
/// write two pipelined responses in one segment).
async fn next_response(stream: &mut TcpStream, pending: &mut Vec<u8>) -> (String, Vec<u8>) {
    let head_end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        read_more(stream, pending).await;
    };
    let mut body = pending.split_off(head_end);
    let head = String::from_utf8_lossy(pending).to_ascii_lowercase();
    let end = if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        let len: usize = len.trim().parse().expect("a length");
        while body.len() < len {
            read_more(stream, &mut body).await;
        }
        len
    } else {
        assert!(head.contains("transfer-encoding: chunked"), "unframed response: {head}");
        loop {
            if let Some(at) = body.windows(5).position(|w| w == b"0\r\n\r\n") {
                break at + 5;
            }
            read_more(stream, &mut body).await;
        }
    };
    *pending = body.split_off(end);
    (head, body)
}

async fn read_more(stream: &mut TcpStream, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("the host answers").expect("read");
    assert!(n > 0, "the host closed the connection after {:?}", String::from_utf8_lossy(into));
    into.extend_from_slice(&buf[..n]);
}

fn assert_kept_alive(head: &str) {
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "a parked connection must stay keep-alive: {head}");
}

const GET: &[u8] = b"GET /echo HTTP/1.1\r\nhost: park\r\n\r\n";

#[tokio::test]
async fn a_parked_connection_serves_whole_split_and_pipelined_requests() {
    let host = Host::start(echo(&[])).await;
    let mut stream = TcpStream::connect(host.addr()).await.unwrap();
    stream.write_all(GET).await.unwrap();
    assert_kept_alive(&response(&mut stream).await.0);
    until_parked(&host, 1).await;

    // A head split across the wake-up: its first byte wakes the connection.
    stream.write_all(b"G").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(&GET[1..]).await.unwrap();
    assert_kept_alive(&response(&mut stream).await.0);
    until_parked(&host, 1).await;

    // Two requests in one write, then a request with a body.
    stream.write_all(&[GET, GET].concat()).await.unwrap();
    let mut pending = Vec::new();
    assert_kept_alive(&next_response(&mut stream, &mut pending).await.0);
    assert_kept_alive(&next_response(&mut stream, &mut pending).await.0);
    assert!(pending.is_empty(), "bytes past the second response");
    until_parked(&host, 1).await;
    let post = b"POST /echo HTTP/1.1\r\nhost: park\r\ncontent-length: 11\r\n\r\nhello, park";
    stream.write_all(post).await.unwrap();
    assert_kept_alive(&response(&mut stream).await.0);
    let (open, _) = gauges(&host).await;
    assert!(open >= 1, "the connection is counted open");
    drop(stream);
    until_parked(&host, 0).await;
}

#[tokio::test]
async fn a_connection_that_never_sends_waits_parked_and_is_served_when_it_does() {
    let host = Host::start(echo(&[])).await;
    let mut stream = TcpStream::connect(host.addr()).await.unwrap();
    until_parked(&host, 1).await;
    stream.write_all(GET).await.unwrap();
    assert_kept_alive(&response(&mut stream).await.0);
}

#[tokio::test]
async fn a_parked_connection_still_idles_out_without_an_answer() {
    let host = Host::start(echo(&[("idle_timeout", "2s")])).await;
    let mut stream = TcpStream::connect(host.addr()).await.unwrap();
    stream.write_all(GET).await.unwrap();
    response(&mut stream).await;
    until_parked(&host, 1).await;
    let mut rest = Vec::new();
    let started = Instant::now();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await.expect("closed within the idle timeout");
    assert!(read.is_ok() && rest.is_empty(), "an idle close sends nothing: {read:?} {rest:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    until_parked(&host, 0).await;
}

#[tokio::test]
async fn parked_connections_close_at_once_when_the_host_shuts_down() {
    let mut host = Host::start(echo(&[("shutdown_timeout", "30s")])).await;
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(host.addr()).await.unwrap();
        stream.write_all(GET).await.unwrap();
        response(&mut stream).await;
        held.push(stream);
    }
    until_parked(&host, 50).await;
    let started = std::time::Instant::now();
    host.terminate();
    let status = host.wait_for_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}; logs:\n{}", host.logs());
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown waited {:?} on idle connections", started.elapsed());
    for mut stream in held {
        let mut rest = Vec::new();
        assert!(matches!(stream.read_to_end(&mut rest).await, Ok(0) | Err(_)), "closed without an answer: {rest:?}");
    }
}

#[tokio::test]
async fn a_tls_connection_is_parked_and_woken_and_http2_is_never_parked() {
    let ca = Ca::new("test CA");
    let host = with_site(Host::builder(tls_manifest(SITE_TLS, "")), &ca.server(&["localhost"])).start();
    host.wait_ready().await;
    let tls_addr = host.addrs[1];
    let mut h1 = TlsConn::connect(tls_addr, "localhost", ca.client_config(&[b"http/1.1"], BOTH, None)).await.unwrap();
    assert_eq!(h1.get("/echo").await.unwrap().status, 200);
    until_parked(&host, 1).await;
    assert_eq!(h1.get("/echo").await.unwrap().status, 200, "woken under TLS");
    let mut h2 = TlsConn::connect(tls_addr, "localhost", ca.client_config(&[b"h2"], BOTH, None)).await.unwrap();
    assert_eq!(h2.get("/echo").await.unwrap().status, 200);
    until_parked(&host, 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gauges(&host).await.1, 1, "only the HTTP/1.1 connection is parked");
    assert_eq!(h2.get("/echo").await.unwrap().status, 200);
    assert_eq!(h1.get("/echo").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_parked_connection_upgrades_into_a_tunnel() {
    let manifest = Manifest::new()
        .plugin("echo", "covet-async-plugin", serde_json::json!({ "mode": "echo" }))
        .plugin("plain", "covet-async-plugin", serde_json::json!({ "mode": "download", "bytes": 5 }))
        .route(Route::new("/tunnel").handler("echo"))
        .route(Route::new("/plain").handler("plain"));
    let host = Host::start(manifest).await;
    let mut stream = TcpStream::connect(host.addr()).await.unwrap();
    stream.write_all(b"GET /plain HTTP/1.1\r\nhost: park\r\n\r\n").await.unwrap();
    let (head, body) = response(&mut stream).await;
    assert_kept_alive(&head);
    assert_eq!(body, b"xxxxx");
    until_parked(&host, 1).await;
    stream.write_all(b"GET /tunnel HTTP/1.1\r\nhost: park\r\nconnection: upgrade\r\nupgrade: echo-protocol\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tokio::time::timeout(PATIENCE, stream.read_u8()).await.expect("a head in time").expect("a head"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // A tunnel is never parked, however long it is quiet.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gauges(&host).await.1, 0, "the tunnel is not parked");
    stream.write_all(b"through the tunnel").await.unwrap();
    let mut echoed = [0u8; 18];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut echoed)).await.expect("echoed in time").unwrap();
    assert_eq!(&echoed, b"through the tunnel");
}
