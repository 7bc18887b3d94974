//! Purges through the admin API (`POST /v1/cache/purge`): by primary key,
//! by path prefix (optionally on one host) and by tag (`Surrogate-Key`,
//! space-separated; `Cache-Tag`, comma-separated). The admin API appends a
//! ban to the purge log in shared state; the plugin reads it every
//! `purge_poll`, so a test polls (with a deadline) until the purged entry
//! misses, and checks that the others still hit. Tag headers are stripped
//! from the client's answer.

use covet_e2e::{Answer, Client, Host, Origin, Reply};
use http::Method;
use serde_json::{Value, json};

use super::{HOST, assert_hit, assert_miss, eventually, gateway, get};

/// `POST /v1/cache/purge` with `body`.
async fn purge(host: &Host, body: Value) -> Reply {
    let admin = Client::http1(host.admin_addr());
    let headers = [("content-type", "application/json")];
    admin.send(Method::POST, "/v1/cache/purge", &headers, body.to_string()).await.expect("the admin API answers")
}

/// Purges with `body` and checks the 202's echo.
async fn accepted(host: &Host, body: Value, kind: &str, value: &str) {
    let reply = purge(host, body.clone()).await;
    assert_eq!(reply.status, 202, "purge {body}: {}", reply.text());
    let echo = reply.json();
    assert_eq!((echo["kind"].as_str(), echo["value"].as_str()), (Some(kind), Some(value)), "{echo}");
    assert_eq!(echo["namespace"], "cache", "{echo}");
    assert!(echo["seq"].as_u64().is_some_and(|seq| seq >= 1), "{echo}");
}

/// Waits until `GET path` misses (reaches the origin again).
async fn until_purged(host: &Host, origin: &Origin, path: &str) {
    let before = origin.hits(path);
    eventually(&format!("{path} purged"), || async {
        get(host, path).await;
        origin.hits(path) > before
    })
    .await;
}

/// An origin with `/p/a`, `/p/b` and `/q/c` (tags: a blue red, b red, c green blue), all stored.
async fn stored() -> (Origin, Host) {
    let origin = Origin::start().await;
    origin.set("/p/a", Answer::cached("max-age=600", "a").header("surrogate-key", "blue red"));
    origin.set("/p/b", Answer::cached("max-age=600", "b").header("surrogate-key", "red"));
    origin.set("/q/c", Answer::cached("max-age=600", "c").header("cache-tag", "green, blue"));
    let host = gateway(&origin, json!({ "purge_poll": "20ms" })).await;
    for path in ["/p/a", "/p/b", "/q/c"] {
        assert_miss(&host, &origin, path).await;
        let hit = assert_hit(&host, &origin, path).await;
        assert_eq!((hit.header("surrogate-key"), hit.header("cache-tag")), (None, None), "tag headers stripped");
    }
    (origin, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_key() {
    let (origin, host) = stored().await;
    let key = format!("{HOST}/p/a");
    accepted(&host, json!({ "key": key }), "key", &key).await;
    until_purged(&host, &origin, "/p/a").await;
    assert_hit(&host, &origin, "/p/a").await;
    assert_hit(&host, &origin, "/p/b").await;
    assert_hit(&host, &origin, "/q/c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_prefix() {
    let (origin, host) = stored().await;
    // Another host's prefix purges nothing here; the key purge after it shows it was applied.
    accepted(&host, json!({ "prefix": "/p/", "host": "other.test" }), "prefix", "/p/").await;
    accepted(&host, json!({ "key": format!("{HOST}/q/c") }), "key", &format!("{HOST}/q/c")).await;
    until_purged(&host, &origin, "/q/c").await;
    assert_hit(&host, &origin, "/p/a").await;
    assert_hit(&host, &origin, "/p/b").await;

    accepted(&host, json!({ "prefix": "/p/", "host": HOST }), "prefix", "/p/").await;
    until_purged(&host, &origin, "/p/a").await;
    until_purged(&host, &origin, "/p/b").await;
    assert_hit(&host, &origin, "/q/c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_tag() {
    let (origin, host) = stored().await;
    accepted(&host, json!({ "tag": "blue" }), "tag", "blue").await;
    until_purged(&host, &origin, "/p/a").await;
    until_purged(&host, &origin, "/q/c").await;
    assert_hit(&host, &origin, "/p/b").await;
    accepted(&host, json!({ "tag": "red" }), "tag", "red").await;
    until_purged(&host, &origin, "/p/b").await;
}

#[tokio::test]
async fn a_purge_names_exactly_one_of_key_prefix_tag() {
    let origin = Origin::start().await;
    let host = gateway(&origin, json!({})).await;
    for body in [json!({}), json!({ "key": "a", "tag": "b" }), json!({ "prefix": "/x", "key": "k" })] {
        let reply = purge(&host, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "bad_request", "{body}: {}", reply.text());
    }
}
