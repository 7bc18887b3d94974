//! Slow clients over real sockets, while a normal client is served
//! throughout: a slowloris swarm (heads trickled a byte at a time) is cut by
//! `header_read_timeout`; a request body paused (HTTP/1.1 and HTTP/2) or
//! trickled below `body_min_rate` gets 408 by `body_read_timeout`; clients that read a large
//! streamed response a few bytes a second do not make the host buffer it
//! (RSS bounded), and one that stops reading is cut by `send_timeout`.
//! Every test runs on whichever backend `COVET_IO` selects.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use covet_e2e::{Closed, Host, RawConn, get_request};
use http::Request;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{io::AsyncReadExt, net::TcpSocket, task::JoinSet};

use crate::{
    common::PATIENCE,
    h2_attacks::{
        self,
        resources::{Bystander, Meter},
    },
};

/// A POST to `/echo` whose head declares `len` body bytes.
fn post_head(len: usize) -> String {
    format!("POST /echo HTTP/1.1\r\nhost: covet.test\r\ncontent-length: {len}\r\n\r\n")
}

/// Writes `byte` every `every` until the server closes the connection (or
/// `PATIENCE` passes). `Some(bytes)`: closed, after sending `bytes`
/// (empty: no answer); `None`: still open.
async fn trickle(conn: &mut RawConn, byte: &[u8], every: Duration) -> Option<Vec<u8>> {
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < PATIENCE {
        let _ = conn.send(byte).await; // fails once the server has closed
        match conn.read_some(every).await {
            None => {}
            Some(bytes) if bytes.is_empty() => return Some(answer),
            Some(bytes) => answer.extend(bytes),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_swarm_is_cut_off_without_an_answer_while_others_are_served() {
    let host = Host::start(h2_attacks::manifest(&[("header_read_timeout", "1s")])).await;
    let bystander = Bystander::start(&host, "/echo");
    let mut swarm = JoinSet::new();
    for _ in 0..50 {
        let addr = host.addr();
        swarm.spawn(async move {
            let mut conn = RawConn::connect(addr).await;
            conn.send("GET /echo HTTP/1.1\r\nhost: covet.test\r\nx-slow: ").await.expect("a head begun");
            trickle(&mut conn, b"v", Duration::from_millis(200)).await
        });
    }
    while let Some(joined) = swarm.join_next().await {
        let answer = joined.expect("a slowloris client").expect("a head trickled a byte every 200 ms was never cut off");
        assert!(answer.is_empty(), "cut off with an answer: {}", String::from_utf8_lossy(&answer));
    }
    let served = bystander.finish().await;
    println!("hardening | slowloris x50 | all cut by header_read_timeout, no answer | bystander served {served}, failed 0");
}

#[tokio::test]
async fn a_paused_request_body_gets_408_and_the_connection_closes() {
    let host = Host::start(h2_attacks::manifest(&[("body_read_timeout", "1s")])).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(post_head(1000) + &"b".repeat(10)).await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!(resp.status, 408, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["error"]["code"], "REQUEST_TIMEOUT");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(matches!(conn.closed_within(PATIENCE).await, Closed::After(_)), "the connection stayed open");
}

/// A request body fed through a channel: the test decides what is sent, and
/// when (nothing more, here).
struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Fed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn a_paused_request_body_over_http2_gets_408() {
    let host = Host::start(h2_attacks::manifest(&[("body_read_timeout", "1s")])).await;
    let client = Client::builder(TokioExecutor::new()).http2_only(true).build_http::<Fed>();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Bytes::from_static(b"0123456789")).await.unwrap();
    let req = Request::post(format!("http://{}/echo", host.addr())).header("content-length", "1000").body(Fed(rx)).unwrap();
    let resp = tokio::time::timeout(PATIENCE, client.request(req)).await.expect("an answer in time").expect("a response");
    assert_eq!(resp.status(), 408);
    let body = resp.into_body().collect().await.expect("the body").to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["error"]["code"], "REQUEST_TIMEOUT", "{body}");
    drop(tx); // held until now: the body is never finished
}

#[tokio::test]
async fn a_request_body_trickled_under_body_min_rate_gets_408() {
    let limits = [("body_read_timeout", "1s"), ("body_min_rate", "1KiB")];
    let host = Host::start(h2_attacks::manifest(&limits)).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(post_head(100_000)).await.unwrap();
    // Ten bytes a second: never a pause of body_read_timeout, far under the rate.
    let started = std::time::Instant::now();
    let resp = loop {
        assert!(started.elapsed() < PATIENCE, "the trickle was never cut off");
        if conn.send("b").await.is_err() {
            break conn.response(PATIENCE).await;
        }
        if let Some(resp) = conn.try_response(Duration::from_millis(100)).await {
            break resp.expect("an answer");
        }
    };
    assert_eq!(resp.status, 408, "{}", String::from_utf8_lossy(&resp.body));
    let reason = resp.json()["error"]["details"]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("bytes/s"), "cut for its rate, not a pause: {reason:?}");
}

#[tokio::test]
async fn a_request_body_with_short_pauses_is_served() {
    let host = Host::start(h2_attacks::manifest(&[("body_read_timeout", "2s")])).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(post_head(20) + "0123456789").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.send("0123456789").await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

/// Connects with a 4 KiB receive buffer, so the kernel does not absorb the
/// response for the client, and asks for the 8 MiB download.
async fn slow_reader(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, get_request("/download").as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_slow_readers_of_a_large_response_do_not_make_the_host_buffer_it() {
    let host = Host::start(h2_attacks::manifest(&[])).await;
    let meter = Meter::start(&host);
    let bystander = Bystander::start(&host, "/echo");
    let mut readers = JoinSet::new();
    for _ in 0..50 {
        let addr = host.addr();
        readers.spawn(async move {
            let mut stream = slow_reader(addr).await;
            let (mut got, mut buf) = (0, [0u8; 64]);
            // 64 bytes every 200 ms (320 B/s) for 3 s.
            for _ in 0..15 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            got
        });
    }
    let mut got = 0;
    while let Some(joined) = readers.join_next().await {
        got += joined.expect("a slow reader");
    }
    let cost = meter.stop().await;
    let served = bystander.finish().await;
    assert!(got > 0, "the slow readers got nothing");
    h2_attacks::judge("HTTP/1 slow readers x50 of an 8 MiB stream", &cost, served, &format!("{got} bytes read in all"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_by_send_timeout() {
    let host = Host::start(h2_attacks::manifest(&[("send_timeout", "1s")])).await;
    let mut stream = slow_reader(host.addr()).await;
    // Stops reading for longer than send_timeout (and the close that follows).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => got += n,
            Err(_) => break false,
        }
    };
    assert!(ended, "the connection stayed open ({got} bytes)");
    assert!(got < 8 << 20, "the whole download arrived ({got} bytes): the stalled send was not cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_read_at_full_speed_is_not_cut_by_a_short_send_timeout() {
    let host = Host::start(h2_attacks::manifest(&[("send_timeout", "1s")])).await;
    for client in [covet_e2e::Client::http1(host.addr()), covet_e2e::Client::http2(host.addr())] {
        for _ in 0..3 {
            let reply = client.get("/download").await.expect("the download");
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body.len(), 8 << 20, "{:?}: the whole download", reply.version);
        }
    }
}
