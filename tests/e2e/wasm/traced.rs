//! Tracing from a WASM plugin (fixture `covet_wasm_traced`, which imports
//! `covet:plugin/tracing@0.2.0` in every phase and makes an outbound
//! wasi:http request on demand) with tracing off: every tracing call is a
//! harmless no-op (no span, `traceparent` is `none`, nothing recorded), the
//! request is answered as usual, and an outbound request from the guest
//! carries no `traceparent`. With tracing on the attributes, events and
//! links are checked against a real collector in `tests/e2e/telemetry/`.

use bytes::Bytes;
use covet_e2e::Host;
use http::Method;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Gateway;

/// The fixture as filter (`tf`) and handler (`th`) on `/traced`, the
/// handler allowed outbound HTTP to `outbound`.
fn traced_gateway(outbound: &[&str]) -> Gateway {
    Gateway::new()
        .wasm("tf", "covet_wasm_traced", Value::Null)
        .wasm_with("th", "covet_wasm_traced", Value::Null, json!({ "capabilities": { "outbound_http": outbound } }))
        .route("/traced", &["tf"], "th")
}

/// A server on 127.0.0.1:0 answering `seen`, sending the `traceparent` of
/// each request it gets (`None` when absent).
async fn header_server() -> (String, mpsc::UnboundedReceiver<Option<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let _ = tx.send(req.headers().get("traceparent").map(|v| v.to_str().unwrap_or("<not text>").to_owned()));
                async { Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(b"seen")))) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(socket), service));
        }
    });
    (addr, rx)
}

async fn get(host: &Host, path: &str, headers: &[(&str, &str)]) -> covet_e2e::Reply {
    let reply = host.http1().send(Method::GET, path, headers, "").await.unwrap_or_else(|e| panic!("{path}: {e}\nlogs:\n{}", host.logs()));
    assert_eq!(reply.status, 200, "{path}: {}\nlogs:\n{}", reply.text(), host.logs());
    reply
}

#[tokio::test]
async fn with_tracing_off_the_guests_tracing_calls_are_harmless_no_ops() {
    let host = traced_gateway(&[]).start().await;
    // A caller's traceparent changes nothing: no span is made from it.
    let caller = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")];
    for headers in [&[][..], &caller[..]] {
        let reply = get(&host, "/traced", headers).await;
        let seen = reply.json();
        assert_eq!(seen["traceparent"], Value::Null, "no span, no traceparent in handle: {seen}");
        assert_eq!(seen["recording"], false, "{seen}");
        assert_eq!(seen["request_traceparent"], Value::Null, "on-request had no traceparent to pass on: {seen}");
        assert_eq!(seen["metadata"], Value::Null, "{seen}");
        assert_eq!(reply.header("x-wasm-recording"), Some("false"), "on-response ran its tracing calls");
        assert_eq!(reply.header("x-wasm-on-response-traceparent"), None);
        assert_eq!(reply.header("traceparent"), None);
    }
}

#[tokio::test]
async fn with_tracing_off_an_outbound_request_from_the_guest_carries_no_traceparent() {
    let (addr, mut seen) = header_server().await;
    let host = traced_gateway(&[addr.as_str()]).start().await;
    let reply = get(&host, &format!("/traced?fetch=http://{addr}/x"), &[]).await;
    let body = reply.json();
    assert_eq!(body["fetch"], json!({ "status": 200, "body": "seen" }), "the guest's request went out: {body}");
    assert_eq!(seen.recv().await.expect("the server got the request"), None, "nothing injected with tracing off");
}
