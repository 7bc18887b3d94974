//! Tracing from a WASM plugin (fixture `covet_wasm_traced`, which imports
//! `covet:plugin/tracing@0.2.0` in every phase and makes an outbound
//! wasi:http request on demand) with tracing off: every tracing call is a
//! harmless no-op (no span, `traceparent` is `none`, nothing recorded), the
//! request is answered as usual, and an outbound request from the guest
//! carries no `traceparent`. With tracing on, against a real OTLP
//! collector: the handler's attributes (one of each kind) and event reach
//! its span, `traceparent()` names each phase's own span, and its outbound
//! wasi:http request is one client span, a child of the handler's span,
//! whose id the server receives in `traceparent`. (The chain of all three
//! plugin kinds is in `tests/e2e/telemetry/chain.rs`.)

use bytes::Bytes;
use covet_e2e::{Host, otlp::{Collector, ExportedSpan}};
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

/// The one span named `name`.
fn one<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    found[0]
}

#[tokio::test]
async fn with_tracing_on_the_handlers_attributes_event_and_outbound_request_reach_the_collector() {
    let collector = Collector::grpc().await;
    let (addr, mut seen) = header_server().await;
    let mut manifest: Value = serde_json::from_str(&traced_gateway(&[addr.as_str()]).yaml()).unwrap();
    manifest["telemetry"] = json!({
        "otlp": { "endpoint": collector.endpoint(), "protocol": collector.protocol() },
        "tracing": { "sample_ratio": 1.0, "batch_delay": "50ms" },
    });
    let host = Host::start(manifest.to_string()).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = format!("00-{trace}-00f067aa0ba902b7-01");
    let reply = get(&host, &format!("/traced?fetch=http://{addr}/x"), &[("traceparent", &caller)]).await;
    let body = reply.json();
    let spans = collector.trace(trace).await;

    let handle = one(&spans, "th handle");
    for (key, value) in [("fixture.kind", json!("wasm")), ("fixture.int", json!(42)), ("fixture.float", json!(1.5)), ("fixture.bool", json!(true))] {
        assert_eq!(handle.attr(key), value, "{key} on {handle:?}");
    }
    assert_eq!(handle.attr("fixture.phase"), json!("handle"), "{handle:?}");
    assert_eq!(handle.attr("covet.plugin.kind"), json!("wasm"), "{handle:?}");
    assert_eq!(handle.event("fixture.event"), json!({ "fixture.phase": "handle", "fixture.n": 1 }));
    assert_eq!(body["recording"], true, "{body}");
    assert_eq!(body["traceparent"], format!("00-{trace}-{}-01", handle.span_id), "traceparent() names the call's own span");

    let on_request = one(&spans, "tf on_request");
    assert_eq!(on_request.attr("fixture.phase"), json!("on_request"), "{on_request:?}");
    assert_eq!(on_request.parent_span_id, handle.parent_span_id, "both are children of the server span");
    let passed_on = format!("00-{trace}-{}-01", on_request.span_id);
    assert_eq!((&body["request_traceparent"], &body["metadata"]), (&json!(passed_on), &json!(passed_on)), "{body}");
    let on_response = one(&spans, "tf on_response");
    assert_eq!(reply.header("x-wasm-on-response-traceparent"), Some(format!("00-{trace}-{}-01", on_response.span_id).as_str()));

    let clients: Vec<_> = spans.iter().filter(|s| s.kind == "client").collect();
    assert_eq!(clients.len(), 1, "one client span for the guest's request, not two: {clients:?}");
    let client = clients[0];
    assert_eq!(client.parent_span_id, handle.span_id, "the outbound request is a child of the handler's span: {client:?}");
    assert_eq!(client.attr("http.request.method"), json!("GET"), "{client:?}");
    assert_eq!(client.attr("url.full"), json!(format!("http://{addr}/x")), "{client:?}");
    assert_eq!(client.attr("server.port"), json!(addr.rsplit(':').next().unwrap().parse::<i64>().unwrap()), "{client:?}");
    assert_eq!(client.attr("http.response.status_code"), json!(200), "{client:?}");
    let received = seen.recv().await.expect("the server got the request").expect("with a traceparent");
    assert_eq!(received, format!("00-{trace}-{}-01", client.span_id), "the server's parent is the client span");
}
