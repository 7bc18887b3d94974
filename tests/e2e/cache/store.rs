//! The cache's store across hosts: the shared tier (`shared: true`) and the
//! purge follower against a real redis-server (started here) behind the
//! hosts' shared state. Several covet processes share one Redis, as a fleet
//! does: what one host stored another serves without asking the origin; a
//! purge made through one host's admin API reaches every host's L1 and the
//! shared copies; a host started after a purge does not serve an entry the
//! purge removed (the ban is checked on L2 reads, which is also how a key
//! purge reaches the variants left in Redis); a frozen Redis is a miss, not
//! a hang, and the writes it holds up are bounded; a Redis down at start is
//! logged and the host caches in process; an ungranted namespace fails the
//! load with the grant to add.

use std::time::{Duration, Instant};

use covet_e2e::{Answer, Client, Host, Origin, RedisServer};
use http::Method;
use serde_json::{Value, json};

use super::{HOST, assert_hit, assert_miss, cache_status, eventually, get, is_hit, manifest};

/// The shared-state key of an entry (the host prefixes `covet:{namespace}:`).
fn redis_key(path: &str) -> String {
    format!("covet:cache:e:{HOST}{path}")
}

/// The cache manifest with the hosts' shared state in `redis`.
fn shared_manifest(origin: &Origin, redis: &RedisServer, cache: Value) -> String {
    let url = Value::String(redis.url());
    format!("{}services:\n  state: {{ backend: redis, url: {url}, timeout: 1s }}\n", manifest(origin, cache))
}

/// A host caching in front of `origin`, L2 in `redis`, purges polled every 20 ms.
async fn shared_host(origin: &Origin, redis: &RedisServer) -> Host {
    Host::start(shared_manifest(
        origin,
        redis,
        json!({ "shared": true, "purge_poll": "20ms", "shared_timeout": "200ms" }),
    ))
    .await
}

/// `POST /v1/cache/purge` with `body` on `host`; must be accepted.
async fn purge(host: &Host, body: Value) {
    let admin = Client::http1(host.admin_addr());
    let headers = [("content-type", "application/json")];
    let reply =
        admin.send(Method::POST, "/v1/cache/purge", &headers, body.to_string()).await.expect("the admin API answers");
    assert_eq!(reply.status, 202, "purge {body}: {}", reply.text());
    assert_eq!(reply.json()["backend"], "redis", "{}", reply.text());
}

/// Waits until the background write of `path`'s entry has reached Redis.
async fn until_in_redis(redis: &RedisServer, path: &str) {
    let key = redis_key(path);
    eventually(&format!("{key} written to Redis"), || async { !redis.get(&key).is_empty() }).await;
}

