//! `limits:`: body and header sizes answer 413/431 with the structured body;
//! slow heads, idle connections and excess connections are cut off or held.

use std::time::{Duration, Instant};

use covet_e2e::{Closed, Host, Manifest, RawConn, RawResponse, Route, get_request};
use http::Method;
use serde_json::json;

use crate::common::{PATIENCE, assert_problem, labelled};

/// An echo route under the given limits.
fn echo_with_limits(limits: &[(&str, &str)]) -> Manifest {
    let manifest = limits.iter().fold(Manifest::new(), |m, (k, v)| m.limit(k, v));
    manifest.plugin("echo", "covet-test-plugin", labelled("echo")).route(Route::new("/echo").handler("echo"))
}

/// A chunked POST to `/echo` with `chunks`, written by hand.
fn chunked_post(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = b"POST /echo HTTP/1.1\r\nhost: covet.test\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn assert_raw_problem(resp: &RawResponse, status: u16, code: &str) {
    assert_eq!(resp.status, status, "body: {}", String::from_utf8_lossy(&resp.body));
    let body = resp.json();
    assert_eq!(body["error"]["code"], code);
    assert_eq!(body["error"]["request_id"].as_str(), resp.header("x-request-id"));
}

#[tokio::test]
async fn body_over_max_body_with_content_length_is_413() {
    let host = Host::start(echo_with_limits(&[("max_body", "16")])).await;
    let client = host.http1();
    let reply = client.send(Method::POST, "/echo", &[], vec![b'a'; 17]).await.unwrap();
    let error = assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(error["details"]["max_body"], 16);
    let fits = client.send(Method::POST, "/echo", &[], vec![b'a'; 16]).await.unwrap();
    assert_eq!(fits.status, 200, "{}", fits.text());
    assert_eq!(fits.json()["body_len"], 16);
}

