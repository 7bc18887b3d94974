//! A standard `wasi:http/incoming-handler` component — built with the
//! `wasi` crate, nothing covet-specific, the kind `wasmtime serve` runs —
//! is served by covet unchanged, over HTTP/1.1 and h2c, and is refused in a
//! role it cannot fill.

use covet_e2e::Host;
use http::Method;
use serde_json::json;

use super::Gateway;
use crate::common::PATIENCE;

fn hello() -> Gateway {
    Gateway::new()
        .wasm("hello", "hello_http", json!(null))
        .native("tag", "covet-test-plugin", json!({ "label": "tagged" }))
        .route("/hello/{*rest}", &["tag"], "hello")
}

#[tokio::test]
async fn an_unmodified_wasi_http_component_is_a_handler() {
    let host = hello().start().await;
    let reply = host.http1().get("/hello/world?x=1").await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "hello from wasi:http: GET /hello/world?x=1\n");
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(reply.header("x-test-label"), Some("tagged"), "native filters run around it");
    assert!(reply.header("x-request-id").is_some());

    let posted = host.http2().send(Method::POST, "/hello/h2", &[], "body").await.expect("response over h2c");
    assert_eq!(posted.text(), "hello from wasi:http: POST /hello/h2\n");
}

#[tokio::test]
async fn a_reused_instance_serves_request_after_request() {
    let host = Gateway::new()
        .wasm_with("hello", "hello_http", json!(null), json!({ "instances": "reused" }))
        .route("/{*rest}", &[], "hello")
        .start()
        .await;
    for i in 0..5 {
        let reply = host.http1().get(&format!("/n{i}")).await.expect("response");
        assert_eq!(reply.text(), format!("hello from wasi:http: GET /n{i}\n"));
    }
}

#[test]
fn a_wasi_http_component_takes_no_config() {
    let manifest = Gateway::new().wasm("hello", "hello_http", json!({ "greeting": "hi" })).route("/", &[], "hello");
    let exited = Host::builder(manifest).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("a wasi:http component takes no `config:`"), "{}", exited.stderr);
}

#[tokio::test]
async fn it_is_listed_as_a_wasi_http_handler() {
    let host = hello().start().await;
    let live = crate::swap::status(&host, "hello").await;
    assert_eq!(live["kind"], "wasm");
    assert_eq!(live["plugin"], "hello_http");
    assert!(live["api_version"].as_str().unwrap().starts_with("wasi:http@0.2"), "{live}");
}

#[test]
fn a_wasi_http_component_cannot_be_a_filter() {
    let manifest = Gateway::new()
        .wasm("hello", "hello_http", json!(null))
        .wasm("ok", "covet_wasm_noop", json!(null))
        .route("/", &["hello"], "ok");
    let exited = Host::builder(manifest).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("plugin \"hello\" cannot be a filter: it implements only handle"), "{}", exited.stderr);
}
