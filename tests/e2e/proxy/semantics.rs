//! HTTP semantics of the proxy, read from the upstream's echo of what reached
//! it: hop-by-hop headers (and those `connection` names) dropped both ways;
//! `X-Forwarded-For/-Proto/-Host` and RFC 7239 `Forwarded` replaced for an
//! untrusted client and extended for a trusted one; `Via` added both ways;
//! `Host` preserved, set to the endpoint's, or a literal; path prefixes
//! stripped or rewritten with the query kept.

use covet_e2e::{Host, Reply, TestUpstream};
use http::Method;
use serde_json::{Value, json};

use super::{manifest, over};

/// A host proxying `route` to `up` with proxy `config`.
async fn proxy(up: &TestUpstream, config: Value, route: &str) -> Host {
    Host::start(manifest(over(&[up], json!({})), config, route)).await
}

/// `GET path` over HTTP/1.1 with `headers`; returns the reply and the headers the upstream saw.
async fn seen(host: &Host, path: &str, headers: &[(&str, &str)]) -> (Reply, Value) {
    let reply =
        host.http1().send(Method::GET, path, headers, "").await.unwrap_or_else(|e| panic!("{e}\n{}", host.logs()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    (reply, echo)
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let up = TestUpstream::start("up").await;
    let host = proxy(&up, json!({}), "/{*rest}").await;
    let headers = [
        ("connection", "x-secret, keep-alive"),
        ("x-secret", "1"),
        ("keep-alive", "5"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("x-kept", "end to end"),
        // The upstream answers these as `connection: x-resp-secret`, `x-resp-secret: 1`, `keep-alive: timeout=5`.
        ("x-reply-connection", "x-resp-secret"),
        ("x-reply-x-resp-secret", "1"),
        ("x-reply-keep-alive", "timeout=5"),
        ("x-reply-x-resp-kept", "yes"),
    ];
    let (reply, echo) = seen(&host, "/hop", &headers).await;
    let upstream_saw = &echo["headers"];
    for name in ["x-secret", "keep-alive", "proxy-authorization"] {
        assert!(upstream_saw.get(name).is_none(), "{name} reached the upstream: {upstream_saw}");
    }
    let connection = upstream_saw["connection"].as_str().unwrap_or("");
    assert!(!connection.contains("x-secret"), "connection: {connection}");
    assert_eq!(upstream_saw["x-kept"], "end to end");
    assert_eq!(reply.header("x-resp-kept"), Some("yes"), "end-to-end answer headers go on");
    assert_eq!(reply.header("x-resp-secret"), None, "{:?}", reply.headers);
    assert_eq!(reply.header("keep-alive"), None, "{:?}", reply.headers);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let up = TestUpstream::start("up").await;
    let host = proxy(&up, json!({}), "/{*rest}").await;
    let forged = [
        ("host", "gateway.test"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.test"),
        ("forwarded", "for=203.0.113.9;proto=https"),
    ];
    let (_, echo) = seen(&host, "/fwd", &forged).await;
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    assert_eq!(h["x-forwarded-host"], "gateway.test", "{h}");
    assert_eq!(h["forwarded"], "for=127.0.0.1;proto=http;host=gateway.test", "{h}");
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_client_are_extended() {
    let up = TestUpstream::start("up").await;
    let host = proxy(&up, json!({ "forwarded": { "trusted": ["127.0.0.0/8"] } }), "/{*rest}").await;
    let from_edge = [
        ("host", "gateway.test"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "www.example.com"),
        ("forwarded", "for=203.0.113.9;proto=https"),
    ];
    let (_, echo) = seen(&host, "/fwd", &from_edge).await;
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "https", "{h}");
    assert_eq!(h["x-forwarded-host"], "www.example.com", "{h}");
    assert_eq!(h["forwarded"], "for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=gateway.test", "{h}");
}

#[tokio::test]
async fn via_is_added_both_ways() {
    let up = TestUpstream::start("up").await;
    let host = proxy(&up, json!({}), "/{*rest}").await;
    let (reply, echo) = seen(&host, "/via", &[("via", "1.0 edge")]).await;
    assert_eq!(echo["headers"]["via"], "1.0 edge, 1.1 covet", "{echo}");
    assert_eq!(reply.header("via"), Some("1.1 covet"), "the answer came over HTTP/1.1: {:?}", reply.headers);
    let reply = host.http2().get("/via").await.unwrap();
    assert_eq!(reply.json()["headers"]["via"], "2 covet", "the request came over HTTP/2");
}

#[tokio::test]
async fn host_is_preserved_set_to_the_endpoint_or_a_literal() {
    let up = TestUpstream::start("up").await;
    let cases = [
        (json!({}), "gateway.test".to_owned()),
        (json!({ "host": "preserve" }), "gateway.test".to_owned()),
        (json!({ "host": "upstream" }), up.endpoint()),
        (json!({ "host": "api.internal" }), "api.internal".to_owned()),
    ];
    for (config, expected) in cases {
        let host = proxy(&up, config.clone(), "/{*rest}").await;
        let (_, echo) = seen(&host, "/host", &[("host", "gateway.test")]).await;
        assert_eq!(echo["headers"]["host"], expected.as_str(), "config {config}");
    }
}

#[tokio::test]
async fn prefixes_are_stripped_or_rewritten_and_the_query_kept() {
    let up = TestUpstream::start("up").await;
    let strip = proxy(&up, json!({ "strip_prefix": "/api" }), "/api/{*rest}").await;
    let (_, echo) = seen(&strip, "/api/users/7?full=1&q=a%20b", &[]).await;
    assert_eq!(echo["uri"], "/users/7?full=1&q=a%20b");
    let rewrite = proxy(&up, json!({ "strip_prefix": "/api", "rewrite_prefix": "/v2" }), "/api/{*rest}").await;
    let (_, echo) = seen(&rewrite, "/api/users/7?full=1", &[]).await;
    assert_eq!(echo["uri"], "/v2/users/7?full=1");
    let unchanged = proxy(&up, json!({}), "/api/{*rest}").await;
    let (_, echo) = seen(&unchanged, "/api/users/7?full=1", &[]).await;
    assert_eq!(echo["uri"], "/api/users/7?full=1", "no prefix rule: the path goes on as is");
}
