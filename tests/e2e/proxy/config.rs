//! A proxy that is misconfigured is refused with a message naming what to
//! fix, and a refused swap leaves the running proxy serving.

use covet_e2e::{Client, Host, TestUpstream};
use http::Method;
use serde_json::json;

use super::{UPSTREAM, answered_by, get, manifest, over};
use crate::common::PATIENCE;

/// The proxy's config names upstream `orders`, defined but not granted to it: the host does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_naming_an_ungranted_upstream_is_refused_at_start() {
    let users = TestUpstream::start("u1").await;
    let granted = manifest(over(&[&users], json!({})), json!({}), "/{*rest}");
    let orders = format!("upstreams:\n  orders: {{ endpoints: [\"{}\"] }}\n  {UPSTREAM}:", users.endpoint());
    let ungranted = granted
        .replace(&format!("upstreams:\n  {UPSTREAM}:"), &orders)
        .replace(&format!("\"upstream\":\"{UPSTREAM}\""), "\"upstream\":\"orders\"");
    assert!(ungranted.contains("\"upstream\":\"orders\""), "{ungranted}");
    let exited = Host::builder(ungranted).run_to_exit(PATIENCE);
    assert!(!exited.status.success(), "covet host started a proxy without its grant");
    for needle in ["orders", "upstreams"] {
        assert!(exited.stderr.contains(needle), "the refusal lacks {needle:?}:\n{}", exited.stderr);
    }
}

/// A swap to a config with an unknown key, or naming an ungranted upstream,
/// is refused (422, the reason named) and the running proxy keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_swap_of_the_proxy_keeps_the_old_one_serving() {
    let users = TestUpstream::start("u1").await;
    let host = Host::start(manifest(over(&[&users], json!({})), json!({}), "/{*rest}")).await;
    assert_eq!(answered_by(&get(&host, "/a").await), "u1");
    let cases = [
        (json!({ "config": { "upstream": UPSTREAM, "strip_prefx": "/api" } }), "strip_prefx"),
        (json!({ "config": { "upstream": "orders" } }), "orders"),
    ];
    for (change, reason) in cases {
        let body = change.to_string();
        let admin = Client::http1(host.admin_addr());
        let reply = admin.send(Method::POST, "/v1/plugins/proxy/swap", &[("content-type", "application/json")], body).await;
        let reply = reply.expect("swap");
        assert_eq!(reply.status, 422, "{change}: {}", reply.text());
        assert!(reply.text().contains(reason), "{change}: expected {reason:?} in {}", reply.text());
        let after = get(&host, "/b").await;
        assert_eq!(after.status, 200, "the old proxy stopped serving after {change}");
        assert_eq!(answered_by(&after), "u1");
    }
}
