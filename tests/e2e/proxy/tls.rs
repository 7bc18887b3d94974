//! TLS to the endpoints: verification is on, with a custom CA (`tls.ca`)
//! and the name to verify (`tls.sni`); HTTP/1.1, h2 by ALPN, and `auto`;
//! refused (502) without the CA or with a name the certificate lacks; and
//! a client certificate (`client_cert`, `client_key`) for an upstream that
//! requires one, refused without it.

use covet_e2e::{Host, TestUpstream, certs::Ca};
use serde_json::{Value, json};

use super::{get, manifest, over};

/// A host in front of TLS upstream `up` with `tls`; `ca.pem` holds `ca`,
/// `client.pem`/`client.key` a certificate from `clients` when given.
async fn tls_gateway(up: &TestUpstream, ca: &Ca, protocol: &str, tls: Value, clients: Option<&Ca>) -> Host {
    let yaml = manifest(over(&[up], json!({ "protocol": protocol, "tls": tls })), json!({}), "/{*rest}");
    let mut builder = Host::builder(yaml).file("ca.pem", ca.pem());
    if let Some(clients) = clients {
        let leaf = clients.client("covet");
        builder = builder.file("client.pem", leaf.cert_pem).file("client.key", leaf.key_pem);
    }
    let host = builder.start();
    host.wait_ready().await;
    host
}

/// Asserts `GET /tls` is refused with a 502 naming an upstream failure.
async fn refused(host: &Host, case: &str) {
    let reply = get(host, "/tls").await;
    assert_eq!(reply.status, 502, "{case}: {}", reply.text());
    let code = reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned();
    assert!(code.starts_with("UPSTREAM_"), "{case}: {}", reply.text());
}

#[tokio::test]
async fn a_tls_upstream_with_a_custom_ca_is_verified() {
    let ca = Ca::new("covet upstream test CA");
    let up = TestUpstream::start_tls("tls", &ca.server(&["localhost"])).await;
    let trusting = json!({ "ca": "ca.pem", "sni": "localhost" });
    let host = tls_gateway(&up, &ca, "http1", trusting.clone(), None).await;
    let reply = get(&host, "/tls").await;
    assert_eq!((reply.status.as_u16(), reply.json()["version"].clone()), (200, json!("HTTP/1.1")), "{}", reply.text());
    let h2 = tls_gateway(&up, &ca, "http2", trusting.clone(), None).await;
    assert_eq!(get(&h2, "/tls").await.json()["version"], "HTTP/2.0", "h2 by ALPN");
    let auto = tls_gateway(&up, &ca, "auto", trusting, None).await;
    assert_eq!(get(&auto, "/tls").await.status, 200, "auto over TLS");
    let untrusting = tls_gateway(&up, &ca, "http1", json!({ "sni": "localhost" }), None).await;
    refused(&untrusting, "without the CA").await;
    let wrong_name = tls_gateway(&up, &ca, "http1", json!({ "ca": "ca.pem", "sni": "other.test" }), None).await;
    refused(&wrong_name, "with a name the certificate lacks").await;
    assert_eq!(up.requests(), 3, "only the verified connections carried requests");
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_an_upstream_that_requires_one() {
    let (ca, clients) = (Ca::new("covet upstream test CA"), Ca::new("covet client test CA"));
    let up = TestUpstream::start_mtls("mtls", &ca.server(&["localhost"]), &clients).await;
    let with_cert =
        json!({ "ca": "ca.pem", "sni": "localhost", "client_cert": "client.pem", "client_key": "client.key" });
    let host = tls_gateway(&up, &ca, "http1", with_cert, Some(&clients)).await;
    let reply = get(&host, "/tls").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let without = tls_gateway(&up, &ca, "http1", json!({ "ca": "ca.pem", "sni": "localhost" }), None).await;
    refused(&without, "without a client certificate").await;
    assert_eq!(up.requests(), 1, "only the authenticated connection carried a request");
}
