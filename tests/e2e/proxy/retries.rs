//! Retries: a 503 is retried on the other endpoint and the client gets its
//! 200; with retries used up the client gets the upstream's own 503; POST is
//! not retried unless configured (PUT is); an empty budget refuses retries
//! and counts them; a per-try timeout moves on to a fast endpoint; the
//! overall timeout answers 504 `UPSTREAM_TIMEOUT`; a POST body (with
//! `non_idempotent: true`) that streamed past the replay buffer is not
//! retried. Outlier detection is off here, so every endpoint stays in
//! rotation and the counts are exact.

use covet_e2e::{Host, TestUpstream};
use http::Method;
use serde_json::{Value, json};

use super::{answered_by, gateway, get, status};
use crate::common::assert_problem;

/// No ejections: these tests count requests per endpoint.
fn no_outliers() -> Value {
    json!({ "passive": { "consecutive_5xx": 0, "consecutive_gateway_errors": 0, "consecutive_connect_failures": 0 } })
}

/// Upstream settings: no ejections, `retries` on top of a budget that never runs out.
fn settings(retries: Value) -> Value {
    let mut all = json!({ "budget": "100%", "min_per_sec": 1000, "backoff": "1ms" });
    for (key, value) in retries.as_object().expect("an object") {
        all[key] = value.clone();
    }
    json!({ "health": no_outliers(), "retries": all })
}

/// `method path` with `body` through the host.
async fn send(host: &Host, method: Method, body: Vec<u8>) -> covet_e2e::Reply {
    host.http1().send(method, "/retry", &[], body).await.unwrap_or_else(|e| panic!("{e}\nlogs:\n{}", host.logs()))
}

#[tokio::test]
async fn a_503_is_retried_on_the_other_endpoint() {
    let (bad, good) = (TestUpstream::start("bad").await, TestUpstream::start("good").await);
    bad.set_status(503);
    let host = gateway(&[&bad, &good], settings(json!({ "attempts": 2 }))).await;
    for _ in 0..4 {
        let reply = get(&host, "/retry").await;
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "good".to_owned()), "{}", reply.text());
    }
    assert_eq!(good.requests(), 4);
    assert!(bad.requests() >= 1, "round robin sent some first attempts to the failing endpoint");
    assert_eq!(status(&host).await["retries"], bad.requests() as u64, "one retry per 503");
}

#[tokio::test]
async fn retries_give_up_with_the_upstreams_own_503() {
    let (a, b) = (TestUpstream::start("a").await, TestUpstream::start("b").await);
    a.set_status(503);
    b.set_status(503);
    let host = gateway(&[&a, &b], settings(json!({ "attempts": 1 }))).await;
    let reply = get(&host, "/retry").await;
    assert_eq!(reply.status, 503);
    assert!(reply.header("x-upstream").is_some(), "the upstream's answer, not the proxy's: {:?}", reply.headers);
    assert_eq!(reply.json()["upstream"], reply.header("x-upstream").unwrap(), "its body too");
    assert_eq!((a.requests(), b.requests()), (1, 1), "one try and one retry, on different endpoints");
    assert_eq!(status(&host).await["retries"], 1);
}

#[tokio::test]
async fn post_is_not_retried_but_put_is() {
    let (a, b) = (TestUpstream::start("a").await, TestUpstream::start("b").await);
    a.set_status(503);
    b.set_status(503);
    let host = gateway(&[&a, &b], settings(json!({ "attempts": 2 }))).await;
    let reply = send(&host, Method::POST, b"order".to_vec()).await;
    assert_eq!(reply.status, 503);
    assert_eq!(a.requests() + b.requests(), 1, "a POST is tried once");
    let reply = send(&host, Method::PUT, b"order".to_vec()).await;
    assert_eq!(reply.status, 503);
    assert_eq!(a.requests() + b.requests(), 4, "a PUT is tried 3 times");
    assert_eq!(a.received() + b.received(), 4 * 5, "each try carried the whole body");
}

#[tokio::test]
async fn an_empty_retry_budget_refuses_retries_and_counts_them() {
    let (a, b) = (TestUpstream::start("a").await, TestUpstream::start("b").await);
    a.set_status(503);
    b.set_status(503);
    let host = gateway(&[&a, &b], settings(json!({ "attempts": 2, "budget": "0%", "min_per_sec": 0 }))).await;
    for _ in 0..3 {
        assert_eq!(get(&host, "/retry").await.status, 503);
    }
    assert_eq!(a.requests() + b.requests(), 3, "no retries");
    let status = status(&host).await;
    assert_eq!(status["retries"], 0, "{status}");
    assert_eq!(status["retries_budget_exhausted"], 3, "{status}");
}

#[tokio::test]
async fn a_per_try_timeout_moves_on_to_a_fast_endpoint() {
    let (slow, fast) = (TestUpstream::start("slow").await, TestUpstream::start("fast").await);
    slow.hold();
    let retries = json!({ "attempts": 1, "per_try_timeout": "1s", "budget": "100%" });
    let host = gateway(&[&slow, &fast], json!({ "health": no_outliers(), "retries": retries, "timeout": "20s" })).await;
    for _ in 0..4 {
        let reply = get(&host, "/retry").await;
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "fast".to_owned()), "{}", reply.text());
    }
    assert!(slow.requests() >= 1, "some first tries went to the slow endpoint");
    assert_eq!(fast.requests(), 4);
}

#[tokio::test]
async fn the_overall_timeout_answers_504() {
    let slow = TestUpstream::start("slow").await;
    slow.hold();
    let host = gateway(&[&slow], json!({ "health": no_outliers(), "timeout": "300ms" })).await;
    let reply = host.http1().send(Method::GET, "/retry", &[("x-request-id", "overall-1")], "").await.unwrap();
    assert_problem(&reply, 504, "UPSTREAM_TIMEOUT");
    assert!(slow.requests() >= 1, "the request reached the endpoint");
}

#[tokio::test]
async fn a_body_past_the_replay_buffer_is_not_retried() {
    let (bad, good) = (TestUpstream::start("bad").await, TestUpstream::start("good").await);
    bad.set_status(503);
    let retries = json!({ "attempts": 2, "replay_buffer": "16KiB", "non_idempotent": true });
    let host = gateway(&[&bad, &good], settings(retries)).await;
    for _ in 0..2 {
        let reply = send(&host, Method::POST, vec![b's'; 1024]).await;
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "good".to_owned()), "a small body is replayed");
    }
    assert!(bad.requests() >= 1, "a small POST was retried after a 503 (non_idempotent: true)");
    let (bad0, good0) = (bad.requests(), good.requests());
    let mut refused = 0;
    for _ in 0..2 {
        let reply = send(&host, Method::POST, vec![b'L'; 1 << 20]).await;
        if reply.status == 503 {
            refused += 1;
            assert_eq!(reply.json()["received"], 1 << 20, "the endpoint read the whole body: {}", reply.text());
        } else {
            assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "good".to_owned()));
        }
    }
    assert!(refused >= 1, "round robin sent a large body to the failing endpoint first");
    assert_eq!(bad.requests() - bad0, refused, "each 503 was the only try");
    assert_eq!(good.requests() - good0, 2 - refused, "nothing was retried on the good endpoint");
}
