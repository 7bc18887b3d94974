//! A wasi:http component's response body streams: the client reads what
//! the component wrote while the component is still running, a 50 MiB body
//! passes with the host's memory bounded, server-sent events outlive the
//! per-call time limit, a component that stops writing is cut off, a trap
//! after the head breaks the body off, and a client that goes away drops
//! the instance. The fixture is `wasm-plugins/fixtures/stream`.

use std::time::Duration;

use bytes::Bytes;
use covet_e2e::Host;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
    time::timeout,
};

use super::Gateway;
use crate::common::PATIENCE;

/// A host with the stream fixture on `/s/…`, under `keys` (limits, capabilities).
async fn stream_host(keys: Value) -> Host {
    Gateway::new().wasm_with("stream", "covet_wasm_stream", json!(null), keys).route("/s/{*rest}", &[], "stream").start().await
}

/// A GET over its own HTTP/1.1 connection: the head, the body read frame by
/// frame, and the connection's task.
async fn get(host: &Host, path: &str) -> (http::response::Parts, Incoming, JoinHandle<()>) {
    let tcp = TcpStream::connect(host.addr()).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(path).header("host", "t").body(Empty::<Bytes>::new()).expect("request");
    let resp = timeout(PATIENCE, sender.send_request(req)).await.expect("a head in time").expect("a response");
    let (parts, body) = resp.into_parts();
    (parts, body, conn)
}