/// Waits until `GET path` on `host` answers `body`.
async fn until_body(host: &Host, path: &str, body: &str) {
    eventually(&format!("{path} answers {body:?}"), || async { get(host, path).await.text() == body }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_serves_from_redis_what_another_host_stored() {
    let (origin, redis) = (Origin::start().await, RedisServer::start());
    origin.set("/s/a", Answer::cached("max-age=600", "shared a"));
    let first = shared_host(&origin, &redis).await;
    let second = shared_host(&origin, &redis).await;

    assert_miss(&first, &origin, "/s/a").await;
    until_in_redis(&redis, "/s/a").await;
    let reply = assert_hit(&second, &origin, "/s/a").await;
    assert_eq!(reply.text(), "shared a");
    assert_eq!(origin.hits("/s/a"), 1, "one origin request for two hosts");
    assert!(reply.header("age").is_some(), "an entry from the shared tier has an Age: {:?}", reply.headers);
    // The second host filled its L1: Redis gone, it still answers from the cache.
    drop(redis);
    let again = assert_hit(&second, &origin, "/s/a").await;
    assert_eq!(again.text(), "shared a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_through_one_host_reaches_every_host_and_redis() {
    let (origin, redis) = (Origin::start().await, RedisServer::start());
    origin.set("/s/k", Answer::cached("max-age=600", "k1"));
    origin.set("/s/tagged", Answer::cached("max-age=600", "t1").header("surrogate-key", "blue"));
    let first = shared_host(&origin, &redis).await;
    let second = shared_host(&origin, &redis).await;
    for path in ["/s/k", "/s/tagged"] {
        assert_miss(&first, &origin, path).await;
        until_in_redis(&redis, path).await;
        assert_hit(&second, &origin, path).await;
        assert_hit(&first, &origin, path).await;
    }
    origin.set("/s/k", Answer::cached("max-age=600", "k2"));
    origin.set("/s/tagged", Answer::cached("max-age=600", "t2").header("surrogate-key", "blue"));

    assert!(redis.get(&redis_key("/s/k")).ends_with("k1"), "the shared copy (a frame ending with the body)");
    purge(&first, json!({ "key": format!("{HOST}/s/k") })).await;
    // A key purge deletes the shared copy (a host may store the new one meanwhile).
    let key = redis_key("/s/k");
    eventually("the purged shared copy deleted", || async {
        let copy = redis.get(&key);
        copy.is_empty() || copy.ends_with("k2")
    })
    .await;
    until_body(&second, "/s/k", "k2").await;
    until_body(&first, "/s/k", "k2").await;

    purge(&second, json!({ "tag": "blue" })).await;
    until_body(&first, "/s/tagged", "t2").await;
    until_body(&second, "/s/tagged", "t2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_started_after_a_purge_does_not_serve_what_it_removed_from_redis() {
    let (origin, redis) = (Origin::start().await, RedisServer::start());
    origin.set("/s/old", Answer::cached("max-age=600", "old").header("cache-tag", "release-7"));
    origin.set("/s/kept", Answer::cached("max-age=600", "kept").header("cache-tag", "release-8"));
    let first = shared_host(&origin, &redis).await;
    for path in ["/s/old", "/s/kept"] {
        assert_miss(&first, &origin, path).await;
        until_in_redis(&redis, path).await;
    }
    // A tag purge deletes nothing in Redis (tags are not keys there): the
    // copy stays until a reader checks it against the ban.
    purge(&first, json!({ "tag": "release-7" })).await;
    assert!(!redis.get(&redis_key("/s/old")).is_empty(), "the shared copy is still in Redis");
    origin.set("/s/old", Answer::cached("max-age=600", "new"));

    let late = shared_host(&origin, &redis).await;
    let reply = get(&late, "/s/old").await;
    assert_eq!(reply.text(), "new", "the ban loaded at start removes the shared copy: {}", cache_status(&reply));
    assert_eq!(origin.hits("/s/old"), 2);
    assert_hit(&late, &origin, "/s/kept").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_purge_reaches_variants_left_in_redis() {
    let (origin, redis) = (Origin::start().await, RedisServer::start());
    let answer = |body: &str| Answer::cached("max-age=600", body.to_owned()).header("vary", "accept-language");
    origin.set("/s/v", answer("v1"));
    let first = shared_host(&origin, &redis).await;
    let en = [("accept-language", "en")];
    assert_eq!(super::get_with(&first, "/s/v", &en).await.text(), "v1");
    // A variant's key: the primary key, a newline, `name=value` per Vary name.
    let variant = format!("{}\naccept-language=en", redis_key("/s/v"));
    until_in_redis(&redis, "/s/v").await;
    eventually("the en variant written to Redis", || async { !redis.get(&variant).is_empty() }).await;

    purge(&first, json!({ "key": format!("{HOST}/s/v") })).await;
    origin.set("/s/v", answer("v2"));
    // The purge deletes the primary key's entry (the Vary marker); the old
    // variant stays in Redis under its own key.
    eventually("the marker deleted", || async { redis.get(&redis_key("/s/v")).is_empty() }).await;
    assert!(!redis.get(&variant).is_empty(), "the old variant is still in Redis");

    // Another host stores a new marker (another variant); a third finds that
    // marker in Redis, then the old en variant, which the purge removed.
    let second = shared_host(&origin, &redis).await;
    assert_eq!(super::get_with(&second, "/s/v", &[("accept-language", "fr")]).await.text(), "v2");
    until_in_redis(&redis, "/s/v").await;
    let third = shared_host(&origin, &redis).await;
    let reply = super::get_with(&third, "/s/v", &en).await;
    assert_eq!(reply.text(), "v2", "the purged variant is not served: {}", cache_status(&reply));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_is_a_miss_not_a_hang() {
    let (origin, redis) = (Origin::start().await, RedisServer::start());
    origin.set("/s/f", Answer::cached("max-age=600", "f"));
    let host = shared_host(&origin, &redis).await;
    redis.freeze();
    let reply = assert_miss(&host, &origin, "/s/f").await;
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "f"));
    // L1 works without the shared tier.
    let hit = get(&host, "/s/f").await;
    assert!(is_hit(&hit), "{}", cache_status(&hit));
    assert_eq!(origin.hits("/s/f"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_frozen_redis_are_bounded_and_the_skips_logged() {
    let (origin, redis) = (Origin::start().await, RedisServer::start());
    // The host's state calls give up after 10 s: writes to the frozen Redis hold their slot that long.
    let url = Value::String(redis.url());
    let cache = json!({ "shared": true, "purge_poll": "20ms", "shared_timeout": "10ms" });
    let text =
        format!("{}services:\n  state: {{ backend: redis, url: {url}, timeout: 10s }}\n", manifest(&origin, cache));
    let host = Host::start(text).await;
    for i in 0..100 {
        origin.set(&format!("/w/{i}"), Answer::cached("max-age=600", "w"));
    }
    redis.freeze();
    for batch in 0..5 {
        let paths: Vec<String> = (0..20).map(|i| format!("/w/{}", batch * 20 + i)).collect();
        let replies = futures_util::future::join_all(paths.iter().map(|path| get(&host, path))).await;
        assert!(replies.iter().all(|r| r.status == 200 && r.text() == "w"), "every miss is answered");
    }
    // The purge follower reports skips after its poll, which waits out the host's timeout too.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !host.logs().contains("writes to the shared tier skipped") {
        assert!(Instant::now() < deadline, "no skipped writes logged:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line =
        host.logs().lines().find(|l| l.contains("writes to the shared tier skipped")).unwrap_or_default().to_owned();
    let skipped: u64 =
        line.split("cache: ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(skipped >= 100 - 64, "at most 64 writes in flight, the rest skipped: {line}");
    // L1 kept them all.
    assert_hit(&host, &origin, "/w/0").await;
    assert_hit(&host, &origin, "/w/99").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_start_is_logged_and_the_cache_works_in_process() {
    let (origin, mut redis) = (Origin::start().await, RedisServer::start());
    origin.set("/s/d", Answer::cached("max-age=600", "d"));
    redis.kill();
    let host = shared_host(&origin, &redis).await;
    assert_miss(&host, &origin, "/s/d").await;
    assert_hit(&host, &origin, "/s/d").await;
    let line = host.log_line(&["cache: reading the purge log failed"]).await;
    assert!(line.is_some(), "the failed purge-log read is logged:\n{}", host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_not_granted_fails_the_load_naming_the_grant() {
    let origin = Origin::start().await;
    let text = manifest(&origin, json!({}));
    let ungranted = text.replace("    capabilities: { state: [cache] }\n", "");
    assert_ne!(ungranted, text, "the manifest grants the namespace");
    let exited = Host::builder(ungranted).run_to_exit(Duration::from_secs(30));
    assert!(!exited.status.success(), "the host started without the grant");
    assert!(
        exited.stderr.contains("shared state namespace 'cache' is not granted")
            && exited.stderr.contains("capabilities: { state: [cache] }"),
        "{}",
        exited.stderr
    );
}
