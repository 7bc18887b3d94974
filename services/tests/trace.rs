//! Client spans of the host services, recorded and exported to a real OTLP
//! collector (`covet_telemetry::collector`), and the `traceparent` real
//! local hyper servers receive: one span per upstream attempt (retries
//! visible, each attempt the upstream's parent) and one per outbound HTTP
//! call, children of the caller's current span.
//!
//! Tracing is switched on for this test binary by installing a tracer that
//! samples no new trace and exports nothing; each test makes its recorded
//! parent span with a tracer of its own, whose exporter sends to the test's
//! collector (client spans take their parent's recording, not the installed
//! tracer's).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use covet_services::http::{HttpClient, HttpConfig, OutboundPolicy};
use covet_services::upstream::{EndpointSpec, Overrides, UpstreamConfig, UpstreamRequest, Upstreams};
use covet_telemetry::collector::{AttrValue, Collector, ReceivedSpan, StatusCode};
use covet_telemetry::context::parse_traceparent;
use covet_telemetry::export::{BatchSettings, Exporter, OtlpSettings, Protocol};
use covet_telemetry::resource::ServiceInfo;
use covet_telemetry::sampler::Sampler;
use covet_telemetry::{Span, SpanKind, Tracer, current, tracer};
use http_body_util::BodyExt;
use support::ServerBody;

const CLIENT_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Trace headers each request arrived with: `(traceparent, tracestate)`.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// A server answering `statuses` in turn (then 200), keeping the trace headers.
async fn recording_server(statuses: &'static [u16]) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let kept = seen.clone();
    let addr = support::serve(None, move |request| {
        let mut seen = kept.lock().unwrap();
        let header = |name: &str| request.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        seen.push((header("traceparent"), header("tracestate")));
        let status = statuses.get(seen.len() - 1).copied().unwrap_or(200);
        let body: ServerBody = http_body_util::Full::new(Bytes::from("ok")).boxed_unsync();
        async move { http::Response::builder().status(status).body(body).unwrap() }
    })
    .await;
    (addr, seen)
}

/// Turns tracing on for this binary (ids and propagation; new traces unsampled).
fn tracing_on() {
    tracer::install(Some(Arc::new(Tracer::new(Sampler { ratio: 0.0, parent_based: true }, None))));
}

/// A collector and a tracer recording every trace into it.
async fn recorder() -> (Collector, Tracer) {
    tracing_on();
    let collector = Collector::start().await.unwrap();
    let otlp = OtlpSettings {
        endpoint: collector.grpc_endpoint(),
        protocol: Protocol::Grpc,
        headers: Vec::new(),
        timeout: Duration::from_secs(5),
    };
    let batch = BatchSettings { max_queue: 64, max_batch: 16, delay: Duration::from_millis(20) };
    let exporter = Exporter::start(&otlp, &batch, &ServiceInfo::new("services-test", "0")).unwrap();
    (collector, Tracer::new(Sampler { ratio: 1.0, parent_based: true }, Some(exporter)))
}

fn upstream(name: &str, addrs: &[SocketAddr], max_retries: u32) -> (Upstreams, Arc<covet_services::upstream::Upstream>) {
    let endpoints = addrs.iter().map(|a| EndpointSpec { host: a.ip().to_string(), port: a.port(), weight: 1 }).collect();
    let mut config = UpstreamConfig::new(name, endpoints);
    config.retries.backoff = Duration::from_millis(1);
    config.retries.max_retries = max_retries;
    let upstreams = Upstreams::new();
    upstreams.reconcile(vec![config]).unwrap();
    let upstream = upstreams.get(name).unwrap();
    (upstreams, upstream)
}

/// A GET as the proxy builds it: the client's trace headers copied.
fn proxied_get() -> UpstreamRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", http::HeaderValue::from_static(CLIENT_TRACEPARENT));
    headers.insert("tracestate", http::HeaderValue::from_static("client=1"));
    UpstreamRequest {
        method: http::Method::GET,
        path_and_query: "/items?id=1".into(),
        headers,
        body: None,
        client_ip: None,
        overrides: Overrides::default(),
    }
}

