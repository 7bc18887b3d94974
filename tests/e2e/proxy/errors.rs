//! Errors the proxy makes itself, with covet's structured body: no endpoint
//! listening → 502 `UPSTREAM_UNAVAILABLE`; the circuit breaker full → 503
//! `UPSTREAM_OVERLOADED` with `retry-after`; an endpoint that hangs up
//! before answering is retried elsewhere, and alone is 502 `UPSTREAM_ERROR`.
//! And one it must not hide: an upstream that dies mid-body makes the client
//! see a broken body (HTTP/1.1: the connection closes early; HTTP/2: the
//! stream is reset), never a clean end.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use covet_e2e::{Host, TestUpstream};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::{gateway, manifest, status};
use crate::common::assert_problem;

#[tokio::test]
async fn no_endpoint_listening_answers_502_upstream_unavailable() {
    let down = TestUpstream::start("down").await;
    down.stop();
    let host = gateway(&[&down], json!({})).await;
    let reply = host.http1().send(Method::GET, "/x", &[("x-request-id", "unavail-1")], "").await.unwrap();
    let error = assert_problem(&reply, 502, "UPSTREAM_UNAVAILABLE");
    assert_eq!(error["request_id"], "unavail-1");
    let reply = host.http2().send(Method::POST, "/x", &[], "body").await.unwrap();
    assert_problem(&reply, 502, "UPSTREAM_UNAVAILABLE");
}

#[tokio::test]
async fn a_full_circuit_breaker_answers_503_overloaded_with_retry_after() {
    let slow = TestUpstream::start("slow").await;
    slow.hold();
    let circuit = json!({ "max_requests": 1, "max_pending": 0, "retry_after": "2s" });
    let host = gateway(&[&slow], json!({ "circuit": circuit })).await;
    let client = host.http1();
    let first = tokio::spawn(async move { client.get("/first").await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.in_flight() == 0 {
        assert!(Instant::now() < deadline, "the first request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reply = host.http1().send(Method::GET, "/second", &[("x-request-id", "over-1")], "").await.unwrap();
    assert_problem(&reply, 503, "UPSTREAM_OVERLOADED");
    assert_eq!(reply.header("retry-after"), Some("2"), "{:?}", reply.headers);
    assert_eq!(slow.requests(), 1, "the refused request never reached the upstream");
    assert_eq!(status(&host).await["overloaded"], 1);
    slow.release();
    let first = first.await.unwrap().expect("the first request answers");
    assert_eq!(first.status, 200);
}

/// A listener on 127.0.0.1:0 that reads each request's first bytes and
/// closes the connection without answering; counts the connections.
async fn hang_up() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = socket.read(&mut [0u8; 1024]).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn an_upstream_closing_before_the_head_is_retried_then_502_upstream_error() {
    let (rude, accepted) = hang_up().await;
    let good = TestUpstream::start("good").await;
    let retries = json!({ "attempts": 1, "budget": "100%", "min_per_sec": 1000, "backoff": "1ms" });
    let settings = json!({ "endpoints": [rude, good.endpoint()], "retries": retries });
    let host = Host::start(manifest(settings, json!({}), "/{*rest}")).await;
    for _ in 0..4 {
        let reply = host.http1().get("/rude").await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.header("x-upstream")), (200, Some("good")), "{}", reply.text());
    }
    assert!(accepted.load(Ordering::SeqCst) >= 1, "some first tries went to the endpoint that hangs up");
    let alone = Host::start(manifest(json!({ "endpoints": [rude] }), json!({}), "/{*rest}")).await;
    let reply = alone.http1().send(Method::GET, "/rude", &[("x-request-id", "rude-1")], "").await.unwrap();
    assert_problem(&reply, 502, "UPSTREAM_ERROR");
}

#[tokio::test]
async fn an_upstream_dying_mid_body_breaks_the_http1_body() {
    let up = TestUpstream::start("breaker").await;
    let host = gateway(&[&up], json!({})).await;
    broken_body(&host, false).await;
}

#[tokio::test]
async fn an_upstream_dying_mid_body_resets_the_http2_stream() {
    let up = TestUpstream::start("breaker").await;
    let host = gateway(&[&up], json!({})).await;
    broken_body(&host, true).await;
}

/// `GET /break` (the upstream declares 1 MiB and aborts after 64 KiB): the
/// head arrives as a 200, reading the body fails.
async fn broken_body(host: &Host, http2: bool) {
    let client = Client::builder(TokioExecutor::new()).http2_only(http2).build_http::<Full<Bytes>>();
    let request = http::Request::get(format!("http://{}/break", host.addr())).body(Full::new(Bytes::new())).unwrap();
    let response = client.request(request).await.expect("the response head");
    assert_eq!(response.status(), 200, "the head was already sent when the upstream broke off");
    match response.into_body().collect().await {
        Ok(body) => panic!("the body ended cleanly after {} bytes of 1 MiB", body.to_bytes().len()),
        Err(e) => eprintln!("the body broke as it should: {e:?}"),
    }
    // The host itself is fine: the next request is answered.
    let reply = host.http1().get("/again").await.unwrap();
    assert_eq!(reply.status, 200);
}
