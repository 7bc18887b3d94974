//! Server spans: sampling by the route's ratio and the caller's flag (a
//! tracer without exporter: ids only), and the exported span's name, parent,
//! attributes and status (a real exporter sending to covet-telemetry's test
//! collector over OTLP/gRPC).

use std::time::Duration;

use covet_telemetry::collector::{Collector, StatusCode as Status};
use covet_telemetry::export::{BatchSettings, Exporter, OtlpSettings, Protocol};
use covet_telemetry::sampler::Sampler;
use covet_telemetry::{ServiceInfo, SpanKind};
use http::Request;

use super::*;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn parts(traceparent: Option<&str>) -> Parts {
    let mut req = Request::builder().method("GET").uri("/users/7?x=1").version(Version::HTTP_2).header("user-agent", "curl/8");
    if let Some(value) = traceparent {
        req = req.header("traceparent", value);
    }
    req.body(()).unwrap().into_parts().0
}

fn conn() -> Conn<'static> {
    Conn { client: "[::1]:40160", tls: true }
}

fn sampled(tracer: &Tracer, parts: &Parts, route_ratio: Option<f64>) -> bool {
    start(tracer, parts, conn(), Some(("/users/{id}", route_ratio)), "r1").context().sampled
}

#[test]
fn the_route_ratio_replaces_the_default_for_new_traces() {
    let tracer = Tracer::new(Sampler { ratio: 0.0, parent_based: true }, None);
    let fresh = parts(None);
    assert!((0..50).all(|_| !sampled(&tracer, &fresh, None)), "ratio 0: nothing sampled");
    assert!((0..50).all(|_| sampled(&tracer, &fresh, Some(1.0))), "route ratio 1: every trace");
    let all = Tracer::new(Sampler { ratio: 1.0, parent_based: true }, None);
    assert!((0..50).all(|_| !sampled(&all, &fresh, Some(0.0))), "route ratio 0 beats the default 1");
    let unrouted = start(&tracer, &fresh, conn(), None, "r1");
    assert!(!unrouted.context().sampled, "no route: the default ratio");
}

#[test]
fn a_callers_flag_decides_and_its_trace_is_continued() {
    let tracer = Tracer::new(Sampler { ratio: 0.0, parent_based: true }, None);
    let caller = parts(Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")));
    let span = start(&tracer, &caller, conn(), Some(("/users/{id}", Some(0.0))), "r1");
    assert!(span.context().sampled);
    assert_eq!(format!("{:032x}", span.context().trace_id), CALLER_TRACE);
    assert_ne!(format!("{:016x}", span.context().span_id), CALLER_SPAN);
    assert!(!span.is_recording(), "no exporter: ids only");
    let unsampled = parts(Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00")));
    assert!(!sampled(&tracer, &unsampled, Some(1.0)), "the caller's 00 wins over the route ratio");
}

#[test]
fn versions_and_client_addresses_read_as_the_conventions_say() {
    assert_eq!(protocol_version(Version::HTTP_11), "1.1");
    assert_eq!(protocol_version(Version::HTTP_2), "2");
    assert_eq!(protocol_version(Version::HTTP_3), "3");
    assert_eq!(split_client("10.0.0.7:5000"), ("10.0.0.7", Some(5000)));
    assert_eq!(split_client("[::1]:40160"), ("::1", Some(40160)));
    assert_eq!(split_client("unix"), ("unix", None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_server_span_carries_the_request_and_its_status() {
    let collector = Collector::start().await.expect("collector");
    let otlp = OtlpSettings { endpoint: collector.grpc_endpoint(), protocol: Protocol::Grpc, headers: Vec::new(), timeout: Duration::from_secs(5) };
    let batch = BatchSettings { max_queue: 16, max_batch: 4, delay: Duration::from_millis(20) };
    let exporter = Exporter::start(&otlp, &batch, &ServiceInfo::new("covet-test", "0.0.0")).expect("exporter");
    let tracer = Tracer::new(Sampler { ratio: 0.0, parent_based: true }, Some(exporter.clone()));
    let caller = parts(Some(&format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")));
    let span = start(&tracer, &caller, conn(), Some(("/users/{id}", None)), "req-1");
    assert!(span.is_recording());
    finish(&span, StatusCode::SERVICE_UNAVAILABLE);
    exporter.shutdown().await;
    let spans = collector.wait_for_spans(1, Duration::from_secs(10)).await;
    let got = spans.iter().find(|s| s.name == "GET /users/{id}").unwrap_or_else(|| panic!("{spans:?}"));
    assert_eq!(got.kind, SpanKind::Server);
    assert_eq!(got.trace_id, CALLER_TRACE);
    assert_eq!(got.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(got.span_id, format!("{:016x}", span.context().span_id));
    let attr = |key: &str| got.attributes.get(key).cloned();
    let text = |key: &str| attr(key).and_then(|v| v.as_str().map(str::to_owned));
    assert_eq!(text("http.request.method").as_deref(), Some("GET"));
    assert_eq!(text("url.path").as_deref(), Some("/users/7"));
    assert_eq!(text("url.scheme").as_deref(), Some("https"));
    assert_eq!(text("http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(text("network.protocol.version").as_deref(), Some("2"));
    assert_eq!(text("client.address").as_deref(), Some("::1"));
    assert_eq!(attr("client.port").and_then(|v| v.as_i64()), Some(40160));
    assert_eq!(text("user_agent.original").as_deref(), Some("curl/8"));
    assert_eq!(text("covet.request_id").as_deref(), Some("req-1"));
    assert_eq!(attr("http.response.status_code").and_then(|v| v.as_i64()), Some(503));
    assert_eq!(got.status_code, Status::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_route_is_named_by_its_method_and_ok_below_500() {
    let collector = Collector::start().await.expect("collector");
    let otlp = OtlpSettings { endpoint: collector.http_endpoint(), protocol: Protocol::Http, headers: Vec::new(), timeout: Duration::from_secs(5) };
    let exporter = Exporter::start(&otlp, &BatchSettings::default(), &ServiceInfo::new("covet-test", "0.0.0")).expect("exporter");
    let tracer = Tracer::new(Sampler { ratio: 1.0, parent_based: true }, Some(exporter.clone()));
    let span = start(&tracer, &parts(None), Conn { client: "127.0.0.1:9", tls: false }, None, "req-2");
    finish(&span, StatusCode::NOT_FOUND);
    exporter.shutdown().await;
    let spans = collector.wait_for_spans(1, Duration::from_secs(10)).await;
    let got = &spans[0];
    assert_eq!((got.name.as_str(), got.parent_span_id.as_deref()), ("GET", None));
    assert!(!got.attributes.contains_key("http.route"));
    assert_eq!(got.attributes.get("url.scheme").and_then(|v| v.as_str()), Some("http"));
    assert_eq!(got.status_code, Status::Unset);
}
