//! Serving stale (RFC 5861): within `stale-while-revalidate` a stale entry
//! is answered at once while the host refreshes it in the background (one
//! refresh per key at a time; the next request gets the new version; the
//! host counts the background run; the config's window applies when the
//! response names none);
//! within `stale-if-error` an origin 5xx or an unreachable origin is
//! replaced by the stale entry, outside it the error goes to the client.

use covet_e2e::{Answer, Client, Origin};
use serde_json::json;

use super::{PATIENCE, assert_miss, cache_status, eventually, gateway, get, is_hit, let_expire, ttl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let origin = Origin::start().await;
    let cc = "max-age=1, stale-while-revalidate=60";
    origin.set("/swr", Answer::cached(cc, "v1"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/swr").await;
    let_expire().await;
    origin.set("/swr", Answer::cached(cc, "v2"));
    origin.hold();
    // The origin answers nothing while held: a reply proves the client did not wait for it.
    let stale = tokio::time::timeout(PATIENCE, get(&host, "/swr"))
        .await
        .unwrap_or_else(|_| panic!("the stale answer waited for the (held) origin; logs:\n{}", host.logs()));
    assert_eq!((stale.status.as_u16(), stale.text()), (200, "v1".to_owned()));
    let status = cache_status(&stale);
    assert!(status.starts_with("covet; hit; ttl=-"), "{status}");
    assert!(status.ends_with("detail=stale-while-revalidate"), "{status}");
    eventually("the background refresh reached the origin", || async { origin.hits("/swr") == 2 }).await;
    for _ in 0..5 {
        let again = get(&host, "/swr").await;
        assert_eq!(again.text(), "v1", "still stale while the refresh is held: {}", cache_status(&again));
    }
    assert_eq!(origin.hits("/swr"), 2, "one background refresh per key at a time");
    origin.release();
    eventually("the refreshed version is served", || async {
        let reply = get(&host, "/swr").await;
        reply.text() == "v2" && is_hit(&reply) && ttl(&cache_status(&reply)) >= 0
    })
    .await;
    assert!(origin.hits("/swr") <= 3, "refreshes: {}", origin.hits("/swr"));
    let metrics = Client::http1(host.admin_addr()).get("/metrics").await.expect("GET /metrics").text();
    let ok = metrics.lines().find_map(|l| l.strip_prefix("covet_background_runs_total{result=\"ok\"} "));
    let ok: f64 =
        ok.unwrap_or_else(|| panic!("no background run counted:\n{metrics}")).trim().parse().expect("a number");
    assert!(ok >= 1.0, "the host counted the background run: {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_stale_while_revalidate_applies_without_a_directive() {
    let origin = Origin::start().await;
    origin.set("/default", Answer::cached("max-age=1", "v1"));
    let host = gateway(&origin, json!({ "stale_while_revalidate": "60s" })).await;
    assert_miss(&host, &origin, "/default").await;
    let_expire().await;
    origin.set("/default", Answer::cached("max-age=60", "v2"));
    let stale = get(&host, "/default").await;
    assert_eq!(stale.text(), "v1", "{}", cache_status(&stale));
    assert!(cache_status(&stale).ends_with("detail=stale-while-revalidate"), "{}", cache_status(&stale));
    eventually("the refreshed version is served", || async { get(&host, "/default").await.text() == "v2" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_replaces_a_5xx_and_a_dead_origin() {
    let origin = Origin::start().await;
    origin.set("/sie", Answer::cached("max-age=1, stale-if-error=60", "v1"));
    origin.set("/plain", Answer::cached("max-age=1", "plain v1"));
    let host = gateway(&origin, json!({})).await;
    let defaulted = gateway(&origin, json!({ "stale_if_error": "60s" })).await;
    assert_miss(&host, &origin, "/sie").await;
    assert_miss(&host, &origin, "/plain").await;
    assert_miss(&defaulted, &origin, "/plain").await;
    let_expire().await;
    origin.set("/sie", Answer::ok("down").status(503));
    origin.set("/plain", Answer::ok("down").status(503));

    let expect_stale = |reply: &covet_e2e::Reply, body: &str| {
        assert_eq!((reply.status.as_u16(), reply.text()), (200, body.to_owned()), "{}", cache_status(reply));
        let status = cache_status(reply);
        assert!(status.starts_with("covet; hit; ttl=-") && status.ends_with("detail=stale-if-error"), "{status}");
    };
    let before = origin.hits("/sie");
    expect_stale(&get(&host, "/sie").await, "v1");
    // (The proxy retries a 503 on its own: one or more origin requests.)
    assert!(origin.hits("/sie") > before, "the origin was asked and failed");
    let error = get(&host, "/plain").await;
    assert_eq!(error.status, 503, "no stale-if-error window: the error goes through");
    expect_stale(&get(&defaulted, "/plain").await, "plain v1");

    origin.stop();
    expect_stale(&get(&host, "/sie").await, "v1");
    expect_stale(&get(&defaulted, "/plain").await, "plain v1");
}
