//! Connection management beyond `limits.rs`: HTTP/2 stream limits and
//! keep-alive pings spoken frame by frame over a raw TCP socket (so the test
//! controls what a well-behaved client library would hide: opening more
//! streams than allowed, not answering pings), and a slowloris swarm that
//! is cut off while a normal client is served. Every test runs on whichever
//! backend `COVET_IO` selects.

use std::time::{Duration, Instant};

use covet_e2e::{Closed, Host, Manifest, RawConn, Route};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::common::{PATIENCE, labelled};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

/// One HTTP/2 frame.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// A hand-driven HTTP/2 (h2c, prior knowledge) client connection.
struct H2 {
    stream: TcpStream,
}

impl H2 {
    /// Connects, sends the preface and empty SETTINGS, and acknowledges the
    /// server's SETTINGS, which it returns.
    async fn handshake(host: &Host) -> (H2, Frame) {
        let stream = TcpStream::connect(host.addr()).await.expect("connect");
        let mut h2 = H2 { stream };
        h2.stream.write_all(PREFACE).await.unwrap();
        h2.send(SETTINGS, 0, 0, &[]).await;
        let settings = loop {
            let frame = h2.next(PATIENCE).await.expect("the server's SETTINGS");
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                break frame;
            }
        };
        h2.send(SETTINGS, ACK, 0, &[]).await;
        (h2, settings)
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut frame = len.to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags]);
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// `GET path` on `stream` (no body).
    async fn get(&mut self, stream: u32, path: &str) {
        // HPACK: :method GET, :scheme http (static indices 2, 6), then
        // :path and :authority as literals without indexing (name indices 4, 1).
        let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
        block.extend_from_slice(path.as_bytes());
        block.extend_from_slice(&[0x01, 10]);
        block.extend_from_slice(b"covet.test");
        self.send(HEADERS, END_STREAM | END_HEADERS, stream, &block).await;
    }

    /// The next frame, or `None` at EOF or when none arrives within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Frame> {
        let mut head = [0u8; 9];
        timeout(limit, self.stream.read_exact(&mut head)).await.ok()?.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        timeout(limit, self.stream.read_exact(&mut payload)).await.ok()?.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame { kind: head[3], flags: head[4], stream, payload })
    }
}

/// The value of setting `id` in a SETTINGS payload.
fn setting(frame: &Frame, id: u16) -> Option<u32> {
    frame.payload.chunks_exact(6).find(|s| u16::from_be_bytes([s[0], s[1]]) == id).map(|s| {
        u32::from_be_bytes([s[2], s[3], s[4], s[5]])
    })
}

fn slow_and_echo(limits: &[(&str, &str)]) -> Manifest {
    let manifest = limits.iter().fold(Manifest::new(), |m, (k, v)| m.limit(k, v));
    manifest
        .plugin("slow", "covet-test-plugin", json!({ "label": "slow", "sleep_ms": 1000 }))
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/slow").handler("slow"))
        .route(Route::new("/echo").handler("echo"))
}

#[tokio::test]
async fn h2_streams_over_max_concurrent_streams_are_refused_and_the_rest_served() {
    let host = Host::start(slow_and_echo(&[("h2_max_concurrent_streams", "2")])).await;
    let (mut h2, settings) = H2::handshake(&host).await;
    assert_eq!(setting(&settings, SETTINGS_MAX_CONCURRENT_STREAMS), Some(2), "advertised: {settings:?}");

    for stream in [1, 3, 5] {
        h2.get(stream, "/slow").await;
    }
    let (mut refused, mut finished) = (Vec::new(), Vec::new());
    while finished.len() < 2 {
        let frame = h2.next(PATIENCE).await.unwrap_or_else(|| panic!("stalled; refused {refused:?}, done {finished:?}"));
        match frame.kind {
            RST_STREAM => refused.push((frame.stream, u32::from_be_bytes(frame.payload[..4].try_into().unwrap()))),
            HEADERS | DATA if frame.flags & END_STREAM != 0 => finished.push(frame.stream),
            GOAWAY => panic!("the server gave up the connection: {frame:?}"),
            _ => {}
        }
    }
    assert_eq!(refused, [(5, REFUSED_STREAM)], "the third stream is refused, the others not");
    finished.sort();
    assert_eq!(finished, [1, 3], "the two allowed streams complete");
}

#[tokio::test]
async fn h2_peer_that_stops_answering_pings_is_dropped() {
    let host = Host::start(slow_and_echo(&[("h2_keepalive_interval", "1s")])).await;
    let (mut h2, _) = H2::handshake(&host).await;
    let started = Instant::now();
    let mut pinged = false;
    let closed = loop {
        match h2.next(PATIENCE).await {
            // EOF, or (after PATIENCE) nothing more: still open.
            None => break started.elapsed() < PATIENCE,
            Some(frame) if frame.kind == PING && frame.flags & ACK == 0 => pinged = true,
            Some(_) if started.elapsed() > PATIENCE => break false,
            Some(_) => {}
        }
    };
    assert!(pinged, "the server never pinged within {PATIENCE:?}");
    assert!(closed, "a peer that never answers pings was kept");
}

#[tokio::test]
async fn h2_peer_that_answers_pings_is_kept_and_served() {
    let host = Host::start(slow_and_echo(&[("h2_keepalive_interval", "1s")])).await;
    let (mut h2, _) = H2::handshake(&host).await;
    let mut pings = 0;
    // Three pings answered: a silent peer is dropped after the second interval.
    while pings < 3 {
        let frame = h2.next(PATIENCE).await.expect("the connection stays open while pings are answered");
        if frame.kind == PING && frame.flags & ACK == 0 {
            pings += 1;
            h2.send(PING, ACK, 0, &frame.payload).await;
        }
    }
    h2.get(1, "/echo").await;
    loop {
        let frame = h2.next(PATIENCE).await.expect("a response on the kept connection");
        if frame.kind == HEADERS && frame.stream == 1 {
            break;
        }
    }
}

#[tokio::test]
async fn h2_keepalive_of_0s_turns_pings_off() {
    let host = Host::start(slow_and_echo(&[("h2_keepalive_interval", "0s")])).await;
    let (mut h2, _) = H2::handshake(&host).await;
    // With pings every 1 s (the previous tests) a ping arrives well within this.
    while let Some(frame) = h2.next(Duration::from_millis(2500)).await {
        assert_ne!(frame.kind, PING, "pinged although pings are off");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_swarm_is_cut_after_header_read_timeout_while_a_normal_client_is_served() {
    let host = Host::start(slow_and_echo(&[("header_read_timeout", "1s")])).await;
    let mut attackers = Vec::new();
    for _ in 0..20 {
        let mut conn = RawConn::connect(host.addr()).await;
        conn.send("GET /echo HTTP/1.1\r\nhost: covet.test\r\nx-slow: ").await.unwrap();
        attackers.push(tokio::spawn(async move {
            // One header byte every 300 ms until the server hangs up.
            let started = Instant::now();
            while started.elapsed() < PATIENCE {
                if conn.send("v").await.is_err() {
                    return true;
                }
                if let Closed::After(_) = conn.closed_within(Duration::from_millis(300)).await {
                    return true;
                }
            }
            false
        }));
    }
    let client = host.http1();
    let mut served = 0;
    while attackers.iter().any(|a| !a.is_finished()) {
        let reply = client.get("/echo").await.expect("a normal client is served during the attack");
        assert_eq!(reply.status, 200, "{}", reply.text());
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for attacker in attackers {
        assert!(attacker.await.unwrap(), "a slowloris connection trickling a header was never cut off");
    }
    assert!(served > 0, "no request was made during the attack");
}
