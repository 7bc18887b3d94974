//! Health lives in the host, not in the plugin: an ejection (with its
//! counters) survives a swap of the proxy plugin and a manifest reload that
//! leaves the upstream's endpoints unchanged, while a reload that changes
//! the endpoint set starts the upstream afresh. The same per-endpoint state
//! is in `/metrics` (`covet_upstream_*{upstream, endpoint}`) and in the
//! admin gRPC `ListUpstreams`.

use covet_e2e::{Host, TestUpstream};
use http::Method;
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::{UPSTREAM, answered_by, endpoint_status, get, manifest, over, status};
use crate::swap::{admin_post, replace, swap};

/// The client generated from `host/proto/covet/admin/v1/admin.proto` (tests/build.rs).
mod pb {
    tonic::include_proto!("covet.admin.v1");
}

/// Upstream settings that eject `down` for a minute at its first connect failure.
fn ejecting() -> Value {
    let passive = json!({ "consecutive_connect_failures": 1, "base_ejection": "60s" });
    json!({ "health": { "passive": passive }, "retries": { "attempts": 2, "budget": "100%", "min_per_sec": 1000 } })
}

/// A host over `up` and a stopped `down`, after enough requests to eject `down`.
async fn with_down_ejected(up: &TestUpstream, down: &TestUpstream) -> Host {
    let host = Host::start(manifest(over(&[up, down], ejecting()), json!({}), "/{*rest}")).await;
    for _ in 0..4 {
        let reply = get(&host, "/state").await;
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "up".to_owned()));
    }
    let down_status = endpoint_status(&host, down).await;
    assert_eq!((down_status["health"].clone(), down_status["ejections"].clone()), (json!("ejected"), json!(1)));
    host
}

/// Writes `yaml` as the host's manifest and reloads it.
async fn reload(host: &Host, yaml: String) -> Value {
    let staging = host.dir().join("next.yaml");
    std::fs::write(&staging, yaml).unwrap();
    replace(&staging, &host.path("plugins.yaml"));
    let reply = admin_post(host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn an_ejection_survives_a_swap_and_a_reload_with_the_same_endpoints() {
    let (up, down) = (TestUpstream::start("up").await, TestUpstream::start("down").await);
    down.stop();
    let host = with_down_ejected(&up, &down).await;
    let requests_before = endpoint_status(&host, &up).await["requests"].clone();

    let reply = swap(&host, "proxy", json!({ "config": { "upstream": UPSTREAM, "via": "edge" } })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (reply, echo) = via_of(&host).await;
    assert_eq!(echo, "1.1 edge", "the swapped-in instance serves");
    assert_eq!(answered_by(&reply), "up");
    let after_swap = endpoint_status(&host, &down).await;
    assert_eq!(
        (after_swap["health"].clone(), after_swap["ejections"].clone()),
        (json!("ejected"), json!(1)),
        "{after_swap}"
    );
    assert_eq!(endpoint_status(&host, &up).await["requests"], requests_before.as_u64().unwrap() + 1, "counters go on");

    // Other settings change, the endpoints do not: the endpoints and their health stay.
    let mut settings = ejecting();
    settings["timeout"] = json!("20s");
    reload(&host, manifest(over(&[&up, &down], settings), json!({}), "/{*rest}")).await;
    let after_reload = endpoint_status(&host, &down).await;
    assert_eq!(
        (after_reload["health"].clone(), after_reload["ejections"].clone()),
        (json!("ejected"), json!(1)),
        "{after_reload}"
    );
    for _ in 0..4 {
        assert_eq!(answered_by(&get(&host, "/state").await), "up", "the ejected endpoint stays out");
    }

    // A changed endpoint set is a new upstream: nothing ejected yet.
    let extra = TestUpstream::start("extra").await;
    reload(&host, manifest(over(&[&up, &down, &extra], ejecting()), json!({}), "/{*rest}")).await;
    let fresh = endpoint_status(&host, &down).await;
    assert_eq!((fresh["health"].clone(), fresh["ejections"].clone()), (json!("healthy"), json!(0)), "{fresh}");
    assert_eq!(status(&host).await["endpoints"].as_array().map(Vec::len), Some(3));
}

/// `GET /via`: the reply and the `via` header the upstream saw.
async fn via_of(host: &Host) -> (covet_e2e::Reply, String) {
    let reply = host.http1().send(Method::GET, "/via", &[], "").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let via = reply.json()["headers"]["via"].as_str().unwrap_or_default().to_owned();
    (reply, via)
}

/// The sample of `family` for `endpoint` of upstream `users` in a `/metrics` scrape.
fn sample(scrape: &str, family: &str, endpoint: &str) -> f64 {
    let series = format!("{family}{{upstream=\"{UPSTREAM}\",endpoint=\"{endpoint}\"}} ");
    let line = scrape.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in:\n{scrape}"));
    line[series.len()..].trim().parse().expect("a number")
}

#[tokio::test]
async fn metrics_and_grpc_show_each_endpoints_state() {
    let (up, down) = (TestUpstream::start("up").await, TestUpstream::start("down").await);
    down.stop();
    let host = with_down_ejected(&up, &down).await;
    let reply = covet_e2e::Client::http1(host.admin_addr()).get("/metrics").await.expect("/metrics");
    assert_eq!(reply.status, 200);
    let scrape = reply.text();
    assert_eq!(sample(&scrape, "covet_upstream_requests_total", &up.endpoint()), up.requests() as f64);
    assert_eq!(sample(&scrape, "covet_upstream_requests_total", &down.endpoint()), 1.0);
    assert_eq!(sample(&scrape, "covet_upstream_errors_total", &down.endpoint()), 1.0);
    assert_eq!(sample(&scrape, "covet_upstream_ejections_total", &down.endpoint()), 1.0);
    assert_eq!(sample(&scrape, "covet_upstream_endpoint_healthy", &up.endpoint()), 1.0);
    assert_eq!(sample(&scrape, "covet_upstream_endpoint_healthy", &down.endpoint()), 0.0);
    assert_eq!(sample(&scrape, "covet_upstream_latency_seconds_count", &up.endpoint()), up.requests() as f64);
    assert!(scrape.contains(&format!("covet_upstream_retries_total{{upstream=\"{UPSTREAM}\"}} 1")), "{scrape}");

    let channel = Channel::from_shared(format!("http://{}", host.admin_addr())).unwrap().connect().await.unwrap();
    let mut client = pb::admin_client::AdminClient::new(channel);
    let listed = client.list_upstreams(pb::ListUpstreamsRequest {}).await.expect("ListUpstreams").into_inner();
    let users = listed.upstreams.iter().find(|u| u.name == UPSTREAM).expect("users over gRPC");
    assert_eq!(users.policy, "round_robin");
    let health: Vec<(String, String, u64)> =
        users.endpoints.iter().map(|e| (e.address.clone(), e.health.clone(), e.ejections)).collect();
    assert!(health.contains(&(down.endpoint(), "ejected".into(), 1)), "{health:?}");
    assert!(health.contains(&(up.endpoint(), "healthy".into(), 0)), "{health:?}");
}
