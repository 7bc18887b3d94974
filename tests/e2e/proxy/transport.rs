//! Transport to the endpoints (TLS is in `tls.rs`): an HTTP/2 upstream over
//! h2c (`protocol: http2`); an endpoint given by DNS name (resolved, and its
//! name sent as `host` with `host: upstream`); 100 MB up and 100 MB down through the proxy with
//! the host's peak RSS growing far less than the body, the upstream (or the
//! client) counting exactly 100 MB; a client that stops reading holds the
//! upstream back (back-pressure across both hops); `expect: 100-continue`
//! gets its `100 Continue` before the client sends the body.

use std::time::{Duration, Instant};

use bytes::Bytes;
use covet_e2e::{Filler, Host, RawConn, TestUpstream};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use serde_json::{Value, json};

use super::{gateway, get, manifest, over};

/// The size of the upload and the download.
const HUNDRED_MB: u64 = 100 * 1000 * 1000;
/// How much the host's peak RSS may grow moving [`HUNDRED_MB`] (KiB).
const RSS_BOUND_KIB: u64 = 60 * 1024;

#[tokio::test]
async fn an_http2_upstream_is_spoken_to_over_h2c() {
    let up = TestUpstream::start("h2").await;
    let host = gateway(&[&up], json!({ "protocol": "http2" })).await;
    let reply = get(&host, "/h2?x=1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["version"], "HTTP/2.0", "{}", reply.text());
    assert_eq!(reply.json()["uri"].as_str().map(|u| u.ends_with("/h2?x=1")), Some(true), "{}", reply.text());
    let plain = gateway(&[&up], json!({})).await;
    assert_eq!(get(&plain, "/h1").await.json()["version"], "HTTP/1.1", "http1 is the default");
}

#[tokio::test]
async fn an_endpoint_given_by_name_is_resolved_and_named_in_host() {
    let up = TestUpstream::start("named").await;
    let name = format!("localhost:{}", up.addr().port());
    let yaml = manifest(json!({ "endpoints": [name] }), json!({ "host": "upstream" }), "/{*rest}");
    let host = Host::start(yaml).await;
    let reply = get(&host, "/named").await;
    assert_eq!((reply.status.as_u16(), reply.header("x-upstream")), (200, Some("named")), "{}", reply.text());
    assert_eq!(reply.json()["headers"]["host"], name.as_str(), "the configured name, not the address");
    let status = super::status(&host).await;
    let endpoints = status["endpoints"].as_array().expect("endpoints");
    let resolved = endpoints.iter().find(|e| e["address"] == up.endpoint().as_str());
    assert_eq!(resolved.map(|e| e["host"].clone()), Some(json!("localhost")), "{status}");
}

/// `VmHWM` (the peak RSS) of process `pid`, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_streams_through_in_bounded_memory() {
    let up = TestUpstream::start("sink").await;
    let yaml = manifest(over(&[&up], json!({})), json!({}), "/{*rest}");
    // limits.max_body applies to streamed bodies too (docs/streaming.md).
    let host = Host::start(yaml.replacen("log:\n", "limits:\n  max_body: 200000000\nlog:\n", 1)).await;
    assert_eq!(get(&host, "/warm").await.status, 200);
    let before = peak_rss_kib(host.pid());
    let client = Client::builder(TokioExecutor::new()).build_http::<Filler>();
    let request = http::Request::post(format!("http://{}/upload", host.addr()))
        .header("content-length", HUNDRED_MB)
        .body(Filler::new(HUNDRED_MB))
        .unwrap();
    let response = client.request(request).await.unwrap_or_else(|e| panic!("{e:?}\n{}", host.logs()));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-received"], HUNDRED_MB.to_string().as_str(), "the upstream got it all");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["received"], HUNDRED_MB);
    assert_eq!(up.received(), HUNDRED_MB);
    let grown = peak_rss_kib(host.pid()).saturating_sub(before);
    eprintln!("a 100 MB upload through the proxy grew the host's peak RSS by {grown} KiB");
    assert!(grown < RSS_BOUND_KIB, "peak RSS grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_download_streams_through_in_bounded_memory() {
    let up = TestUpstream::start("source").await;
    let host = gateway(&[&up], json!({})).await;
    assert_eq!(get(&host, "/warm").await.status, 200);
    let before = peak_rss_kib(host.pid());
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
    let request =
        http::Request::get(format!("http://{}/bytes/{HUNDRED_MB}", host.addr())).body(Default::default()).unwrap();
    let response = client.request(request).await.unwrap_or_else(|e| panic!("{e:?}\n{}", host.logs()));
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (mut total, mut intact) = (0u64, true);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the body streams").into_data() {
            total += data.len() as u64;
            intact &= data.iter().all(|&b| b == b'x');
        }
    }
    assert_eq!(total, HUNDRED_MB);
    assert!(intact, "the bytes arrive as sent");
    let grown = peak_rss_kib(host.pid()).saturating_sub(before);
    eprintln!("a 100 MB download through the proxy grew the host's peak RSS by {grown} KiB");
    assert!(grown < RSS_BOUND_KIB, "peak RSS grew by {grown} KiB");
}

/// What `count` settles at: the same value over five looks 50 ms apart (at most 10 s).
async fn settled(count: impl Fn() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut last, mut same) = (u64::MAX, 0);
    while same < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = count();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_the_upstream_back() {
    let up = TestUpstream::start("source").await;
    let host = gateway(&[&up], json!({})).await;
    let stream = tokio::net::TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::get(format!("/bytes/{HUNDRED_MB}"))
        .header("host", "gateway.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("a response head");
    assert_eq!(response.status(), 200);
    // The client reads nothing yet: the upstream can only fill the buffers on the way.
    let held = settled(|| up.produced()).await;
    eprintln!("with the client paused the upstream produced {} KiB of {} MB", held >> 10, HUNDRED_MB / 1_000_000);
    assert!(held < HUNDRED_MB / 2, "the upstream produced {held} bytes for a client that read none");
    let mut body = response.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        total += frame.expect("the body streams on").into_data().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(total, HUNDRED_MB, "once the client reads, everything arrives");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let up = TestUpstream::start("sink").await;
    let host = gateway(&[&up], json!({})).await;
    let mut conn = RawConn::connect(host.addr()).await;
    let head = "POST /continue HTTP/1.1\r\nhost: gateway.test\r\ncontent-length: 11\r\nexpect: 100-continue\r\n\r\n";
    conn.send(head).await.unwrap();
    let interim = conn.read_some(Duration::from_secs(10)).await.expect("an interim answer before the body");
    let interim = String::from_utf8_lossy(&interim).into_owned();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    conn.send("hello proxy").await.unwrap();
    let reply = conn.response(Duration::from_secs(10)).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["received"], 11);
    assert_eq!(up.received(), 11);
}
