//! covet as a fleet on loopback (docs/fleet.md): three real covet processes
//! and one real redis-server, every host with `services.state` on that Redis,
//! the `cache` filter (`shared: true`) in front of the `proxy` handler to one
//! counting origin, and `rate-limit` with `backend: redis`:
//!
//! - a cached entry is shared: host A misses (the origin's first request),
//!   hosts B and C are served from the shared tier (no second request);
//! - a purge by tag through host A's admin API reaches all three: the purged
//!   version leaves every host's memory (each then answers a newer one),
//!   an entry with another tag stays;
//! - a limit of N per window is one limit for the fleet: the admitted sum
//!   over the three hosts is exactly N.

use std::time::{Duration, Instant};

use covet_e2e::{Answer, Client, Host, Origin, RedisServer, Reply, plugin};
use http::Method;
use serde_json::{Value, json};

/// The `Host` of every cached request (the cache key's host).
const HOST: &str = "fleet.test";
/// The rate limit's N (per hour: nothing refills during the test).
const LIMIT: usize = 5;
/// How long a test waits for something the fleet does in the background (an
/// L2 write landing, a purge applied on the next `purge_poll`).
const PATIENCE: Duration = Duration::from_secs(10);

/// One host's manifest: shared state on `redis`, the proxy to `origin`, the
/// cache (shared tier on) on every path, the Redis-backed limit on `/limited`.
fn manifest(redis: &RedisServer, origin: &Origin) -> String {
    let path = |name: &str| Value::String(plugin(name).display().to_string());
    let upstream = json!({ "endpoints": [origin.endpoint()] });
    let cache = json!({ "shared": true, "purge_poll": "20ms", "shared_timeout": "1s" });
    let limit = json!({ "rate": format!("{LIMIT}/h"), "burst": LIMIT, "key": "header:x-api-key", "backend": "redis" });
    [
        format!("listen:\n  - addr: 127.0.0.1:0\nservices:\n  state: {{ backend: redis, url: {:?}, timeout: 1s }}\n", redis.url()),
        format!("upstreams:\n  origin: {upstream}\nplugins:\n"),
        format!("  proxy:\n    kind: native\n    path: {}\n", path("covet-proxy")),
        "    capabilities: { upstreams: [origin] }\n    config: { upstream: origin }\n".to_owned(),
        format!("  cache:\n    kind: native\n    path: {}\n", path("covet-cache")),
        format!("    capabilities: {{ state: [cache] }}\n    config: {cache}\n"),
        format!("  limit:\n    kind: native\n    path: {}\n", path("covet-rate-limit")),
        format!("    capabilities: {{ state: [ratelimit] }}\n    config: {limit}\n"),
        "routes:\n  - path: /limited\n    filters: [limit]\n    handler: proxy\n".to_owned(),
        "  - path: \"/{*rest}\"\n    filters: [cache]\n    handler: proxy\n".to_owned(),
    ]
    .concat()
}

/// Redis, the origin and three hosts sharing them.
async fn fleet() -> (RedisServer, Origin, Vec<Host>) {
    let redis = RedisServer::start();
    let origin = Origin::start().await;
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(Host::start(manifest(&redis, &origin)).await);
    }
    (redis, origin, hosts)
}

/// `GET path` on `host` with `Host: fleet.test`.
async fn get(host: &Host, path: &str) -> Reply {
    let reply = host.http1().send(Method::GET, path, &[("host", HOST)], "").await;
    let reply = reply.unwrap_or_else(|e| panic!("GET {path}: {e}\nlogs:\n{}", host.logs()));
    assert_eq!(reply.status, 200, "GET {path}: {}\nlogs:\n{}", reply.text(), host.logs());
    reply
}

fn cache_status(reply: &Reply) -> &str {
    reply.header("cache-status").unwrap_or("")
}

/// Which origin answer (its `x-origin-seq`) a reply carries.
fn origin_seq(reply: &Reply) -> u64 {
    reply.header("x-origin-seq").and_then(|s| s.parse().ok()).expect("x-origin-seq")
}

/// `redis-cli ARGS…` on the fleet's Redis: its output.
fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let socket = redis.url().trim_start_matches("redis+unix://").to_owned();
    let out = std::process::Command::new("redis-cli").args(["-s", &socket]).args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until `path`'s entry is in the shared tier (host A writes it in the
