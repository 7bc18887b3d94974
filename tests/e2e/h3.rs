//! HTTP/3 on a TLS listener with `http3: true`: GET and POST through a
//! plugin chain (headers → echo) with a quinn + h3 client, `Alt-Svc` on the
//! TCP responses of that listener only, and an HTTP/3 request that is in
//! flight when the host is told to stop completes.

use std::time::Duration;

use covet_e2e::{Host, certs::Ca, plugin, secure::{H3Conn, TlsConn}};
use http::Method;
use rustls::version::{TLS12, TLS13};
use serde_json::Value;

use crate::tls::{SITE_TLS, manifest, with_site};

async fn h3_host(ca: &Ca) -> Host {
    let host = with_site(Host::builder(manifest(SITE_TLS, "    http3: true\n")), &ca.server(&["localhost"])).start();
    host.wait_ready().await;
    host
}

async fn h3(host: &Host, ca: &Ca) -> H3Conn {
    let config = ca.client_config(&[b"h3"], &[&TLS13], None);
    H3Conn::connect(host.addrs[1], "localhost", config).await.expect("HTTP/3 connect")
}

#[tokio::test]
async fn http3_get_and_post_run_the_plugin_chain() {
    let ca = Ca::new("test CA");
    let host = h3_host(&ca).await;
    assert!(host.logs().is_empty() || !host.logs().contains("ERROR"), "{}", host.logs());
    let mut conn = h3(&host, &ca).await;

    let reply = conn.request(Method::GET, "/echo?x=1", b"").await.expect("GET");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.version, http::Version::HTTP_3);
    assert_eq!(reply.header("x-tls-alpn"), Some("h3"), "the headers filter saw the HTTP/3 connection's metadata");
    assert_eq!(reply.header("x-tls-version"), Some("1.3"));
    assert_eq!(reply.header("x-tls-sni"), Some("localhost"));
    let echo = reply.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["label"], "tls", "{echo}");

    let body = vec![b'x'; 3000];
    let reply = conn.request(Method::POST, "/echo", &body).await.expect("POST");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["body_len"], 3000, "{}", reply.text());
    assert!(reply.header("x-request-id").is_some());

    let reply = conn.request(Method::GET, "/nowhere", b"").await.expect("GET 404");
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn http3_applies_the_body_limit() {
    let ca = Ca::new("test CA");
    let text = manifest(SITE_TLS, "    http3: true\n").replacen("plugins:", "limits:\n  max_body: 1KiB\nplugins:", 1);
    let host = with_site(Host::builder(text), &ca.server(&["localhost"])).start();
    host.wait_ready().await;
    let mut conn = h3(&host, &ca).await;
    let reply = conn.request(Method::POST, "/echo", &vec![b'y'; 4096]).await.expect("POST");
    assert_eq!(reply.status, 413, "{}", reply.text());
    let reply = conn.request(Method::POST, "/echo", &vec![b'y'; 1000]).await.expect("POST");
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn alt_svc_is_advertised_only_by_http3_listeners() {
    let ca = Ca::new("test CA");
    let host = h3_host(&ca).await;
    let expected = format!("h3=\":{}\"; ma=86400", host.addrs[1].port());
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let config = ca.client_config(&[alpn], &[&TLS13, &TLS12], None);
        let mut conn = TlsConn::connect(host.addrs[1], "localhost", config).await.unwrap();
        let reply = conn.get("/echo").await.unwrap();
        assert_eq!(reply.header("alt-svc"), Some(expected.as_str()), "over {}", String::from_utf8_lossy(alpn));
    }
    let plain = host.http1().get("/echo").await.unwrap();
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("alt-svc"), None, "the plain listener has no HTTP/3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_request_in_flight_completes_during_shutdown() {
    let ca = Ca::new("test CA");
    let slow = manifest(SITE_TLS, "    http3: true\n").replace("config: { label: tls }", "config: { label: tls, sleep_ms: 1500 }");
    let echo = Value::String(plugin("covet-test-plugin").display().to_string());
    assert!(slow.contains(echo.as_str().unwrap()));
    let mut host = with_site(Host::builder(slow), &ca.server(&["localhost"])).start();
    host.wait_ready().await;
    let mut conn = h3(&host, &ca).await;
    let request = tokio::spawn(async move { conn.request(Method::GET, "/echo", b"").await.map(|r| (r.status, r.text())) });
    // Same head start as tests/e2e/lifecycle.rs: the request is in the slow handler.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!request.is_finished(), "the slow request finished early");
    host.terminate();
    let (status, text) = request.await.unwrap().expect("the HTTP/3 request in flight completes");
    assert_eq!(status, 200, "{text}");
    let exit = host.wait_for_exit(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "logs:\n{}", host.logs());
}
