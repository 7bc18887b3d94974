//! Health, reconcile and DNS tests over real sockets (servers from `tests.rs`).
//! Ejection times are short and real; tests wait for states (with a generous
//! limit), never assert how long something took.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tests::{config, dead_addr, get, server, upstream};
use super::*;

/// Polls `done` every 10 ms for up to 10 s.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn health_of(upstream: &Upstream, addr: SocketAddr) -> EndpointStatus {
    upstream.status().endpoints.into_iter().find(|e| e.address == addr.to_string()).unwrap()
}

fn outlier(connect_failures: u32, base_ms: u64) -> Outlier {
    Outlier {
        consecutive_connect_failures: connect_failures,
        base_ejection: Duration::from_millis(base_ms),
        max_ejection: Duration::from_secs(60),
        ..Outlier::default()
    }
}

#[tokio::test]
async fn connect_failures_eject_and_the_endpoint_comes_back() {
    let (dead, live) = (dead_addr().await, server("live").await);
    let mut config = config("eject", &[dead, live.addr]);
    config.outlier = Some(outlier(2, 300));
    let (_registry, upstream) = upstream(config);
    while health_of(&upstream, dead).health != "ejected" {
        let response = upstream.send(get("/")).await.unwrap();
        assert_eq!(response.endpoint, live.addr);
    }
    let ejected = health_of(&upstream, dead);
    assert_eq!((ejected.ejections, ejected.errors), (1, 2));
    assert!(ejected.ejected_for_ms > 0);
    // While ejected, every request goes straight to the live endpoint.
    let before = upstream.status().endpoints[0].requests;
    for _ in 0..5 {
        assert_eq!(upstream.send(get("/")).await.unwrap().attempts, 1);
    }
    if health_of(&upstream, dead).health == "ejected" {
        assert_eq!(upstream.status().endpoints[0].requests, before, "an ejected endpoint gets no attempt");
    }
    // Recovery is automatic: the ejection ends and the endpoint is tried again.
    wait_for("the ejection to end", || health_of(&upstream, dead).health == "healthy").await;
    wait_for_attempt_on(&upstream, dead).await;
}

/// Sends until an attempt reaches `addr`.
async fn wait_for_attempt_on(upstream: &Upstream, addr: SocketAddr) {
    let before = health_of(upstream, addr).requests;
    for _ in 0..10 {
        upstream.send(get("/")).await.unwrap();
        if health_of(upstream, addr).requests > before {
            return;
        }
    }
    panic!("{addr} got no attempt after its ejection ended");
}

#[tokio::test]
async fn no_more_than_max_ejection_percent_are_ejected() {
    let live = server("live").await;
    let mut addrs = vec![dead_addr().await, dead_addr().await, dead_addr().await];
    addrs.push(live.addr);
    let mut config = config("max-percent", &addrs);
    config.outlier = Some(Outlier { max_ejection_percent: 50, ..outlier(1, 60_000) });
    config.panic_threshold_percent = 0;
    let (_registry, upstream) = upstream(config);
    for _ in 0..20 {
        // Some fail: three of four endpoints refuse, and retries are limited.
        let _ = upstream.send(get("/")).await;
    }
    let ejected = upstream.status().endpoints.iter().filter(|e| e.health == "ejected").count();
    assert_eq!(ejected, 2, "50% of 4 endpoints");
}

#[tokio::test]
async fn active_checks_mark_endpoints_and_panic_mode_uses_all() {
    let (a, b) = (server("a").await, server("b").await);
    b.health.store(500, Ordering::SeqCst);
    let mut config = config("active", &[a.addr, b.addr]);
    config.active_health = Some(ActiveHealth {
        path: "/healthz".into(),
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(1),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        expected_statuses: vec![(200, 299)],
        host: None,
    });
    let (_registry, upstream) = upstream(config);
    wait_for("b to fail its checks", || health_of(&upstream, b.addr).health == "unhealthy").await;
    assert_eq!(health_of(&upstream, a.addr).active_check_passing, Some(true));
    for _ in 0..6 {
        assert_eq!(upstream.send(get("/")).await.unwrap().endpoint, a.addr);
    }
    // Both failing: fewer than 50% healthy, so both are used.
    a.health.store(503, Ordering::SeqCst);
    wait_for("a to fail its checks", || health_of(&upstream, a.addr).health == "unhealthy").await;
    assert!(upstream.status().panic_mode);
    let mut used = std::collections::HashSet::new();
    for _ in 0..6 {
        used.insert(upstream.send(get("/")).await.unwrap().endpoint);
    }
    assert_eq!(used.len(), 2, "panic mode spreads over all endpoints");
    // b recovers after its healthy threshold.
    b.health.store(200, Ordering::SeqCst);
    wait_for("b to pass again", || health_of(&upstream, b.addr).active_check_passing == Some(true)).await;
    assert!(!upstream.status().panic_mode);
}

