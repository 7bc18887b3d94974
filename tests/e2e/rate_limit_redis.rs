//! rate-limit with `backend: redis`: three real covet processes sharing one
//! real redis-server (started here on a unix socket) enforce one limit in
//! total, and a dead Redis gets the configured `on_error` policy within the
//! timeout.

use std::time::{Duration, Instant};

use covet_e2e::{Host, RedisServer, Reply, plugin};
use http::Method;
use serde_json::{Value, json};

use crate::common::{assert_problem, labelled};

/// An echo route behind a Redis-backed limit keyed by `x-api-key`; the host's
/// shared state is `redis` with a generous host timeout, so the plugin's own
/// `redis.timeout` is the one that fires.
fn manifest(redis: &RedisServer, config: Value) -> String {
    let limiter = Value::String(plugin("covet-rate-limit").display().to_string());
    let echo = Value::String(plugin("covet-test-plugin").display().to_string());
    let url = Value::String(redis.url());
    format!(
        "listen:\n  - addr: 127.0.0.1:0\n\
         services:\n  state: {{ backend: redis, url: {url}, timeout: 1s }}\n\
         plugins:\n\
         \x20 limit:\n    kind: native\n    path: {limiter}\n    config: {config}\n    capabilities: {{ state: [ratelimit] }}\n\
         \x20 echo:\n    kind: native\n    path: {echo}\n    config: {}\n\
         routes:\n  - path: /api\n    filters: [limit]\n    handler: echo\n",
        labelled("echo")
    )
}

async fn call(host: &Host) -> Reply {
    host.http1().send(Method::GET, "/api", &[("x-api-key", "fleet")], "").await.unwrap()
}

#[tokio::test]
async fn three_hosts_sharing_one_redis_admit_one_limit_in_total() {
    let redis = RedisServer::start();
    let config = json!({ "rate": "20/s", "burst": 20, "key": "header:x-api-key", "backend": "redis" });
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(Host::start(manifest(&redis, config.clone())).await);
    }
    let started = Instant::now();
    let run_for = Duration::from_secs(2);
    let tallies = futures_join(hosts.iter().map(|host| async move {
        let (mut admitted, mut refused) = (0u64, 0u64);
        while started.elapsed() < run_for {
            let reply = call(host).await;
            match reply.status.as_u16() {
                200 => admitted += 1,
                429 => refused += 1,
                other => panic!("status {other}: {}", reply.text()),
            }
        }
        (admitted, refused)
    }))
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let admitted: u64 = tallies.iter().map(|t| t.0).sum();
    let refused: u64 = tallies.iter().map(|t| t.1).sum();
    // GCRA: at most the burst plus the rate over the run, whichever host asks.
    let bound = 20.0 + 20.0 * elapsed;
    assert!(admitted as f64 <= bound + 2.0, "{admitted} admitted in {elapsed:.2} s; one shared limit allows {bound:.0}");
    assert!(admitted > 20, "{admitted} admitted: the bucket never refilled");
    assert!(refused > 0, "nothing was refused: the hosts did not share a bucket");
    assert!(tallies.iter().all(|t| t.0 > 0), "every host admitted some: {tallies:?}");
}

/// Runs the futures concurrently on this task and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in set.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// The bound on one request while Redis is down: the plugin's timeout plus slack.
const TIMEOUT: Duration = Duration::from_millis(50);
const SLACK: Duration = Duration::from_millis(500);

/// How the test takes Redis down.
#[derive(Clone, Copy, PartialEq)]
enum Down {
    /// The process is gone: connections are refused.
    Killed,
    /// The process is stopped: requests wait until the timeout.
    Frozen,
}

/// Starts a host on a Redis that is taken down once the host answers, then
/// sends 20 requests; returns the host and each reply with how long it took.
async fn with_redis_down(on_error: &str, down: Down) -> (Host, Vec<(Reply, Duration)>) {
    let mut redis = RedisServer::start();
    let config = json!({
        "rate": "1/h", "burst": 1, "key": "header:x-api-key", "backend": "redis",
        "redis": { "timeout": "50ms", "on_error": on_error },
    });
    let host = Host::start(manifest(&redis, config)).await;
    assert_eq!(call(&host).await.status, 200, "the first request, with Redis up");
    match down {
        Down::Killed => redis.kill(),
        Down::Frozen => redis.freeze(),
    }
    let mut replies = Vec::new();
    for _ in 0..20 {
        let sent = Instant::now();
        let reply = call(&host).await;
        replies.push((reply, sent.elapsed()));
    }
    (host, replies)
}

/// The outage is logged once, with its count, not once per request.
async fn assert_logged_once(host: &Host, on_error: &str) {
    let line = host.log_line(&["rate-limit `limit`: Redis failed"]).await.expect("no log line about the outage");
    assert!(line.contains(&format!("on_error: {on_error}")), "{line}");
    let lines = host.logs().lines().filter(|l| l.contains("Redis failed")).count();
    assert_eq!(lines, 1, "20 failed requests within 10 s are one log line:\n{}", host.logs());
}

#[tokio::test]
async fn redis_down_with_on_error_allow_admits_every_request_within_the_timeout() {
    let (host, replies) = with_redis_down("allow", Down::Killed).await;
    for (reply, took) in replies {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(reply.json()["metadata"]["ratelimit.key"].is_null(), "no bucket was read: {}", reply.text());
        assert!(reply.header("ratelimit-remaining").is_none(), "no bucket was read");
        assert!(took < TIMEOUT + SLACK, "a request took {took:?} with Redis down");
    }
    assert_logged_once(&host, "allow").await;
}

#[tokio::test]
async fn redis_down_with_on_error_deny_refuses_every_request_within_the_timeout() {
    let (host, replies) = with_redis_down("deny", Down::Killed).await;
    for (reply, took) in replies {
        let error = assert_problem(&reply, 503, "RATE_LIMIT_UNAVAILABLE");
        assert!(error["details"]["reason"].is_string(), "{error}");
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(took < TIMEOUT + SLACK, "a request took {took:?} with Redis down");
    }
    assert_logged_once(&host, "deny").await;
}

#[tokio::test]
async fn a_frozen_redis_is_cut_off_at_the_plugin_timeout() {
    let (host, replies) = with_redis_down("deny", Down::Frozen).await;
    for (reply, took) in replies {
        let error = assert_problem(&reply, 503, "RATE_LIMIT_UNAVAILABLE");
        assert_eq!(error["details"]["reason"], "timeout", "{error}");
        assert!(took < TIMEOUT + SLACK, "a request took {took:?} with Redis frozen");
    }
    assert_logged_once(&host, "deny").await;
}

#[tokio::test]
async fn an_ungranted_namespace_is_reported_as_misconfigured() {
    let redis = RedisServer::start();
    let config = json!({ "rate": "10/s", "backend": "redis", "redis": { "on_error": "deny" } });
    let manifest = manifest(&redis, config).replace("    capabilities: { state: [ratelimit] }\n", "");
    let host = Host::start(manifest).await;
    let error = assert_problem(&call(&host).await, 503, "RATE_LIMIT_UNAVAILABLE");
    assert_eq!(error["details"]["reason"], "misconfigured", "{error}");
    let line = host.log_line(&["rate-limit `limit`: Redis failed"]).await.expect("no log line");
    assert!(line.contains("capabilities"), "the log says which grant to add: {line}");
}
