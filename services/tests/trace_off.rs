//! With tracing off (no tracer installed in this test binary), the host
//! services add no trace headers: what the caller sends (here, a client's
//! `traceparent` the proxy copied) reaches the server untouched, even when
//! the call runs inside a span's scope.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use covet_services::http::{HttpClient, HttpConfig, OutboundPolicy};
use covet_services::upstream::{EndpointSpec, Overrides, UpstreamConfig, UpstreamRequest, Upstreams};
use covet_telemetry::{Span, SpanContext, SpanId, TraceId, current};
use http_body_util::BodyExt;
use support::ServerBody;

const CLIENT_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// A server answering 503 first, then 200, keeping each request's `traceparent`.
async fn recording_server() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let kept = seen.clone();
    let addr = support::serve(None, move |request| {
        let mut seen = kept.lock().unwrap();
        seen.push(request.headers().get("traceparent").map(|v| v.to_str().unwrap().to_owned()));
        let status = if seen.len() == 1 { 503 } else { 200 };
        let body: ServerBody = http_body_util::Full::new(Bytes::from("ok")).boxed_unsync();
        async move { http::Response::builder().status(status).body(body).unwrap() }
    })
    .await;
    (addr, seen)
}

fn some_span() -> Span {
    Span::unrecorded(SpanContext { trace_id: TraceId::from(7u128), span_id: SpanId::from(9u64), sampled: true, tracestate: None })
}

#[tokio::test]
async fn upstream_attempts_carry_the_callers_traceparent_untouched() {
    let (addr, seen) = recording_server().await;
    let mut config = UpstreamConfig::new("off", vec![EndpointSpec { host: "127.0.0.1".into(), port: addr.port(), weight: 1 }]);
    config.retries.backoff = Duration::from_millis(1);
    let upstreams = Upstreams::new();
    upstreams.reconcile(vec![config]).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_static(CLIENT_TRACEPARENT));
    let request = UpstreamRequest {
        method: http::Method::GET,
        path_and_query: "/".into(),
        headers,
        body: None,
        client_ip: None,
        overrides: Overrides::default(),
    };
    let response = current::scope(some_span(), upstreams.get("off").unwrap().send(request)).await.unwrap();
    assert_eq!(response.attempts, 2);
    assert_eq!(*seen.lock().unwrap(), vec![Some(CLIENT_TRACEPARENT.to_owned()); 2]);
}

#[tokio::test]
async fn outbound_http_adds_no_traceparent() {
    let (addr, seen) = recording_server().await;
    let outbound = HttpClient::new(HttpConfig::default())
        .unwrap()
        .for_plugin("tester", OutboundPolicy::new(&[format!("127.0.0.1:{}", addr.port())]).unwrap());
    let url = format!("http://127.0.0.1:{}/", addr.port());
    let request = http::Request::get(&url).body(covet_services::http::empty()).unwrap();
    current::scope(some_span(), outbound.send(request, None)).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![None]);
}