/// `(trace id, parent id, sampled)` of a received traceparent, as hex.
fn parsed(traceparent: &Option<String>) -> (String, String, bool) {
    let value = traceparent.as_deref().expect("a traceparent");
    let (trace, span, sampled) = parse_traceparent(value.as_bytes()).expect("a valid traceparent");
    (format!("{trace:032x}"), format!("{span:016x}"), sampled)
}

fn hex_ids(span: &Span) -> (String, String) {
    (format!("{:032x}", span.context().trace_id), format!("{:016x}", span.context().span_id))
}

fn int(span: &ReceivedSpan, key: &str) -> Option<i64> {
    span.attr(key).and_then(AttrValue::as_i64)
}

fn text<'s>(span: &'s ReceivedSpan, key: &str) -> Option<&'s str> {
    span.attr(key).and_then(AttrValue::as_str)
}

#[tokio::test]
async fn each_upstream_attempt_is_a_client_span_and_the_upstreams_parent() {
    let (collector, tracer) = recorder().await;
    let (addr, seen) = recording_server(&[503]).await;
    let (_registry, upstream) = upstream("traced", &[addr], 2);
    let plugin = tracer.start_root("plugin handle", SpanKind::Internal);
    let response = current::scope(plugin.clone(), upstream.send(proxied_get())).await.unwrap();
    assert_eq!((response.response.status().as_u16(), response.attempts), (200, 2), "the 503 is retried");
    plugin.end();
    let spans = collector.wait_for_spans(3, Duration::from_secs(10)).await;
    let (trace_id, plugin_id) = hex_ids(&plugin);
    let mut attempts: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "GET traced").collect();
    attempts.sort_by_key(|s| int(s, "http.request.resend_count"));
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let seen = seen.lock().unwrap().clone();
    for (i, (attempt, received)) in attempts.iter().zip(&seen).enumerate() {
        assert_eq!(attempt.kind, SpanKind::Client);
        assert_eq!((&attempt.trace_id, attempt.parent_span_id.as_ref()), (&trace_id, Some(&plugin_id)));
        assert_eq!(int(attempt, "http.request.resend_count"), Some(i as i64));
        assert_eq!(text(attempt, "covet.upstream.name"), Some("traced"));
        assert_eq!(text(attempt, "covet.upstream.endpoint"), Some(addr.to_string().as_str()));
        assert_eq!(text(attempt, "server.address"), Some("127.0.0.1"));
        assert_eq!(int(attempt, "server.port"), Some(i64::from(addr.port())));
        assert_eq!(text(attempt, "http.request.method"), Some("GET"));
        // The upstream's parent is this attempt's span; the client's headers were replaced.
        assert_eq!(parsed(&received.0), (trace_id.clone(), attempt.span_id.clone(), true));
        assert_eq!(received.1, None, "the trace has no tracestate: the client's is removed");
    }
    assert_ne!(attempts[0].span_id, attempts[1].span_id);
    assert_eq!(int(attempts[0], "http.response.status_code"), Some(503));
    assert_eq!(text(attempts[0], "error.type"), Some("503"));
    assert_eq!(attempts[0].status_code, StatusCode::Error);
    assert_eq!(int(attempts[1], "http.response.status_code"), Some(200));
    assert_eq!(attempts[1].attr("error.type"), None);
    assert_ne!(attempts[1].status_code, StatusCode::Error);
}

#[tokio::test]
async fn an_attempt_that_cannot_connect_ends_with_its_error_type() {
    let (collector, tracer) = recorder().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (_registry, upstream) = upstream("down", &[dead], 0);
    let plugin = tracer.start_root("plugin handle", SpanKind::Internal);
    let error = current::scope(plugin.clone(), upstream.send(proxied_get())).await.err().expect("nothing listens");
    assert_eq!(error.kind(), "unavailable");
    let spans = collector.wait_for_spans_where(|s| s.iter().any(|s| s.name == "GET down"), Duration::from_secs(10)).await;
    let attempt = spans.iter().find(|s| s.name == "GET down").unwrap();
    assert_eq!(text(attempt, "error.type"), Some("connect"));
    assert_eq!(attempt.status_code, StatusCode::Error);
    assert!(!attempt.status_message.is_empty());
    assert_eq!(attempt.attr("http.response.status_code"), None);
}