/// background after answering). The L2 key layout is the store's:
/// `{state prefix}{namespace}:e:{primary key}` (plugins/cache/src/store/shared.rs).
async fn until_shared(redis: &RedisServer, path: &str) {
    let key = format!("covet:cache:e:{HOST}{path}");
    let deadline = Instant::now() + PATIENCE;
    while redis_cli(redis, &["EXISTS", &key]) != "1" {
        assert!(Instant::now() < deadline, "{key} never reached Redis; its keys: {}", redis_cli(redis, &["KEYS", "*"]));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A (miss) stores `path`; B and C then hit the shared tier: one origin request.
async fn shared_by_all(redis: &RedisServer, origin: &Origin, hosts: &[Host], path: &str) {
    let first = get(&hosts[0], path).await;
    assert!(cache_status(&first).contains("fwd=uri-miss"), "host A: {}", cache_status(&first));
    assert_eq!(origin.hits(path), 1, "host A's miss went to the origin once");
    until_shared(redis, path).await;
    for (name, host) in ["B", "C"].iter().zip(&hosts[1..]) {
        let reply = get(host, path).await;
        assert!(cache_status(&reply).contains("; hit"), "host {name}: {}", cache_status(&reply));
        assert_eq!(origin_seq(&reply), 1, "host {name} serves the origin's first answer");
        assert_eq!(reply.text(), first.text(), "host {name}: the same body");
    }
    assert_eq!(origin.hits(path), 1, "B and C were served from the shared tier");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_origin_request_serves_the_whole_fleet() {
    let (redis, origin, hosts) = fleet().await;
    origin.set("/shared", Answer::cached("max-age=300", "one version for the fleet"));
    shared_by_all(&redis, &origin, &hosts, "/shared").await;
    // And each host now holds it in its own memory too.
    for host in &hosts {
        assert!(cache_status(&get(host, "/shared").await).contains("; hit"));
    }
    assert_eq!(origin.hits("/shared"), 1);
}

/// `POST /v1/cache/purge` on `host`'s admin API.
async fn purge(host: &Host, body: Value) -> Reply {
    let admin = Client::http1(host.admin_addr());
    let headers = [("content-type", "application/json")];
    admin.send(Method::POST, "/v1/cache/purge", &headers, body.to_string()).await.expect("the admin API answers")
}

/// Polls `GET path` on `host` until it answers another version than the
/// origin's first (the ban reached that host's memory).
async fn until_newer(host: &Host, name: &str, path: &str) -> Reply {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = get(host, path).await;
        if origin_seq(&reply) > 1 {
            return reply;
        }
        assert!(Instant::now() < deadline, "host {name} still serves the purged version: {}", cache_status(&reply));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_host_reaches_every_host() {
    let (redis, origin, hosts) = fleet().await;
    origin.set("/tagged", Answer::cached("max-age=300", "tagged").header("surrogate-key", "fleet-tag other"));
    origin.set("/kept", Answer::cached("max-age=300", "kept").header("surrogate-key", "unrelated"));
    shared_by_all(&redis, &origin, &hosts, "/tagged").await;
    shared_by_all(&redis, &origin, &hosts, "/kept").await;

    let reply = purge(&hosts[0], json!({ "tag": "fleet-tag" })).await;
    assert_eq!(reply.status, 202, "purge: {}", reply.text());
    assert_eq!(reply.json()["backend"], "redis", "{}", reply.text());

    // Every host drops the purged version: the first refetch goes to the
    // origin, a later host may take that newer version from the shared tier.
    for (name, host) in ["A", "B", "C"].iter().zip(&hosts) {
        let reply = until_newer(host, name, "/tagged").await;
        assert_eq!(reply.text(), "tagged");
    }
    let refetches = origin.hits("/tagged") - 1;
    assert!((1..=3).contains(&refetches), "{refetches} origin requests after the purge (one per host at most)");
    for (name, host) in ["A", "B", "C"].iter().zip(&hosts) {
        let kept = get(host, "/kept").await;
        assert!(cache_status(&kept).contains("; hit"), "host {name}: /kept was not purged: {}", cache_status(&kept));
    }
    assert_eq!(origin.hits("/kept"), 1, "the other tag's entry was never refetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_one_limit_for_the_fleet() {
    let (_redis, origin, hosts) = fleet().await;
    origin.set("/limited", Answer::ok("admitted"));
    let mut admitted = [0usize; 3];
    let mut refused = 0;
    // Round-robin over the hosts, well past the limit.
    for round in 0..(LIMIT + 2) {
        for (i, host) in hosts.iter().enumerate() {
            let reply = host.http1().send(Method::GET, "/limited", &[("x-api-key", "fleet")], "").await.unwrap();
            match reply.status.as_u16() {
                200 => admitted[i] += 1,
                429 => refused += 1,
                other => panic!("round {round}, host {i}: status {other}: {}", reply.text()),
            }
        }
    }
    let total: usize = admitted.iter().sum();
    assert_eq!(total, LIMIT, "admitted per host {admitted:?}: the fleet shares one limit of {LIMIT}");
    assert_eq!(refused, 3 * (LIMIT + 2) - LIMIT);
    assert_eq!(origin.hits("/limited"), LIMIT, "only admitted requests reached the origin");
    assert!(admitted.iter().filter(|&&n| n > 0).count() >= 2, "the limit was spent on more than one host: {admitted:?}");
}