/// Reads `body` until `text` holds `needle`; panics past PATIENCE.
async fn read_until(body: &mut Incoming, text: &mut String, needle: &str) {
    while !text.contains(needle) {
        let frame = timeout(PATIENCE, body.frame()).await.unwrap_or_else(|_| panic!("{needle:?} never came; got {text:?}"));
        let frame = frame.unwrap_or_else(|| panic!("the body ended before {needle:?}; got {text:?}")).expect("a body frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

/// Reads `body` to its end (panics on an error or past PATIENCE).
async fn read_to_end(body: &mut Incoming, text: &mut String) {
    while let Some(frame) = timeout(PATIENCE, body.frame()).await.expect("the body ends in time") {
        if let Ok(data) = frame.expect("a body frame").into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

/// Reads the rest of `body`, which must break off with an error.
async fn read_to_error(body: &mut Incoming) {
    loop {
        match timeout(PATIENCE, body.frame()).await.expect("the body breaks off in time") {
            Some(Ok(_)) => continue,
            Some(Err(_)) => return,
            None => panic!("the body ended cleanly; it should have been cut off"),
        }
    }
}

/// One request's worth of HTTP server on 127.0.0.1:0: tells `arrived` when
/// the request head is in, answers `200 go` when `release` fires, and tells
/// `closed` if the peer closes the connection first.
struct Release {
    addr: String,
    arrived: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
    closed: oneshot::Receiver<()>,
}

async fn release_server() -> Release {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (arrived_tx, arrived) = oneshot::channel();
    let (release, release_rx) = oneshot::channel::<()>();
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = arrived_tx.send(());
        tokio::select! {
            _ = release_rx => {
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\ngo").await;
            }
            _ = socket.read(&mut buf) => {
                let _ = closed_tx.send(());
            }
        }
    });
    Release { addr, arrived, release, closed }
}

fn granted(addr: &str) -> Value {
    json!({ "capabilities": { "outbound_http": [addr] }, "limits": { "timeout": "30s" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_the_first_chunk_before_the_component_finishes() {
    let server = release_server().await;
    let host = stream_host(granted(&server.addr)).await;
    let (parts, mut body, _conn) = get(&host, &format!("/s/wait?release={}/go", server.addr)).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers.get("content-type").unwrap(), "text/plain");
    assert!(parts.headers.get("content-length").is_none(), "a streamed body has no length: {parts:?}");
    let mut text = String::new();
    read_until(&mut body, &mut text, "first|").await;
    // The component is still blocked on the release request: it cannot have
    // written more, nor returned.
    timeout(PATIENCE, server.arrived).await.expect("the component asked for its release").unwrap();
    assert_eq!(text, "first|", "nothing after the first chunk yet");
    server.release.send(()).unwrap();
    read_to_end(&mut body, &mut text).await;
    assert_eq!(text, "first|second (200 go)|last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_drops_the_instance() {
    let server = release_server().await;
    let host = stream_host(granted(&server.addr)).await;
    let (_parts, mut body, conn) = get(&host, &format!("/s/wait?release={}/go", server.addr)).await;
    let mut text = String::new();
    read_until(&mut body, &mut text, "first|").await;
    timeout(PATIENCE, server.arrived).await.expect("the component asked for its release").unwrap();
    drop(body);
    conn.abort();
    // The instance held the outbound request: dropping it closes that connection.
    let closed = timeout(PATIENCE, server.closed).await;
    assert!(matches!(closed, Ok(Ok(()))), "the component's outbound connection stayed open after the client left");
    let reply = host.http1().get("/s/sse?events=1").await.expect("still serving");
    assert_eq!(reply.text(), "data: event 0\n\n");
}

/// The host's resident memory in bytes.
fn rss(host: &Host) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).expect("/proc status");
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("VmRSS").trim().trim_end_matches(" kB").trim();
    kib.parse::<u64>().expect("VmRSS in kB") * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_body_streams_with_the_host_memory_bounded() {
    const SIZE: usize = 50 << 20;
    let host = stream_host(json!({ "limits": { "timeout": "30s" } })).await;
    let warm = host.http1().get("/s/bytes?n=1048576").await.expect("warm-up");
    assert_eq!(warm.body.len(), 1 << 20);
    let before = rss(&host);
    let (parts, mut body, _conn) = get(&host, &format!("/s/bytes?n={SIZE}")).await;
    assert_eq!(parts.status, 200);
    let (mut read, mut peak, mut paused) = (0usize, 0u64, false);
    let mut first = Vec::new();
    while let Some(frame) = timeout(PATIENCE, body.frame()).await.expect("the body keeps coming") {
        let data = frame.expect("a body frame").into_data().unwrap_or_default();
        if first.len() < 26 {
            first.extend_from_slice(&data[..data.len().min(26 - first.len())]);
        }
        read += data.len();
        if read >= 1 << 20 && !paused {
            // A slow reader: a host that buffered would now hold the rest.
            tokio::time::sleep(Duration::from_millis(500)).await;
            paused = true;
        }
        if read % (4 << 20) < data.len() || !paused {
            peak = peak.max(rss(&host));
        }
    }
    peak = peak.max(rss(&host));
    assert_eq!(read, SIZE, "the whole body arrived");
    assert_eq!(first, b"abcdefghijklmnopqrstuvwxyz");
    let grew = peak.saturating_sub(before);
    eprintln!("host RSS {} MiB before, {} MiB at most while streaming {} MiB", before >> 20, peak >> 20, SIZE >> 20);
    assert!(grew < 16 << 20, "the host's RSS grew by {} MiB while streaming {} MiB", grew >> 20, SIZE >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_stream_past_the_per_call_time_limit() {
    // 8 events 150 ms apart take over a second; the limit is on each gap.
    let host = stream_host(json!({ "limits": { "timeout": "700ms" } })).await;
    let (parts, mut body, _conn) = get(&host, "/s/sse?events=8&gap_ms=150").await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers.get("content-type").unwrap(), "text/event-stream");
    let mut text = String::new();
    read_until(&mut body, &mut text, "data: event 0\n\n").await;
    assert!(!text.contains("event 7"), "the first event arrives on its own: {text:?}");
    read_to_end(&mut body, &mut text).await;
    let expected: String = (0..8).map(|i| format!("data: event {i}\n\n")).collect();
    assert_eq!(text, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_stops_writing_is_cut_off_after_its_time_limit() {
    let host = stream_host(json!({ "limits": { "timeout": "300ms" } })).await;
    let (parts, mut body, _conn) = get(&host, "/s/stall").await;
    assert_eq!(parts.status, 200);
    let mut text = String::new();
    read_until(&mut body, &mut text, "first|").await;
    read_to_error(&mut body).await;
    let logged = host.log_line(&["stream", "cut off", "wrote nothing for 300 ms"]).await;
    assert!(logged.is_some(), "logs:\n{}", host.logs());
    let reply = host.http1().get("/s/sse?events=2").await.expect("still serving");
    assert_eq!(reply.text(), "data: event 0\n\ndata: event 1\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_after_the_head_breaks_the_body_off() {
    let host = stream_host(json!({})).await;
    let (parts, mut body, _conn) = get(&host, "/s/trap").await;
    assert_eq!(parts.status, 200, "the head was sent before the trap");
    read_to_error(&mut body).await;
    let logged = host.log_line(&["stream", "cut off", "trap"]).await;
    assert!(logged.is_some(), "logs:\n{}", host.logs());
}