#[tokio::test]
async fn body_over_max_body_over_http2_is_413() {
    let host = Host::start(echo_with_limits(&[("max_body", "16")])).await;
    let reply = host.http2().send(Method::POST, "/echo", &[], vec![b'a'; 17]).await.unwrap();
    assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn chunked_body_over_max_body_is_413() {
    let host = Host::start(echo_with_limits(&[("max_body", "16")])).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(chunked_post(&[&[b'a'; 10], &[b'b'; 10]])).await.unwrap();
    assert_raw_problem(&conn.response(PATIENCE).await, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn chunked_body_within_max_body_reaches_the_plugin() {
    let host = Host::start(echo_with_limits(&[("max_body", "16")])).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(chunked_post(&[&[b'a'; 8], &[b'b'; 8]])).await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["body_len"], 16);
}

#[tokio::test]
async fn too_many_headers_is_431() {
    let host = Host::start(echo_with_limits(&[("max_headers", "10")])).await;
    let names: Vec<String> = (0..12).map(|i| format!("x-extra-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let reply = host.http1().send(Method::GET, "/echo", &headers, "").await.unwrap();
    let error = assert_problem(&reply, 431, "HEADERS_TOO_LARGE");
    assert_eq!(error["details"], json!({ "limit": "header count", "max": 10 }));
    let few = host.http1().send(Method::GET, "/echo", &headers[..4], "").await.unwrap();
    assert_eq!(few.status, 200, "{}", few.text());
}

#[tokio::test]
async fn too_many_header_bytes_is_431() {
    let host = Host::start(echo_with_limits(&[("max_header_bytes", "1KiB")])).await;
    let big = "v".repeat(2000);
    let reply = host.http1().send(Method::GET, "/echo", &[("x-big", &big)], "").await.unwrap();
    let error = assert_problem(&reply, 431, "HEADERS_TOO_LARGE");
    assert_eq!(error["details"], json!({ "limit": "header bytes", "max": 1024 }));
    let small = host.http1().send(Method::GET, "/echo", &[("x-small", "v")], "").await.unwrap();
    assert_eq!(small.status, 200, "{}", small.text());
}

#[tokio::test]
async fn too_many_header_bytes_over_http2_is_431() {
    let host = Host::start(echo_with_limits(&[("max_header_bytes", "1KiB")])).await;
    let big = "v".repeat(1500);
    let reply = host.http2().send(Method::GET, "/echo", &[("x-big", &big)], "").await.unwrap();
    assert_problem(&reply, 431, "HEADERS_TOO_LARGE");
}

/// Opens a connection and waits a moment before sending anything, as a
/// slowloris client does (the host's timers are then already running).
async fn connect_then_pause(host: &Host) -> RawConn {
    let conn = RawConn::connect(host.addr()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn
}

#[tokio::test]
async fn partial_head_is_cut_off_after_header_read_timeout_while_others_are_served() {
    let host = Host::start(echo_with_limits(&[("header_read_timeout", "1s")])).await;
    let mut slow = connect_then_pause(&host).await;
    slow.send("GET /echo HTTP/1.1\r\nhost: covet.test\r\n").await.unwrap();
    assert_eq!(slow.closed_within(Duration::from_millis(300)).await, Closed::StillOpen, "cut off at once");

    let reply = host.http1().get("/echo").await.unwrap();
    assert_eq!(reply.status, 200, "a normal client is served meanwhile");

    let closed = slow.closed_within(PATIENCE).await;
    assert!(matches!(closed, Closed::After(_)), "the slow client was never disconnected");
}

#[tokio::test]
async fn trickling_a_head_does_not_extend_header_read_timeout() {
    let host = Host::start(echo_with_limits(&[("header_read_timeout", "1s")])).await;
    let mut slow = connect_then_pause(&host).await;
    slow.send("GET /echo HTTP/1.1\r\nhost: covet.test\r\nx-slow: ").await.unwrap();
    let started = Instant::now();
    let disconnected = loop {
        if started.elapsed() > PATIENCE {
            break false;
        }
        if slow.send("v").await.is_err() {
            break true;
        }
        if let Closed::After(_) = slow.closed_within(Duration::from_millis(100)).await {
            break true;
        }
    };
    assert!(disconnected, "a byte every 100 ms kept the connection open for {PATIENCE:?}");
}

#[tokio::test]
async fn partial_head_on_a_kept_alive_connection_is_cut_off_after_header_read_timeout() {
    let host = Host::start(echo_with_limits(&[("header_read_timeout", "1s")])).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(get_request("/echo")).await.unwrap();
    assert_eq!(conn.response(PATIENCE).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.send("GET /echo HTTP/1.1\r\nhost: covet.test\r\n").await.unwrap();
    let closed = conn.closed_within(PATIENCE).await;
    assert!(matches!(closed, Closed::After(_)), "the second, partial head was never cut off");
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let host = Host::start(echo_with_limits(&[("idle_timeout", "1s")])).await;
    let mut conn = RawConn::connect(host.addr()).await;
    for _ in 0..2 {
        conn.send(get_request("/echo")).await.unwrap();
        assert_eq!(conn.response(PATIENCE).await.status, 200, "the connection is kept alive");
    }
    let closed = conn.closed_within(PATIENCE).await;
    assert!(matches!(closed, Closed::After(_)), "the idle connection stayed open");
}

#[tokio::test]
async fn request_slower_than_the_idle_timeout_still_completes() {
    let manifest = Manifest::new()
        .limit("idle_timeout", "1s")
        .plugin("slow", "covet-test-plugin", json!({ "label": "slow", "sleep_ms": 1500 }))
        .route(Route::new("/slow").handler("slow"));
    let host = Host::start(manifest).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(get_request("/slow")).await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

#[tokio::test]
async fn connection_over_max_connections_waits_until_one_closes() {
    let host = Host::start(echo_with_limits(&[("max_connections", "2")])).await;
    let mut first = RawConn::connect(host.addr()).await;
    let mut second = RawConn::connect(host.addr()).await;
    for conn in [&mut first, &mut second] {
        conn.send(get_request("/echo")).await.unwrap();
        assert_eq!(conn.response(PATIENCE).await.status, 200);
    }

    let mut third = RawConn::connect(host.addr()).await;
    third.send(get_request("/echo")).await.unwrap();
    let early = third.try_response(Duration::from_millis(500)).await;
    assert!(early.is_none(), "a third connection was served while two were open: {early:?}");

    drop(first);
    let resp = third.response(PATIENCE).await;
    assert_eq!(resp.status, 200, "served once a slot freed");
    second.send(get_request("/echo")).await.unwrap();
    assert_eq!(second.response(PATIENCE).await.status, 200, "the second connection was kept");
}

/// Calls into a `blocking` plugin run through `block_in_place`; the host
/// caps the threads that can take (32). Without the cap, 64 slow calls at
/// once made 64+ threads (and 50 busy connections, 512 and 250 MB RSS).
/// On the io_uring backend (`COVET_IO=uring`) the requests are handed to the
/// main runtime while a blocking plugin is live, so the same holds there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_plugin_calls_use_a_bounded_thread_pool() {
    let manifest = Manifest::new()
        .access_log(false)
        .plugin("slow", "covet-versioned-v1", serde_json::json!({}))
        .route(Route::new("/slow").handler("slow"));
    let host = Host::start(manifest).await;
    let threads = || std::fs::read_dir(format!("/proc/{}/task", host.pid())).unwrap().count();
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let client = covet_e2e::Client::http1(host.addr());
            tokio::spawn(async move { client.send(http::Method::GET, "/slow", &[("x-sleep-ms", "300")], "").await })
        })
        .collect();
    let mut most = 0;
    while !requests.iter().all(|r| r.is_finished()) {
        most = most.max(threads());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for request in requests {
        let reply = request.await.unwrap().expect("every slow request is answered");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert!(most > 20, "the calls ran in parallel on blocking threads (most threads seen: {most})");
    assert!(most <= 40, "{most} threads: the blocking pool is not capped");
}