#[tokio::test]
async fn an_outbound_http_call_is_a_client_span_and_the_servers_parent() {
    let (collector, tracer) = recorder().await;
    let (addr, seen) = recording_server(&[200, 404]).await;
    let outbound = HttpClient::new(HttpConfig::default())
        .unwrap()
        .for_plugin("tester", OutboundPolicy::new(&[format!("127.0.0.1:{}", addr.port())]).unwrap());
    let plugin = tracer.start_root("plugin on_request", SpanKind::Internal);
    for path in ["/a?x=1", "/missing"] {
        let url = format!("http://127.0.0.1:{}{path}", addr.port());
        let mut request = http::Request::get(&url).body(covet_services::http::empty()).unwrap();
        request.headers_mut().insert("traceparent", http::HeaderValue::from_static(CLIENT_TRACEPARENT));
        current::scope(plugin.clone(), outbound.send(request, None)).await.unwrap();
    }
    plugin.end();
    let spans = collector.wait_for_spans(3, Duration::from_secs(10)).await;
    let (trace_id, plugin_id) = hex_ids(&plugin);
    let calls: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "GET").collect();
    assert_eq!(calls.len(), 2, "{spans:#?}");
    let seen = seen.lock().unwrap().clone();
    for (call, received) in calls.iter().zip(&seen) {
        assert_eq!(call.kind, SpanKind::Client);
        assert_eq!(call.parent_span_id.as_ref(), Some(&plugin_id));
        assert_eq!(parsed(&received.0), (trace_id.clone(), call.span_id.clone(), true));
        assert_eq!(text(call, "server.address"), Some("127.0.0.1"));
        assert_eq!(int(call, "server.port"), Some(i64::from(addr.port())));
        assert_eq!(text(call, "http.request.method"), Some("GET"));
    }
    let ok = calls.iter().find(|s| int(s, "http.response.status_code") == Some(200)).unwrap();
    assert_eq!(text(ok, "url.full"), Some(format!("http://127.0.0.1:{}/a?x=1", addr.port()).as_str()));
    let missing = calls.iter().find(|s| int(s, "http.response.status_code") == Some(404)).unwrap();
    assert_eq!(text(missing, "error.type"), Some("404"));
    assert_eq!(missing.status_code, StatusCode::Error);
}

#[tokio::test]
async fn an_unsampled_callers_trace_is_still_propagated_per_attempt() {
    tracing_on();
    let (addr, seen) = recording_server(&[503]).await;
    let (_registry, upstream) = upstream("unsampled", &[addr], 2);
    // Ratio 0 and no parent: an unsampled trace (ids only, nothing recorded).
    let plugin = Tracer::new(Sampler { ratio: 0.0, parent_based: true }, None).start_root("plugin", SpanKind::Internal);
    assert!(!plugin.is_recording());
    current::scope(plugin.clone(), upstream.send(proxied_get())).await.unwrap();
    let (trace_id, plugin_id) = hex_ids(&plugin);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (first, second) = (parsed(&seen[0].0), parsed(&seen[1].0));
    for (trace, parent, sampled) in [&first, &second] {
        assert_eq!(trace, &trace_id);
        assert_ne!(parent, &plugin_id, "the attempt's own span is the parent");
        assert!(!sampled, "flag 00 carried as is");
    }
    assert_ne!(first.1, second.1, "a retry is a new span");
}

#[tokio::test]
async fn a_call_outside_any_plugin_call_starts_a_new_trace() {
    tracing_on();
    let (addr, seen) = recording_server(&[]).await;
    let (_registry, upstream) = upstream("background", &[addr], 0);
    upstream.send(proxied_get()).await.unwrap();
    let (trace, _, sampled) = parsed(&seen.lock().unwrap()[0].0);
    assert_ne!(trace, "0af7651916cd43dd8448eb211c80319c", "not the client's trace: a root of its own");
    assert!(!sampled, "the installed tracer samples no new trace");
}