#[tokio::test]
async fn reconcile_keeps_health_for_unchanged_endpoints_and_resets_it_when_changed() {
    let (dead, live) = (dead_addr().await, server("live").await);
    let mut base = config("users", &[dead, live.addr]);
    base.outlier = Some(outlier(1, 60_000));
    let (registry, first) = upstream(base.clone());
    upstream_send_until_ejected(&first, dead).await;
    // New settings, same endpoints: the same upstream, still ejected, new limits.
    let mut settings = base.clone();
    settings.retries.max_retries = 0;
    settings.balance = Balance::LeastRequest;
    registry.reconcile(vec![settings, config("other", &[live.addr])]).unwrap();
    let kept = registry.get("users").unwrap();
    assert!(Arc::ptr_eq(&first, &kept));
    assert_eq!(kept.config().retries.max_retries, 0);
    assert_eq!(kept.status().policy, "least_request");
    assert_eq!(health_of(&kept, dead).health, "ejected");
    assert_eq!(registry.names(), vec!["other".to_owned(), "users".to_owned()]);
    // Changed endpoints: rebuilt, fresh health.
    let mut changed = base.clone();
    changed.endpoints.push(super::tests::spec(dead_addr().await, 1));
    registry.reconcile(vec![changed]).unwrap();
    let rebuilt = registry.get("users").unwrap();
    assert!(!Arc::ptr_eq(&first, &rebuilt));
    assert_eq!((health_of(&rebuilt, dead).health, health_of(&rebuilt, dead).ejections), ("healthy", 0));
    assert!(registry.get("other").is_none(), "removed upstreams are dropped");
    // Outside a runtime (no task could run) it refuses, changing nothing.
    let outside = registry.clone();
    let refused = std::thread::spawn(move || outside.reconcile(vec![])).join().unwrap();
    assert_eq!(refused.err().map(|e| e.kind()), Some("config"));
    // An invalid config changes nothing.
    assert!(registry.reconcile(vec![UpstreamConfig::new("empty", vec![])]).is_err());
    assert!(registry.get("users").is_some());
}

async fn upstream_send_until_ejected(upstream: &Upstream, addr: SocketAddr) {
    for _ in 0..10 {
        upstream.send(get("/")).await.unwrap();
        if health_of(upstream, addr).health == "ejected" {
            return;
        }
    }
    panic!("{addr} was not ejected");
}

/// A resolver whose answers the test changes.
#[derive(Default)]
struct FakeDns {
    answers: Mutex<HashMap<String, std::io::Result<Vec<SocketAddr>>>>,
}

impl FakeDns {
    fn set(&self, host: &str, answer: std::io::Result<Vec<SocketAddr>>) {
        self.answers.lock().unwrap().insert(host.to_owned(), answer);
    }
}

impl Resolver for FakeDns {
    fn lookup(&self, host: &str, _port: u16) -> LookupFuture {
        let answer = match self.answers.lock().unwrap().get(host) {
            Some(Ok(addrs)) => Ok(addrs.clone()),
            Some(Err(e)) => Err(std::io::Error::new(e.kind(), e.to_string())),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such name")),
        };
        Box::pin(async move { answer })
    }
}

#[tokio::test]
async fn dns_changes_swap_the_endpoint_set() {
    let (a, b) = (server("a").await, server("b").await);
    let dns = Arc::new(FakeDns::default());
    dns.set("svc.test", Ok(vec![a.addr]));
    let registry = Upstreams::with_resolver(dns.clone());
    let mut config =
        UpstreamConfig::new("dns", vec![EndpointSpec { host: "svc.test".into(), port: a.addr.port(), weight: 2 }]);
    config.dns_refresh = Duration::from_millis(100);
    registry.reconcile(vec![config]).unwrap();
    let upstream = registry.get("dns").unwrap();
    let response = upstream.send(get("/")).await.unwrap();
    assert_eq!(response.endpoint, a.addr, "the first request waits for the first answer");
    assert_eq!(response.response.headers()["x-host"], format!("svc.test:{}", a.addr.port()).as_str());
    let addresses = |u: &Upstream| u.status().endpoints.iter().map(|e| e.address.clone()).collect::<Vec<_>>();
    // The name now answers a and b: a keeps its counters, b is added.
    dns.set("svc.test", Ok(vec![a.addr, b.addr]));
    wait_for("b to be added", || addresses(&upstream).len() == 2).await;
    let status = upstream.status();
    assert_eq!((status.endpoints[0].requests, status.endpoints[0].host.as_str()), (1, "svc.test"));
    // Only b: a is gone. A failing lookup keeps the last answer.
    dns.set("svc.test", Ok(vec![b.addr]));
    wait_for("a to be removed", || addresses(&upstream) == vec![b.addr.to_string()]).await;
    dns.set("svc.test", Err(std::io::Error::other("SERVFAIL")));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(addresses(&upstream), vec![b.addr.to_string()]);
    assert_eq!(upstream.send(get("/")).await.unwrap().endpoint, b.addr);
}

