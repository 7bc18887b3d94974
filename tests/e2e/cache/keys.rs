//! The primary key as configured (`key.host`, `key.query`, `key.headers`),
//! and the directives that limit reuse: a response's `no-cache` (stored,
//! but revalidated on every request) and `must-revalidate` (never served
//! stale, not even on an origin error); a request's `max-stale` (a stale
//! entry is fine) and `min-fresh` (fresh for that much longer, or go on).

use covet_e2e::{Answer, Origin};
use serde_json::json;

use super::{assert_hit, assert_miss, cache_status, gateway, get, get_with, is_hit, let_expire};

#[tokio::test]
async fn the_query_in_the_key_all_none_or_listed() {
    let origin = Origin::start().await;
    origin.set("/q", Answer::cached("max-age=60", "q"));
    let all = gateway(&origin, json!({})).await;
    assert_miss(&all, &origin, "/q?b=2&a=1").await;
    let sorted = get(&all, "/q?a=1&b=2").await;
    assert!(is_hit(&sorted), "params sorted by name: {}", cache_status(&sorted));
    assert_miss(&all, &origin, "/q?a=1&b=3").await;

    let none = gateway(&origin, json!({ "key": { "query": "none" } })).await;
    assert_miss(&none, &origin, "/q?x=1").await;
    let other = get(&none, "/q?y=2").await;
    assert!(is_hit(&other), "query: none ignores the query: {}", cache_status(&other));

    let listed = gateway(&origin, json!({ "key": { "query": ["page"] } })).await;
    assert_miss(&listed, &origin, "/q?page=1&utm=a").await;
    let tracking = get(&listed, "/q?utm=b&page=1").await;
    assert!(is_hit(&tracking), "only `page` is in the key: {}", cache_status(&tracking));
    assert_miss(&listed, &origin, "/q?page=2&utm=a").await;
}

#[tokio::test]
async fn key_headers_and_host() {
    let origin = Origin::start().await;
    origin.set("/h", Answer::cached("max-age=60", "h"));
    let by_header = gateway(&origin, json!({ "key": { "headers": ["x-api-version"] } })).await;
    let v1 = get_with(&by_header, "/h", &[("x-api-version", "1")]).await;
    let v2 = get_with(&by_header, "/h", &[("x-api-version", "2")]).await;
    assert!(!is_hit(&v1) && !is_hit(&v2), "{} / {}", cache_status(&v1), cache_status(&v2));
    let again = get_with(&by_header, "/h", &[("x-api-version", "1")]).await;
    assert!(is_hit(&again), "{}", cache_status(&again));
    assert_eq!(origin.hits("/h"), 2);

    let hosts = gateway(&origin, json!({})).await;
    get_with(&hosts, "/h", &[("host", "a.test")]).await;
    let b = get_with(&hosts, "/h", &[("host", "b.test")]).await;
    assert!(!is_hit(&b), "another host is another key: {}", cache_status(&b));
    let a_port = get_with(&hosts, "/h", &[("host", "A.test:8080")]).await;
    assert!(is_hit(&a_port), "host lower case, without its port: {}", cache_status(&a_port));

    let hostless = gateway(&origin, json!({ "key": { "host": false } })).await;
    get_with(&hostless, "/h", &[("host", "a.test")]).await;
    let b = get_with(&hostless, "/h", &[("host", "b.test")]).await;
    assert!(is_hit(&b), "key.host: false: {}", cache_status(&b));
}

#[tokio::test]
async fn response_no_cache_revalidates_every_time() {
    let origin = Origin::start().await;
    origin.set("/nc", Answer::cached("no-cache, max-age=60", "checked").header("etag", "\"n1\""));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/nc").await;
    for n in 2..=3 {
        let reply = get(&host, "/nc").await;
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "checked".to_owned()));
        let seen = origin.seen("/nc");
        assert_eq!(seen.len(), n, "every request is validated with the origin");
        assert_eq!(seen[n - 1].header("if-none-match"), Some("\"n1\""));
        assert_eq!(seen[n - 1].status, 304, "and answered from the stored body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_revalidate_is_never_served_stale() {
    let origin = Origin::start().await;
    origin.set("/strict", Answer::cached("max-age=1, must-revalidate", "strict").header("etag", "\"s1\""));
    let host = gateway(&origin, json!({ "stale_if_error": "60s" })).await;
    assert_miss(&host, &origin, "/strict").await;
    let_expire().await;
    origin.set("/strict", Answer::ok("down").status(503));
    let reply = get(&host, "/strict").await;
    assert_ne!(reply.text(), "strict", "a must-revalidate entry served stale: {}", cache_status(&reply));
    assert!(reply.status.is_server_error(), "{} {}", reply.status, reply.text());
    let stale_ok = get_with(&host, "/strict", &[("cache-control", "max-stale=600")]).await;
    assert_ne!(stale_ok.text(), "strict", "not even to a client accepting stale: {}", cache_status(&stale_ok));
}

#[tokio::test]
async fn request_max_stale_and_min_fresh() {
    let origin = Origin::start().await;
    origin.set("/old", Answer::cached("max-age=1", "old").header("etag", "\"o1\""));
    origin.set("/young", Answer::cached("max-age=60", "young"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/old").await;
    assert_miss(&host, &origin, "/young").await;
    let_expire().await;
    let stale = get_with(&host, "/old", &[("cache-control", "max-stale=600")]).await;
    assert_eq!(stale.text(), "old");
    assert!(is_hit(&stale), "max-stale accepts the stale entry: {}", cache_status(&stale));
    assert_eq!(origin.hits("/old"), 1);
    let fussy = get_with(&host, "/young", &[("cache-control", "min-fresh=120")]).await;
    assert_eq!(fussy.status, 200);
    assert_eq!(origin.hits("/young"), 2, "not fresh for 120 s more: to the origin ({})", cache_status(&fussy));
    assert_hit(&host, &origin, "/young").await;
}
