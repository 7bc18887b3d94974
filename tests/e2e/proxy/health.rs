//! Endpoint health: passive outlier detection ejects an endpoint that
//! refuses connections (no client request fails meanwhile: connect failures
//! are retried on the other), the admin API shows it `ejected`, and once the
//! ejection ends and the endpoint serves again it gets traffic again; no
//! more than `max_ejection_percent` of the endpoints is ejected at once.
//! Active checks mark an endpoint whose `/healthz` fails `unhealthy` and
//! take it out of rotation until it passes again; with every endpoint
//! unhealthy (panic mode) traffic still flows to all of them.

use std::collections::BTreeSet;

use covet_e2e::TestUpstream;
use serde_json::{Value, json};

use super::{answered_by, endpoint_status, gateway, get, status, until_reached, wait_health};

/// Retries that never run out in these tests: the budget is not what they test.
fn generous_retries() -> Value {
    json!({ "attempts": 2, "budget": "100%", "min_per_sec": 1000, "backoff": "1ms" })
}

/// Active checks every 100 ms, one result flipping the verdict.
fn quick_checks() -> Value {
    json!({ "path": "/healthz", "interval": "100ms", "timeout": "1s", "healthy": 1, "unhealthy": 1 })
}

#[tokio::test]
async fn an_endpoint_refusing_connections_is_ejected_without_failing_a_request() {
    let (up, down) = (TestUpstream::start("up").await, TestUpstream::start("down").await);
    down.stop();
    let passive = json!({ "consecutive_connect_failures": 2, "base_ejection": "60s" });
    let host = gateway(&[&up, &down], json!({ "health": { "passive": passive }, "retries": generous_retries() })).await;
    for _ in 0..20 {
        let reply = get(&host, "/eject").await;
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "up".to_owned()), "{}", reply.text());
    }
    assert_eq!(up.requests(), 20);
    let down_status = endpoint_status(&host, &down).await;
    assert_eq!(down_status["health"], "ejected", "{down_status}");
    assert_eq!(down_status["ejections"], 1, "{down_status}");
    assert_eq!(down_status["errors"], 2, "ejected after exactly 2 connect failures: {down_status}");
    assert!(down_status["ejected_for_ms"].as_u64().is_some_and(|ms| ms > 0), "{down_status}");
    let up_status = endpoint_status(&host, &up).await;
    assert_eq!(up_status["health"], "healthy", "{up_status}");
    assert_eq!(status(&host).await["retries"], 2, "each connect failure was retried once");
}

#[tokio::test]
async fn at_most_the_max_ejection_share_is_ejected() {
    let up = TestUpstream::start("up").await;
    let downs = [TestUpstream::start("d1").await, TestUpstream::start("d2").await];
    downs.iter().for_each(TestUpstream::stop);
    let passive = json!({ "consecutive_connect_failures": 1, "base_ejection": "60s", "max_ejection_percent": 34 });
    let settings = json!({ "health": { "passive": passive }, "retries": generous_retries() });
    let host = gateway(&[&up, &downs[0], &downs[1]], settings).await;
    for _ in 0..20 {
        let reply = get(&host, "/share").await;
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "up".to_owned()), "{}", reply.text());
    }
    let mut health = Vec::new();
    for down in &downs {
        let status = endpoint_status(&host, down).await;
        health.push((status["health"].as_str().unwrap_or_default().to_owned(), status["errors"].as_u64().unwrap_or(0)));
    }
    let ejected = health.iter().filter(|(h, _)| h == "ejected").count();
    assert_eq!(ejected, 1, "34% of 3 endpoints is one: {health:?}");
    let (_, errors) = health.iter().find(|(h, _)| h == "healthy").expect("the other stays in");
    assert!(*errors >= 2, "it kept failing without being ejected: {health:?}");
}

#[tokio::test]
async fn an_ejected_endpoint_gets_traffic_again_once_it_serves_and_the_ejection_ends() {
    let (up, down) = (TestUpstream::start("up").await, TestUpstream::start("down").await);
    down.stop();
    let passive = json!({ "consecutive_connect_failures": 1, "base_ejection": "2s" });
    let host = gateway(&[&up, &down], json!({ "health": { "passive": passive }, "retries": generous_retries() })).await;
    for _ in 0..4 {
        assert_eq!(get(&host, "/recover").await.status, 200);
    }
    // The ejections counter, not the `ejected` state: a slow machine may look after the 2 s have passed.
    let ejected = endpoint_status(&host, &down).await;
    assert!(ejected["ejections"].as_u64().is_some_and(|n| n >= 1), "ejected at its first connect failure: {ejected}");
    down.restart().await;
    until_reached(&host, &down).await;
    let down_status = wait_health(&host, &down, "healthy").await;
    assert!(down_status["ejections"].as_u64().is_some_and(|n| n >= 1), "{down_status}");
    let mut answered = BTreeSet::new();
    for _ in 0..10 {
        answered.insert(answered_by(&get(&host, "/recover").await));
    }
    assert_eq!(answered, BTreeSet::from(["down".to_owned(), "up".to_owned()]), "both serve again");
}

#[tokio::test]
async fn active_checks_take_a_failing_endpoint_out_and_bring_it_back() {
    let ups = [TestUpstream::start("a").await, TestUpstream::start("b").await, TestUpstream::start("sick").await];
    let sick = &ups[2];
    sick.set_health(503);
    let host = gateway(&[&ups[0], &ups[1], sick], json!({ "health": { "active": quick_checks() } })).await;
    let unhealthy = wait_health(&host, sick, "unhealthy").await;
    assert_eq!(unhealthy["active_check_passing"], false, "{unhealthy}");
    assert!(sick.health_checks() >= 1, "the check reached the endpoint");
    let before = sick.requests();
    for _ in 0..20 {
        let reply = get(&host, "/active").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_ne!(answered_by(&reply), "sick");
    }
    assert_eq!(sick.requests(), before, "no traffic to an unhealthy endpoint");
    assert_eq!(status(&host).await["panic_mode"], false, "2 of 3 healthy is above the 50% threshold");
    sick.set_health(200);
    let healthy = wait_health(&host, sick, "healthy").await;
    assert_eq!(healthy["active_check_passing"], true, "{healthy}");
    until_reached(&host, sick).await;
}

#[tokio::test]
async fn with_every_endpoint_unhealthy_panic_mode_uses_them_all() {
    let (a, b) = (TestUpstream::start("a").await, TestUpstream::start("b").await);
    a.set_health(503);
    b.set_health(503);
    let host = gateway(&[&a, &b], json!({ "health": { "active": quick_checks() } })).await;
    wait_health(&host, &a, "unhealthy").await;
    wait_health(&host, &b, "unhealthy").await;
    assert_eq!(status(&host).await["panic_mode"], true);
    for _ in 0..20 {
        let reply = get(&host, "/panic").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(a.requests() + b.requests(), 20);
    assert!(a.requests() >= 1 && b.requests() >= 1, "both used: a {}, b {}", a.requests(), b.requests());
}
