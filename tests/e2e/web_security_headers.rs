//! The security-headers plugin behind the real host: the defaults on every
//! response, HSTS only on requests that came over TLS (a real rustls client
//! on a TLS listener) unless `always`, the handler's own headers kept unless
//! `override`, answers of later filters covered, and bad values refused by
//! `covet check`.

use covet_e2e::{Host, Manifest, Reply, Route, certs::Ca, secure::TlsConn};
use http::Method;
use rustls::version::{TLS12, TLS13};
use serde_json::json;

use crate::common::{PATIENCE, assert_problem};

const DEFAULT_HSTS: &str = "max-age=31536000; includeSubDomains";

/// `/page` (defaults), `/framed` (the handler sets its own frame options
/// and CSP; defaults), `/strict` (override and every header configured),
/// `/guarded` (secure, then cors refusing a preflight).
fn gateway() -> Manifest {
    let strict = json!({
        "override": true,
        "content_security_policy": "default-src 'self'",
        "permissions_policy": "camera=(), geolocation=()",
        "cross_origin_opener_policy": "same-origin",
        "referrer_policy": "no-referrer",
        "x_content_type_options": false,
        "hsts": { "always": true, "max_age": 63072000, "preload": true },
    });
    let framed = json!({ "body": "framed", "headers": {
        "x-frame-options": "SAMEORIGIN", "content-security-policy": "default-src 'none'" } });
    Manifest::new()
        .plugin("secure", "covet-security-headers", json!({}))
        .plugin("strict", "covet-security-headers", strict)
        .plugin("cors", "covet-cors", json!({ "allow_origins": "https://app.test" }))
        .plugin("page", "covet-static-response", json!({ "body": "hello" }))
        .plugin("framed", "covet-static-response", framed)
        .route(Route::new("/page").filters(["secure"]).handler("page"))
        .route(Route::new("/framed").filters(["secure"]).handler("framed"))
        .route(Route::new("/strict").filters(["strict"]).handler("framed"))
        .route(Route::new("/guarded").filters(["secure", "cors"]).handler("page"))
}

/// The gateway with a second, TLS listener (certificate for `localhost` from `ca`).
async fn start_with_tls(ca: &Ca) -> Host {
    let site = ca.server(&["localhost"]);
    let plain = "listen:\n  - addr: 127.0.0.1:0\n";
    let yaml = gateway().to_yaml();
    assert!(yaml.starts_with(plain), "the manifest builder's listener changed:\n{yaml}");
    let yaml = yaml.replacen(plain, &format!("{plain}  - addr: 127.0.0.1:0\n    tls: {{ cert: site.pem, key: site.key }}\n"), 1);
    let host = Host::builder(yaml).listeners(2).file("site.pem", site.cert_pem).file("site.key", site.key_pem).start();
    host.wait_ready().await;
    host
}

fn assert_defaults(reply: &Reply) {
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));
    assert_eq!(reply.header("referrer-policy"), Some("strict-origin-when-cross-origin"));
    for absent in ["content-security-policy", "permissions-policy", "cross-origin-opener-policy"] {
        assert_eq!(reply.header(absent), None, "{absent} is off by default");
    }
}

#[tokio::test]
async fn defaults_on_plain_http_have_no_hsts() {
    let host = Host::start(gateway()).await;
    for client in [host.http1(), host.http2()] {
        let reply = client.get("/page").await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "hello");
        assert_defaults(&reply);
        assert_eq!(reply.header("strict-transport-security"), None, "HSTS is ignored on plain HTTP, so not sent");
    }
}

#[tokio::test]
async fn hsts_is_sent_on_requests_that_came_over_tls() {
    let ca = Ca::new("test CA");
    let host = start_with_tls(&ca).await;
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let config = ca.client_config(&[alpn], &[&TLS13, &TLS12], None);
        let mut conn = TlsConn::connect(host.addrs[1], "localhost", config).await.expect("TLS connect");
        let reply = conn.get("/page").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("strict-transport-security"), Some(DEFAULT_HSTS), "{:?}", conn.alpn);
        assert_defaults(&reply);
    }
    let plain = host.http1().get("/page").await.unwrap();
    assert_eq!(plain.header("strict-transport-security"), None, "the same host's plain listener");
}

#[tokio::test]
async fn the_handlers_own_headers_are_kept_unless_override() {
    let ca = Ca::new("test CA");
    let host = start_with_tls(&ca).await;
    let kept = host.http1().get("/framed").await.unwrap();
    assert_eq!(kept.header("x-frame-options"), Some("SAMEORIGIN"), "the handler's value is kept");
    assert_eq!(kept.header("content-security-policy"), Some("default-src 'none'"));
    assert_eq!(kept.header("x-content-type-options"), Some("nosniff"), "what the handler did not set is added");

    let config = ca.client_config(&[b"h2"], &[&TLS13], None);
    let mut conn = TlsConn::connect(host.addrs[1], "localhost", config).await.expect("TLS connect");
    for reply in [host.http1().get("/strict").await.unwrap(), conn.get("/strict").await.unwrap()] {
        assert_eq!(reply.text(), "framed");
        assert_eq!(reply.header("x-frame-options"), Some("DENY"), "override replaced SAMEORIGIN");
        assert_eq!(reply.headers.get_all("x-frame-options").iter().count(), 1);
        assert_eq!(reply.header("content-security-policy"), Some("default-src 'self'"));
        assert_eq!(reply.header("permissions-policy"), Some("camera=(), geolocation=()"));
        assert_eq!(reply.header("cross-origin-opener-policy"), Some("same-origin"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(reply.header("x-content-type-options"), None, "turned off");
        assert_eq!(
            reply.header("strict-transport-security"),
            Some("max-age=63072000; includeSubDomains; preload"),
            "`always` sends it on plain HTTP too"
        );
    }
}

#[tokio::test]
async fn answers_of_later_filters_get_the_headers_too() {
    let host = Host::start(gateway()).await;
    let headers = [("origin", "https://evil.test"), ("access-control-request-method", "GET")];
    let reply = host.http1().send(Method::OPTIONS, "/guarded", &headers, "").await.unwrap();
    assert_problem(&reply, 403, "CORS_FORBIDDEN");
    assert_defaults(&reply);
}

#[test]
fn bad_values_are_refused_at_load_naming_the_key() {
    let manifest = Manifest::new()
        .plugin("secure", "covet-security-headers", json!({ "x_frame_options": "ALLOW-FROM https://a.test" }))
        .plugin("page", "covet-static-response", json!({ "body": "hello" }))
        .route(Route::new("/page").filters(["secure"]).handler("page"));
    let checked = Host::builder(manifest).check(PATIENCE);
    assert!(!checked.status.success(), "check passed:\n{}", checked.stdout);
    assert!(checked.stderr.contains("x_frame_options: `ALLOW-FROM https://a.test` is not valid"), "{}", checked.stderr);
}
