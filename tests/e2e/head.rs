//! HEAD through a plugin that streams its response: the `proxy` plugin
//! relays an upstream's answer to HEAD (its `content-length`, no body), and
//! the client gets that `content-length` (RFC 9110 §9.3.2: the same header
//! fields a GET would have), over HTTP/1.1 and HTTP/2; a native handler's
//! stream of known length announces it to HEAD as to GET. A streamed GET
//! keeps its usual framing and whole body.

use covet_e2e::{Client, Host, Manifest, Route, TestUpstream};
use http::Method;
use serde_json::json;

use crate::proxy::{manifest, over};

const SIZE: u64 = 12_345;

async fn gateway(up: &TestUpstream) -> Host {
    gateway_with(up, json!({})).await
}

async fn gateway_with(up: &TestUpstream, settings: serde_json::Value) -> Host {
    Host::start(manifest(over(&[up], settings), json!({}), "/{*rest}")).await
}

async fn head(client: &Client, host: &Host) {
    let path = format!("/bytes/{SIZE}");
    let reply =
        client.send(Method::HEAD, &path, &[], "").await.unwrap_or_else(|e| panic!("HEAD: {e}\n{}", host.logs()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-upstream"), Some("app"), "the upstream answered");
    assert_eq!(reply.header("content-length"), Some("12345"), "{:?} {:?}", reply.version, reply.headers);
    assert!(reply.body.is_empty(), "no body for HEAD");
}

#[tokio::test]
async fn head_through_the_proxy_keeps_the_upstreams_content_length() {
    let up = TestUpstream::start("app").await;
    let host = gateway(&up).await;
    head(&host.http1(), &host).await;
    head(&host.http2(), &host).await;
    // The connection is still usable after the bodiless answer.
    let client = host.http1();
    head(&client, &host).await;
    let reply = client.get(&format!("/bytes/{SIZE}")).await.expect("GET after HEAD");
    assert_eq!(reply.body.len() as u64, SIZE);
}

#[tokio::test]
async fn head_to_an_h2c_upstream_keeps_its_content_length() {
    let up = TestUpstream::start("app").await;
    let host = gateway_with(&up, json!({ "protocol": "http2" })).await;
    head(&host.http1(), &host).await;
    head(&host.http2(), &host).await;
}

#[tokio::test]
async fn a_streamed_get_still_gets_its_whole_body() {
    let up = TestUpstream::start("app").await;
    let host = gateway(&up).await;
    for client in [host.http1(), host.http2()] {
        let reply = client.get(&format!("/bytes/{SIZE}")).await.expect("GET");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len() as u64, SIZE, "{:?}", reply.version);
        assert!(reply.body.iter().all(|&b| b == b'x'));
        if let Some(len) = reply.header("content-length") {
            assert_eq!(len, "12345", "a declared length is the real one");
        }
    }
}

#[tokio::test]
async fn head_to_a_stream_of_known_length_announces_it_as_get_does() {
    let manifest = Manifest::new()
        .plugin("download", "covet-async-plugin", json!({ "mode": "download", "bytes": 4321 }))
        .route(Route::new("/download").handler("download"));
    let host = Host::start(manifest).await;
    for client in [host.http1(), host.http2()] {
        let get = client.get("/download").await.expect("GET");
        assert_eq!((get.body.len(), get.header("content-length")), (4321, Some("4321")));
        let head = client.send(Method::HEAD, "/download", &[], "").await.expect("HEAD");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("4321"), "{:?} {:?}", head.version, head.headers);
        assert!(head.body.is_empty());
    }
}
