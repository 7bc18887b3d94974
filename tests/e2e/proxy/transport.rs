//! Transport to the endpoints: an HTTP/2 upstream over h2c (`protocol:
//! http2`); a TLS upstream with a custom CA and SNI (HTTP/1.1, and h2 by
//! ALPN), refused with a 502 without the CA or with the wrong name; and
//! 100 MB up and 100 MB down through the proxy with the host's peak RSS
//! growing far less than the body, the upstream (or the client) counting
//! exactly 100 MB.

use bytes::Bytes;
use covet_e2e::{Filler, Host, TestUpstream, certs::Ca};
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

use super::{gateway, get, manifest, over};

/// The size of the upload and the download.
const HUNDRED_MB: u64 = 100 * 1000 * 1000;
/// How much the host's peak RSS may grow moving [`HUNDRED_MB`] (KiB).
const RSS_BOUND_KIB: u64 = 60 * 1024;

#[tokio::test]
async fn an_http2_upstream_is_spoken_to_over_h2c() {
    let up = TestUpstream::start("h2").await;
    let host = gateway(&[&up], json!({ "protocol": "http2" })).await;
    let reply = get(&host, "/h2?x=1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["version"], "HTTP/2.0", "{}", reply.text());
    assert_eq!(reply.json()["uri"].as_str().map(|u| u.ends_with("/h2?x=1")), Some(true), "{}", reply.text());
    let plain = gateway(&[&up], json!({})).await;
    assert_eq!(get(&plain, "/h1").await.json()["version"], "HTTP/1.1", "http1 is the default");
}

/// A host in front of a TLS upstream with `tls` (its `ca` file, if named, holds `ca`).
async fn tls_gateway(up: &TestUpstream, ca: &Ca, protocol: &str, tls: Value) -> Host {
    let yaml = manifest(over(&[up], json!({ "protocol": protocol, "tls": tls })), json!({}), "/{*rest}");
    let host = Host::builder(yaml).file("ca.pem", ca.pem()).start();
    host.wait_ready().await;
    host
}

#[tokio::test]
async fn a_tls_upstream_with_a_custom_ca_is_verified() {
    let ca = Ca::new("covet upstream test CA");
    let up = TestUpstream::start_tls("tls", &ca.server(&["localhost"])).await;
    let trusting = json!({ "ca": "ca.pem", "sni": "localhost" });
    let host = tls_gateway(&up, &ca, "http1", trusting.clone()).await;
    let reply = get(&host, "/tls").await;
    assert_eq!((reply.status.as_u16(), reply.json()["version"].clone()), (200, json!("HTTP/1.1")), "{}", reply.text());
    let h2 = tls_gateway(&up, &ca, "http2", trusting).await;
    assert_eq!(get(&h2, "/tls").await.json()["version"], "HTTP/2.0", "h2 by ALPN");
    let auto = tls_gateway(&up, &ca, "auto", json!({ "ca": "ca.pem", "sni": "localhost" })).await;
    assert_eq!(get(&auto, "/tls").await.status, 200, "auto over TLS");
    for (case, tls) in [
        ("without the CA", json!({ "sni": "localhost" })),
        ("with a name the certificate lacks", json!({ "ca": "ca.pem", "sni": "other.test" })),
    ] {
        let host = tls_gateway(&up, &ca, "http1", tls).await;
        let reply = get(&host, "/tls").await;
        assert_eq!(reply.status, 502, "{case}: {}", reply.text());
        let code = reply.json()["error"]["code"].as_str().unwrap_or_default().to_owned();
        assert!(code.starts_with("UPSTREAM_"), "{case}: {}", reply.text());
    }
    assert_eq!(up.requests(), 3, "only the verified connections carried requests");
}

/// `VmHWM` (the peak RSS) of process `pid`, KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_streams_through_in_bounded_memory() {
    let up = TestUpstream::start("sink").await;
    let yaml = manifest(over(&[&up], json!({})), json!({}), "/{*rest}");
    // limits.max_body applies to streamed bodies too (docs/streaming.md).
    let host = Host::start(yaml.replacen("log:\n", "limits:\n  max_body: 200000000\nlog:\n", 1)).await;
    assert_eq!(get(&host, "/warm").await.status, 200);
    let before = peak_rss_kib(host.pid());
    let client = Client::builder(TokioExecutor::new()).build_http::<Filler>();
    let request = http::Request::post(format!("http://{}/upload", host.addr()))
        .header("content-length", HUNDRED_MB)
        .body(Filler::new(HUNDRED_MB))
        .unwrap();
    let response = client.request(request).await.unwrap_or_else(|e| panic!("{e:?}\n{}", host.logs()));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-received"], HUNDRED_MB.to_string().as_str(), "the upstream got it all");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["received"], HUNDRED_MB);
    assert_eq!(up.received(), HUNDRED_MB);
    let grown = peak_rss_kib(host.pid()).saturating_sub(before);
    eprintln!("a 100 MB upload through the proxy grew the host's peak RSS by {grown} KiB");
    assert!(grown < RSS_BOUND_KIB, "peak RSS grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_download_streams_through_in_bounded_memory() {
    let up = TestUpstream::start("source").await;
    let host = gateway(&[&up], json!({})).await;
    assert_eq!(get(&host, "/warm").await.status, 200);
    let before = peak_rss_kib(host.pid());
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
    let request = http::Request::get(format!("http://{}/bytes/{HUNDRED_MB}", host.addr())).body(Default::default()).unwrap();
    let response = client.request(request).await.unwrap_or_else(|e| panic!("{e:?}\n{}", host.logs()));
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let (mut total, mut intact) = (0u64, true);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the body streams").into_data() {
            total += data.len() as u64;
            intact &= data.iter().all(|&b| b == b'x');
        }
    }
    assert_eq!(total, HUNDRED_MB);
    assert!(intact, "the bytes arrive as sent");
    let grown = peak_rss_kib(host.pid()).saturating_sub(before);
    eprintln!("a 100 MB download through the proxy grew the host's peak RSS by {grown} KiB");
    assert!(grown < RSS_BOUND_KIB, "peak RSS grew by {grown} KiB");
}