mod outlier_rules {
    //! The ejection arithmetic with explicit clocks (no sockets, no waiting).
    use super::super::endpoints::{Endpoint, Wanted};
    use super::super::health::{Outcome, record};
    use super::*;
    use tokio::time::Instant;

    fn endpoints(n: u16) -> Vec<Arc<Endpoint>> {
        let config = UpstreamConfig::new("rules", vec![]);
        (0..n)
            .map(|i| {
                let addr: SocketAddr = format!("10.0.0.{i}:80").parse().unwrap();
                let wanted = Wanted { addr, host: addr.ip().to_string(), port: 80, weight: 1 };
                Arc::new(Endpoint::new(&wanted, &config).unwrap())
            })
            .collect()
    }

    fn rules() -> Outlier {
        Outlier {
            consecutive_5xx: 3,
            consecutive_gateway_errors: 2,
            consecutive_connect_failures: 2,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejection_percent: 50,
        }
    }

    fn fail(all: &[Arc<Endpoint>], i: usize, outcome: Outcome, times: u32, now: Instant) {
        for _ in 0..times {
            record(all, &all[i], outcome, &rules(), now);
        }
    }

    #[tokio::test]
    async fn ejection_grows_is_capped_and_ends_by_itself() {
        let all = endpoints(2);
        let t0 = Instant::now();
        fail(&all, 0, Outcome::ConnectFailure, 1, t0);
        assert!(!all[0].health.is_ejected(t0), "one failure is under the threshold");
        fail(&all, 0, Outcome::ConnectFailure, 1, t0);
        assert_eq!(all[0].health.ejected_for(t0), Duration::from_secs(10));
        // Over: usable again, and the next ejection lasts 2 × base, then the cap.
        let t1 = t0 + Duration::from_secs(10);
        assert!(all[0].health.is_healthy(t1));
        fail(&all, 0, Outcome::Gateway { status: false }, 2, t1);
        assert_eq!(all[0].health.ejected_for(t1), Duration::from_secs(20));
        let t2 = t1 + Duration::from_secs(20);
        fail(&all, 0, Outcome::Gateway { status: true }, 2, t2);
        assert_eq!(all[0].health.ejected_for(t2), Duration::from_secs(25), "capped at max_ejection");
        assert_eq!(all[0].health.ejections(), 3);
    }

    #[tokio::test]
    async fn a_healthy_period_lowers_the_next_ejection() {
        let all = endpoints(2);
        let t0 = Instant::now();
        fail(&all, 0, Outcome::ConnectFailure, 2, t0);
        let t1 = t0 + Duration::from_secs(10);
        fail(&all, 0, Outcome::ConnectFailure, 2, t1);
        assert_eq!(all[0].health.ejected_for(t1), Duration::from_secs(20));
        // Healthy for a base period after the ejection ended, twice: back to level 0.
        let back = t1 + Duration::from_secs(20);
        record(&all, &all[0], Outcome::Success, &rules(), back + Duration::from_secs(10));
        record(&all, &all[0], Outcome::Success, &rules(), back + Duration::from_secs(20));
        let later = back + Duration::from_secs(21);
        fail(&all, 0, Outcome::ConnectFailure, 2, later);
        assert_eq!(all[0].health.ejected_for(later), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn successes_reset_the_counts_and_5xx_count_separately() {
        let all = endpoints(2);
        let t0 = Instant::now();
        fail(&all, 0, Outcome::ConnectFailure, 1, t0);
        record(&all, &all[0], Outcome::Success, &rules(), t0);
        fail(&all, 0, Outcome::ConnectFailure, 1, t0);
        assert!(!all[0].health.is_ejected(t0), "not consecutive");
        fail(&all, 1, Outcome::ServerError, 2, t0);
        assert!(!all[1].health.is_ejected(t0));
        fail(&all, 1, Outcome::ServerError, 1, t0);
        assert!(all[1].health.is_ejected(t0), "three 5xx in a row");
    }

    #[tokio::test]
    async fn the_ejection_share_is_capped_but_one_may_always_go() {
        let all = endpoints(5);
        let t0 = Instant::now();
        for i in 0..5 {
            fail(&all, i, Outcome::ConnectFailure, 2, t0);
        }
        assert_eq!(all.iter().filter(|e| e.health.is_ejected(t0)).count(), 2, "50% of 5, rounded down");
        let one = endpoints(1);
        fail(&one, 0, Outcome::ConnectFailure, 2, t0);
        assert!(one[0].health.is_ejected(t0), "at least one may be ejected");
    }
}
