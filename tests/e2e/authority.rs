//! HTTP/2 carries the request's authority in `:authority`, not in a `host`
//! header; as RFC 9113 §8.3.1 asks of an intermediary, the host presents it
//! to plugins as `host`. Seen through the real `proxy` plugin (whose
//! `host: preserve`, `X-Forwarded-Host` and `Forwarded host=` read it) in
//! front of a real upstream that echoes the headers it received.

use covet_e2e::{Host, TestUpstream};
use http::Method;
use serde_json::{Value, json};

use crate::proxy::{manifest, over};

/// The headers the upstream saw for `GET /who` sent over h2c (prior knowledge).
async fn seen_over_h2(host: &Host, headers: &[(&str, &str)]) -> Value {
    let reply =
        host.http2().send(Method::GET, "/who", headers, "").await.unwrap_or_else(|e| panic!("{e}\n{}", host.logs()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.version, http::Version::HTTP_2);
    reply.json()["headers"].clone()
}

#[tokio::test]
async fn an_http2_authority_reaches_plugins_as_host() {
    let up = TestUpstream::start("app").await;
    let host = Host::start(manifest(over(&[&up], json!({})), json!({ "host": "preserve" }), "/{*rest}")).await;
    let authority = host.addr().to_string(); // the client's `:authority`
    let h = seen_over_h2(&host, &[]).await;
    assert_eq!(h["host"], authority.as_str(), "host: preserve kept the client's authority: {h}");
    assert_eq!(h["x-forwarded-host"], authority.as_str(), "{h}");
    let forwarded = h["forwarded"].as_str().unwrap_or_default();
    assert!(
        forwarded.ends_with(&format!("host=\"{authority}\"")) || forwarded.ends_with(&format!("host={authority}")),
        "{h}"
    );
}

#[tokio::test]
async fn over_http1_the_host_header_is_left_as_sent() {
    let up = TestUpstream::start("app").await;
    let host = Host::start(manifest(over(&[&up], json!({})), json!({ "host": "preserve" }), "/{*rest}")).await;
    let reply = host.http1().send(Method::GET, "/who", &[("host", "gateway.test")], "").await.expect("GET /who");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let h = &reply.json()["headers"];
    assert_eq!(h["host"], "gateway.test", "{h}");
    assert_eq!(h["x-forwarded-host"], "gateway.test", "{h}");
}
