//! The upstream proxy end to end: the real covet binary with the `proxy`
//! plugin (`covet-proxy`, native) in front of real hyper upstreams the tests
//! start on port 0 ([`TestUpstream`]), configured through the manifest's
//! `upstreams:` block, observed from the client, the upstreams' own counters,
//! the admin API (`GET /v1/upstreams`) and the access log.
//!
//! One file per area: balancing policies, health (passive ejection and
//! recovery, active checks, panic mode), retries (budget, timeouts, replay
//! buffer), errors (502/503/504, an upstream dying mid-body), HTTP
//! semantics (hop-by-hop, forwarding headers, Via, Host, prefixes), TLS
//! (custom CA, SNI, client certificates), transport (h2c, 100 MB both ways
//! with bounded RSS, back-pressure, 100-continue), the access log, and
//! health state kept by the host across a swap of the proxy and a reload
//! (with `/metrics` and gRPC `ListUpstreams`).

mod balancing;
mod config;
mod errors;
mod health;
mod logging;
mod retries;
mod semantics;
mod state;
mod tls;
mod transport;

use std::time::{Duration, Instant};

use covet_e2e::{Client, Host, Reply, TestUpstream, plugin};
use serde_json::{Value, json};

/// The upstream every test names.
pub const UPSTREAM: &str = "users";

/// A manifest: the access log on, upstream `users` with `settings` (a JSON
/// object; `endpoints` included) and the proxy plugin with `config` (its
/// `upstream` set to `users`) handling `route`.
pub fn manifest(settings: Value, config: Value, route: &str) -> String {
    let mut config = config;
    config["upstream"] = json!(UPSTREAM);
    let path = Value::String(plugin("covet-proxy").display().to_string());
    [
        "listen:\n  - addr: 127.0.0.1:0\nlog:\n  access: true\n".to_owned(),
        format!("upstreams:\n  {UPSTREAM}: {settings}\n"),
        format!("plugins:\n  proxy:\n    kind: native\n    path: {path}\n"),
        format!("    capabilities: {{ upstreams: [{UPSTREAM}] }}\n    config: {config}\n"),
        format!("routes:\n  - path: {route:?}\n    handler: proxy\n"),
    ]
    .concat()
}

/// `settings` with `endpoints` set to the upstreams' addresses (weight 1).
pub fn over(upstreams: &[&TestUpstream], settings: Value) -> Value {
    let mut settings = if settings.is_null() { json!({}) } else { settings };
    settings["endpoints"] = upstreams.iter().map(|u| Value::String(u.endpoint())).collect();
    settings
}

/// A host proxying every path (`/{*rest}`) to `upstreams` with `settings`.
pub async fn gateway(upstreams: &[&TestUpstream], settings: Value) -> Host {
    Host::start(manifest(over(upstreams, settings), json!({}), "/{*rest}")).await
}

/// `GET path` through the host, which must answer.
pub async fn get(host: &Host, path: &str) -> Reply {
    host.http1().get(path).await.unwrap_or_else(|e| panic!("GET {path}: {e}\nlogs:\n{}", host.logs()))
}

/// Which upstream answered (`x-upstream`), panicking with the reply when none did.
pub fn answered_by(reply: &Reply) -> String {
    match reply.header("x-upstream") {
        Some(name) => name.to_owned(),
        None => panic!("no upstream answered: {} {}", reply.status, reply.text()),
    }
}

/// The upstream's status from `GET /v1/upstreams`.
pub async fn status(host: &Host) -> Value {
    let reply = Client::http1(host.admin_addr()).get("/v1/upstreams").await.expect("GET /v1/upstreams");
    assert_eq!(reply.status, 200, "GET /v1/upstreams: {}", reply.text());
    let body = reply.json();
    let all = body["upstreams"].as_array().unwrap_or_else(|| panic!("an `upstreams` array in {body}"));
    all.iter().find(|u| u["name"] == UPSTREAM).cloned().unwrap_or_else(|| panic!("`{UPSTREAM}` in {body}"))
}

/// One endpoint's entry in the admin status.
pub async fn endpoint_status(host: &Host, upstream: &TestUpstream) -> Value {
    let status = status(host).await;
    let endpoints = status["endpoints"].as_array().unwrap_or_else(|| panic!("endpoints in {status}"));
    let address = upstream.endpoint();
    endpoints
        .iter()
        .find(|e| e["address"] == address.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{address} in {status}"))
}

/// Polls the admin status until `upstream`'s health is `health` (panics after 10 s).
pub async fn wait_health(host: &Host, upstream: &TestUpstream, health: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let endpoint = endpoint_status(host, upstream).await;
        if endpoint["health"] == health {
            return endpoint;
        }
        assert!(Instant::now() < deadline, "{} never became {health}: {endpoint}", upstream.name());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `GET /` until `upstream` has received a request (panics after 10 s);
/// every reply on the way must be a 200.
pub async fn until_reached(host: &Host, upstream: &TestUpstream) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = upstream.requests();
    while upstream.requests() == before {
        let reply = get(host, "/poll").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(Instant::now() < deadline, "{} got no traffic; status: {}", upstream.name(), status(host).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
