//! Routing and the request path: parameters, 404/405, HEAD, request ids,
//! HTTP/2, pipelining, and the `/_covet/*` endpoints.

use covet_e2e::{Host, Manifest, RawConn, Route, get_request};
use http::{Method, Version};
use serde_json::json;

use crate::common::{PATIENCE, assert_problem, labelled};

const HELLO: &str = "hello from covet\n";

/// Echo routes with parameters, a tagged route and a static one.
fn gateway() -> Manifest {
    Manifest::new()
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .plugin("tag", "covet-test-plugin", labelled("tag"))
        .plugin("hello", "covet-static-response", json!({ "body": HELLO }))
        .route(Route::new("/users/{id}").methods(["GET", "DELETE"]).handler("echo"))
        .route(Route::new("/files/{*rest}").handler("echo"))
        .route(Route::new("/tagged/{id}").filters(["tag"]).handler("echo"))
        .route(Route::new("/hello").methods(["GET"]).handler("hello"))
}

#[tokio::test]
async fn route_parameters_reach_the_plugin() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().get("/users/42").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["params"]["id"], "42");
    assert_eq!(echo["route"], "/users/{id}");
    assert_eq!(echo["method"], "GET");
}

#[tokio::test]
async fn catch_all_parameter_holds_the_rest_of_the_path() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().send(Method::PATCH, "/files/a/b/c.txt?x=1", &[], "").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["params"]["rest"], "a/b/c.txt");
    assert_eq!(echo["uri"], "/files/a/b/c.txt?x=1");
    assert_eq!(echo["method"], "PATCH");
}

#[tokio::test]
async fn unknown_path_is_404_with_structured_body() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().get("/nowhere").await.unwrap();
    let error = assert_problem(&reply, 404, "NOT_FOUND");
    assert_eq!(error["details"]["path"], "/nowhere");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow_listing_the_route_methods() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().send(Method::POST, "/users/1", &[], "x").await.unwrap();
    assert_problem(&reply, 405, "METHOD_NOT_ALLOWED");
    let allow = reply.header("allow").expect("an Allow header");
    let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["DELETE", "GET", "HEAD"], "Allow: {allow}");
}

#[tokio::test]
async fn head_is_served_by_the_get_route_with_a_length_and_no_body() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().send(Method::HEAD, "/hello", &[], "").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty(), "HEAD body: {:?}", reply.text());
    assert_eq!(reply.header("content-length"), Some(HELLO.len().to_string().as_str()));
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn head_on_a_get_route_sends_no_body_bytes_on_the_wire() {
    let host = Host::start(gateway()).await;
    let mut conn = RawConn::connect(host.addr()).await;
    let head = "HEAD /hello HTTP/1.1\r\nhost: covet.test\r\n\r\n";
    conn.send(format!("{head}{}", get_request("/hello"))).await.unwrap();
    // A HEAD response has a content-length but no body: the raw reader
    // would take the GET's head as body bytes, so read the two heads apart.
    let mut raw = Vec::new();
    while !String::from_utf8_lossy(&raw).ends_with(HELLO) {
        let more = conn_read(&mut conn).await;
        assert!(!more.is_empty(), "connection closed; got {:?}", String::from_utf8_lossy(&raw));
        raw.extend(more);
    }
    let text = String::from_utf8_lossy(&raw);
    let (head_reply, get_reply) = text.split_once("\r\n\r\n").expect("a HEAD response");
    assert!(head_reply.starts_with("HTTP/1.1 200"), "{head_reply}");
    assert!(get_reply.starts_with("HTTP/1.1 200"), "HEAD leaked body bytes before the GET response: {get_reply:?}");
}

async fn conn_read(conn: &mut RawConn) -> Vec<u8> {
    match conn.read_some(PATIENCE).await {
        Some(bytes) => bytes,
        None => panic!("no bytes within {PATIENCE:?}"),
    }
}

