//! The cache plugin end to end: the real covet binary with the `cache`
//! filter (`covet-cache`, native) in front of the `proxy` handler
//! (`covet-proxy`) in front of a real origin the test starts ([`Origin`]:
//! it answers per path with the headers the test sets and counts every
//! request that reached it). What the cache did is read from the origin's
//! count (did the request get there?), the reply's `Cache-Status` and `Age`,
//! the access log and the admin API.
//!
//! One file per area: freshness (max-age, s-maxage, Expires, Age, heuristic,
//! what is never stored, TTL and bypass rules), keys (the `key:` config;
//! `no-cache`, `must-revalidate`, `max-stale`, `min-fresh`), config refusals,
//! requests (Vary, HEAD, POST invalidation, request directives), revalidation
//! (ETag, Last-Modified, client conditionals), coalescing, stale serving
//! (stale-while-revalidate, stale-if-error), bounds (max_memory,
//! max_object_size), purges and what the cache reports (Cache-Status, the
//! access log).

mod bounds;
mod coalesce;
mod config;
mod freshness;
mod keys;
mod purge;
mod report;
mod requests;
mod revalidate;
mod stale;
mod store;

use std::time::{Duration, Instant};

use covet_e2e::{Host, Origin, Reply, plugin};
use http::Method;
use serde_json::{Value, json};

/// The `Host` every request sends (the cache key's host).
pub const HOST: &str = "cache.test";

/// How long a test waits for something that should happen soon (a purge
/// applied, a background refresh stored).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A manifest: access log on, upstream `origin` on `origin`, the cache
/// filter with `cache` (its config) in front of the proxy on every path.
pub fn manifest(origin: &Origin, cache: Value) -> String {
    let proxy = Value::String(plugin("covet-proxy").display().to_string());
    let cache_so = Value::String(plugin("covet-cache").display().to_string());
    let upstream = json!({ "endpoints": [origin.endpoint()] });
    [
        "listen:\n  - addr: 127.0.0.1:0\nlog:\n  access: true\n".to_owned(),
        format!("upstreams:\n  origin: {upstream}\n"),
        format!("plugins:\n  proxy:\n    kind: native\n    path: {proxy}\n"),
        "    capabilities: { upstreams: [origin] }\n    config: { upstream: origin }\n".to_owned(),
        format!("  cache:\n    kind: native\n    path: {cache_so}\n"),
        format!("    capabilities: {{ state: [cache] }}\n    config: {cache}\n"),
        "routes:\n  - path: \"/{*rest}\"\n    filters: [cache]\n    handler: proxy\n".to_owned(),
    ]
    .concat()
}

/// A host caching with `cache` in front of `origin`.
pub async fn gateway(origin: &Origin, cache: Value) -> Host {
    Host::start(manifest(origin, cache)).await
}

/// `method path` with `headers` (and `Host: cache.test` unless given); the host must answer.
pub async fn send(host: &Host, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        all.push(("host", HOST));
    }
    let method_name = method.to_string();
    host.http1()
        .send(method, path, &all, "")
        .await
        .unwrap_or_else(|e| panic!("{method_name} {path}: {e}\nlogs:\n{}", host.logs()))
}

/// `GET path` with `headers`.
pub async fn get_with(host: &Host, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(host, Method::GET, path, headers).await
}

/// `GET path`.
pub async fn get(host: &Host, path: &str) -> Reply {
    get_with(host, path, &[]).await
}

/// The reply's `Cache-Status` (panics, with the reply, when there is none).
pub fn cache_status(reply: &Reply) -> String {
    match reply.header("cache-status") {
        Some(status) => status.to_owned(),
        None => panic!("no cache-status: {} {:?} {}", reply.status, reply.headers, reply.text()),
    }
}

/// Whether the reply was served from the cache (`Cache-Status: covet; hit…`).
pub fn is_hit(reply: &Reply) -> bool {
    cache_status(reply).starts_with("covet; hit")
}

/// The reply's `Age` in seconds (panics when it has none).
pub fn age(reply: &Reply) -> u64 {
    let age = reply.header("age").unwrap_or_else(|| panic!("no age header: {:?}", reply.headers));
    age.parse().unwrap_or_else(|_| panic!("age {age:?} is not a number"))
}

/// The `x-origin-seq` of the origin answer behind the reply.
pub fn origin_seq(reply: &Reply) -> u64 {
    let seq = reply.header("x-origin-seq").unwrap_or_else(|| panic!("no x-origin-seq: {:?}", reply.headers));
    seq.parse().expect("a number")
}

/// The `ttl=` parameter of a `Cache-Status` (negative when stale).
pub fn ttl(status: &str) -> i64 {
    let param = status.split(';').map(str::trim).find_map(|p| p.strip_prefix("ttl="));
    let param = param.unwrap_or_else(|| panic!("no ttl in {status:?}"));
    param.parse().unwrap_or_else(|_| panic!("ttl {param:?} in {status:?}"))
}

/// Asserts that `GET path` is answered from the cache (a hit, the origin not called).
pub async fn assert_hit(host: &Host, origin: &Origin, path: &str) -> Reply {
    let before = origin.hits(path);
    let reply = get(host, path).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(origin.hits(path), before, "{path} went to the origin: {}", cache_status(&reply));
    assert!(is_hit(&reply), "{path}: {}", cache_status(&reply));
    reply
}

/// Asserts that `GET path` goes to the origin (once).
pub async fn assert_miss(host: &Host, origin: &Origin, path: &str) -> Reply {
    let before = origin.hits(path);
    let reply = get(host, path).await;
    assert_eq!(origin.hits(path), before + 1, "{path} did not reach the origin once: {}", cache_status(&reply));
    assert!(!is_hit(&reply), "{path}: {}", cache_status(&reply));
    reply
}

/// Waits until an entry with `max-age=1` is stale for sure (the cache's
/// clock has whole seconds; a test waiting for staleness asserts no timing).
pub async fn let_expire() {
    tokio::time::sleep(Duration::from_millis(2_500)).await;
}

/// Calls `probe` until it returns true (panics with `what` after [`PATIENCE`]).
pub async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !probe().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
