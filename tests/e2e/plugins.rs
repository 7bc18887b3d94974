//! The bundled plugins behind the real host: static-response, headers and
//! rate-limit (auth-jwt has its own file).

use std::time::Duration;

use covet_e2e::{Host, Manifest, Reply, Route};
use http::Method;
use serde_json::json;

use crate::common::{assert_problem, labelled};

#[tokio::test]
async fn static_response_sends_its_status_headers_and_inline_body() {
    let config =
        json!({ "status": 201, "headers": { "cache-control": "no-store", "x-demo": "yes" }, "body": "created\n" });
    let manifest = Manifest::new()
        .plugin("created", "covet-static-response", config)
        .route(Route::new("/thing").methods(["POST"]).handler("created"));
    let host = Host::start(manifest).await;
    for client in [host.http1(), host.http2()] {
        let reply = client.send(Method::POST, "/thing", &[], "ignored").await.unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.text(), "created\n");
        assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("x-demo"), Some("yes"));
        assert!(reply.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn static_response_serves_a_body_file_relative_to_the_manifest() {
    let page = "<!doctype html><h1>covet</h1>\n";
    let manifest = Manifest::new()
        .plugin("index", "covet-static-response", json!({ "body_file": "index.html" }))
        .route(Route::new("/").methods(["GET"]).handler("index"));
    let elsewhere = tempfile::tempdir().unwrap();
    let host = Host::builder(manifest).file("index.html", page).current_dir(elsewhere.path()).start();
    host.wait_ready().await;
    let reply = host.http1().get("/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), page);
    assert_eq!(reply.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(reply.header("content-length"), Some(page.len().to_string().as_str()));
}

/// `meta` (the test plugin) sets `user.name` metadata, then `headers` edits
/// the request; `echo` shows what arrived.
fn request_rules_gateway() -> Manifest {
    let headers = json!({ "request": {
        "remove": ["x-secret"],
        "set": { "x-user": "{user.name}", "x-absent": "{nobody.set.this}", "x-overwritten": "new" },
        "add": { "x-trace": "{request.method} {request.path}" },
    }});
    Manifest::new()
        .plugin("meta", "covet-test-plugin", json!({ "label": "meta", "metadata": { "user.name": "ada" } }))
        .plugin("headers", "covet-headers", headers)
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/people/{id}").filters(["meta", "headers"]).handler("echo"))
}

#[tokio::test]
async fn headers_plugin_edits_request_headers_from_templates_and_metadata() {
    let host = Host::start(request_rules_gateway()).await;
    let sent = [("x-secret", "hunter2"), ("x-keep", "kept"), ("x-overwritten", "old")];
    let reply = host.http1().send(Method::GET, "/people/7?q=1", &sent, "").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = &reply.json()["headers"];
    assert_eq!(seen["x-user"], "ada", "templated from metadata set by the earlier filter; saw {seen}");
    assert_eq!(seen["x-trace"], "GET /people/7", "request facts, path without query");
    assert_eq!(seen["x-overwritten"], "new");
    assert_eq!(seen["x-keep"], "kept");
    assert!(seen.get("x-secret").is_none(), "removed header reached the handler: {seen}");
    assert!(seen.get("x-absent").is_none(), "a template with absent metadata must be skipped: {seen}");
}

#[tokio::test]
async fn headers_plugin_adds_sets_and_removes_response_headers() {
    let upstream =
        json!({ "body": "ok", "headers": { "x-internal": "secret", "cache-control": "private", "vary": "accept" } });
    let rules = json!({ "response": {
        "remove": ["x-internal"],
        "set": { "cache-control": "no-store", "x-echo-id": "{request.id}" },
        "add": { "vary": "origin", "via": "1.1 covet" },
    }});
    let manifest = Manifest::new()
        .plugin("upstream", "covet-static-response", upstream)
        .plugin("headers", "covet-headers", rules)
        .route(Route::new("/r").filters(["headers"]).handler("upstream"));
    let host = Host::start(manifest).await;
    let reply = host.http1().get("/r").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    assert!(reply.header("x-internal").is_none(), "removed");
    let cache: Vec<_> = reply.headers.get_all("cache-control").iter().collect();
    assert_eq!(cache, ["no-store"], "set replaces every value");
    let vary: Vec<_> = reply.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["accept", "origin"], "add keeps the existing value");
    assert_eq!(reply.header("via"), Some("1.1 covet"));
    assert_eq!(reply.header("x-echo-id"), reply.header("x-request-id"));
}

/// A rate-limited echo route, keyed by the `x-api-key` header.
fn limited(rate: &str, burst: u32) -> Manifest {
    Manifest::new()
        .plugin("limit", "covet-rate-limit", json!({ "rate": rate, "burst": burst, "key": "header:x-api-key" }))
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/api").filters(["limit"]).handler("echo"))
}

async fn call(host: &Host, key: &str) -> Reply {
    host.http1().send(Method::GET, "/api", &[("x-api-key", key)], "").await.unwrap()
}

fn number(reply: &Reply, header: &str) -> u64 {
    let value = reply.header(header).unwrap_or_else(|| panic!("no {header} in {:?}", reply.headers));
    value.parse().unwrap_or_else(|_| panic!("{header}: {value:?} is not a number"))
}

#[tokio::test]
async fn rate_limit_answers_429_after_the_burst_with_retry_after_and_ratelimit_headers() {
    let host = Host::start(limited("2/m", 2)).await;
    for remaining in [1, 0] {
        let reply = call(&host, "alice").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["metadata"]["ratelimit.key"], "alice");
        assert_eq!(number(&reply, "ratelimit-limit"), 2);
        assert_eq!(number(&reply, "ratelimit-remaining"), remaining);
        assert!(number(&reply, "ratelimit-reset") > 0);
    }
    let refused = call(&host, "alice").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    let retry_after = number(&refused, "retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(number(&refused, "ratelimit-limit"), 2);
    assert_eq!(number(&refused, "ratelimit-remaining"), 0);
    assert_eq!(number(&refused, "ratelimit-reset"), retry_after);
    let error = assert_problem(&refused, 429, "RATE_LIMITED");
    assert_eq!(error["details"]["retry_after_seconds"], retry_after);
}

#[tokio::test]
async fn rate_limit_keys_are_independent() {
    let host = Host::start(limited("2/m", 2)).await;
    for _ in 0..2 {
        assert_eq!(call(&host, "alice").await.status, 200);
    }
    assert_eq!(call(&host, "alice").await.status, 429);
    for remaining in [1, 0] {
        let bob = call(&host, "bob").await;
        assert_eq!(bob.status, 200, "bob's bucket is his own: {}", bob.text());
        assert_eq!(number(&bob, "ratelimit-remaining"), remaining);
    }
}

#[tokio::test]
async fn rate_limit_recovers_after_the_refill_period() {
    let host = Host::start(limited("1/s", 2)).await;
    for _ in 0..2 {
        assert_eq!(call(&host, "carol").await.status, 200);
    }
    assert_eq!(call(&host, "carol").await.status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = call(&host, "carol").await;
    assert_eq!(again.status, 200, "still limited after a second: {}", again.text());
}