#[tokio::test]
async fn incoming_request_id_is_honoured_everywhere() {
    let host = Host::start(gateway()).await;
    let id = [("x-request-id", "trace-abc-123")];
    let reply = host.http1().send(Method::GET, "/users/1", &id, "").await.unwrap();
    assert_eq!(reply.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(reply.json()["request_id"], "trace-abc-123", "the plugin sees the same id");
    let missing = host.http1().send(Method::GET, "/nowhere", &id, "").await.unwrap();
    assert_eq!(assert_problem(&missing, 404, "NOT_FOUND")["request_id"], "trace-abc-123");
}

#[tokio::test]
async fn an_unusable_incoming_request_id_is_replaced() {
    let host = Host::start(gateway()).await;
    let long = "x".repeat(200);
    for bad in ["has space", long.as_str()] {
        let reply = host.http1().send(Method::GET, "/users/1", &[("x-request-id", bad)], "").await.unwrap();
        let id = reply.header("x-request-id").expect("an id");
        assert_ne!(id, bad);
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic()), "{id:?}");
        assert_eq!(reply.json()["request_id"], id);
    }
}

#[tokio::test]
async fn generated_request_ids_differ_per_request() {
    let host = Host::start(gateway()).await;
    let client = host.http1();
    let a = client.get("/users/1").await.unwrap();
    let b = client.get("/users/1").await.unwrap();
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn http2_requests_run_the_same_chain() {
    let host = Host::start(gateway()).await;
    let reply = host.http2().get("/tagged/9").await.unwrap();
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-test-label"), Some("tag"), "the filter's on_response ran");
    assert!(reply.header("x-request-id").is_some());
    let echo = reply.json();
    assert_eq!(echo["version"], "HTTP/2");
    assert_eq!(echo["params"]["id"], "9");
    assert_eq!(echo["metadata"]["test.seen"], "tag", "the filter's on_request ran");
    let over_h1 = host.http1().get("/tagged/9").await.unwrap();
    assert_eq!(over_h1.json()["version"], "HTTP/1.1");
}

#[tokio::test]
async fn http2_errors_are_structured_too() {
    let host = Host::start(gateway()).await;
    let reply = host.http2().get("/nowhere").await.unwrap();
    assert_eq!(reply.version, Version::HTTP_2);
    assert_problem(&reply, 404, "NOT_FOUND");
}

#[tokio::test]
async fn pipelined_http1_requests_are_answered_in_order() {
    let host = Host::start(gateway()).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(format!("{}{}", get_request("/users/1"), get_request("/users/2"))).await.unwrap();
    let first = conn.response(PATIENCE).await;
    let second = conn.response(PATIENCE).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.json()["params"]["id"], "1");
    assert_eq!(second.json()["params"]["id"], "2");
}

#[tokio::test]
async fn health_answers_200() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().get("/_covet/health").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "serving");
    let ready = host.http1().get("/_covet/ready").await.unwrap();
    assert_eq!(ready.status, 200);
}

#[tokio::test]
async fn unknown_covet_endpoint_is_404() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().get("/_covet/secrets").await.unwrap();
    assert_problem(&reply, 404, "NOT_FOUND");
}

#[tokio::test]
async fn not_ready_while_a_plugin_initialises_then_ready() {
    let manifest = Manifest::new()
        .plugin("slow", "covet-test-plugin", json!({ "label": "slow", "init_sleep_ms": 1500 }))
        .route(Route::new("/users/{id}").handler("slow"));
    let host = Host::builder(manifest).start();
    let client = host.http1();

    let health = client.get("/_covet/health").await.unwrap();
    assert_eq!(health.status, 200, "alive while starting");
    let ready = client.get("/_covet/ready").await.unwrap();
    assert_problem(&ready, 503, "NOT_READY");
    let routed = client.get("/users/1").await.unwrap();
    assert_problem(&routed, 503, "NOT_READY");

    host.wait_ready().await;
    let routed = client.get("/users/1").await.unwrap();
    assert_eq!(routed.status, 200, "{}", routed.text());
    assert_eq!(routed.json()["label"], "slow");
}
