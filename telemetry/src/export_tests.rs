//! The span exporter against the real in-process collector: spans reach it
//! over gRPC and HTTP with their resource, parents, attributes and events;
//! a collector that is down makes exports fail, counted; a full queue drops
//! spans without waiting.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::SpanKind;

use super::*;
use crate::collector::{AttrValue, Collector, ReceivedSpan, StatusCode, Transport};
use crate::sampler::Sampler;
use crate::{KeyValue, Tracer};

const WAIT: Duration = Duration::from_secs(20);
const REMOTE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REMOTE_SPAN: &str = "00f067aa0ba902b7";

fn settings(endpoint: String, protocol: Protocol) -> OtlpSettings {
    OtlpSettings {
        endpoint,
        protocol,
        headers: vec![("authorization".to_owned(), "Bearer test-token".to_owned())],
        timeout: Duration::from_secs(5),
    }
}

fn batching() -> BatchSettings {
    BatchSettings { max_queue: 64, max_batch: 16, delay: Duration::from_millis(20) }
}

fn service() -> ServiceInfo {
    ServiceInfo::new("covet-test", "9.9.9")
}

/// A server span continuing a remote parent, and a child with an attribute,
/// an event and an error status.
fn record_two_spans(exporter: &Arc<Exporter>) {
    let tracer = Tracer::new(Sampler { ratio: 1.0, parent_based: true }, Some(exporter.clone()));
    let mut headers = HeaderMap::new();
    let traceparent = format!("00-{REMOTE_TRACE}-{REMOTE_SPAN}-01");
    headers.insert("traceparent", HeaderValue::from_str(&traceparent).unwrap());
    let server = tracer.start_server(&headers, "GET /things", None);
    server.set_attribute(KeyValue::new("http.request.method", "GET"));
    let child = server.child("auth handle", SpanKind::Internal);
    child.set_attribute(KeyValue::new("covet.plugin.name", "auth"));
    child.set_attribute(KeyValue::new("attempts", 2_i64));
    child.add_event("checked", vec![KeyValue::new("ok", true)]);
    child.set_error("denied");
    child.end();
    server.end();
}

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

async fn spans_reach(protocol: Protocol) {
    let collector = Collector::start().await.unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        Protocol::Http => collector.http_endpoint(),
    };
    let exporter = Exporter::start(&settings(endpoint, protocol), &batching(), &service()).unwrap();
    record_two_spans(&exporter);
    let spans = collector.wait_for_spans(2, WAIT).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");

    let server = by_name(&spans, "GET /things");
    let child = by_name(&spans, "auth handle");
    assert_eq!(server.trace_id, REMOTE_TRACE);
    assert_eq!(child.trace_id, REMOTE_TRACE);
    assert_eq!(server.parent_span_id.as_deref(), Some(REMOTE_SPAN));
    assert_eq!(child.parent_span_id.as_deref(), Some(server.span_id.as_str()));
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(child.kind, SpanKind::Internal);
    assert_eq!(server.str_attr("http.request.method"), Some("GET"));
    assert_eq!(child.str_attr("covet.plugin.name"), Some("auth"));
    assert_eq!(child.int_attr("attempts"), Some(2));
    assert_eq!(child.events.len(), 1);
    assert_eq!(child.events[0].name, "checked");
    assert_eq!(child.events[0].attributes.get("ok"), Some(&AttrValue::Bool(true)));
    assert_eq!(child.status_code, StatusCode::Error);
    assert_eq!(child.status_message, "denied");
    assert_eq!(server.status_code, StatusCode::Unset);
    assert_eq!(server.scope, "covet");
    let transport = if protocol == Protocol::Grpc { Transport::Grpc } else { Transport::Http };
    for span in [server, child] {
        assert_eq!(span.transport, transport);
        assert_eq!(span.resource.get("service.name"), Some(&AttrValue::Str("covet-test".into())));
        assert_eq!(span.resource.get("service.version"), Some(&AttrValue::Str("9.9.9".into())));
        let instance = span.resource.get("service.instance.id").and_then(AttrValue::as_str).unwrap();
        assert!(instance.ends_with(&format!(":{}", std::process::id())), "{instance}");
    }
    let requests = collector.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.signal, "traces");
        assert!(request.headers.iter().any(|(k, v)| k == "authorization" && v == "Bearer test-token"), "{:?}", request.headers);
    }

    exporter.shutdown().await;
    assert_eq!(exporter.stats().exported.load(Relaxed), 2);
    assert_eq!(exporter.stats().failed_exports.load(Relaxed), 0);
    assert_eq!(exporter.stats().dropped_export_failed.load(Relaxed), 0);
}

#[tokio::test]
async fn spans_reach_the_grpc_collector_with_resource_and_parents() {
    spans_reach(Protocol::Grpc).await;
}

#[tokio::test]
async fn spans_reach_the_http_collector_with_resource_and_parents() {
    spans_reach(Protocol::Http).await;
}

async fn collector_down(protocol: Protocol) {
    let collector = Collector::start().await.unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        Protocol::Http => collector.http_endpoint(),
    };
    collector.stop().await;
    let exporter = Exporter::start(&settings(endpoint, protocol), &batching(), &service()).unwrap();
    record_two_spans(&exporter);
    exporter.shutdown().await;
    let stats = exporter.stats();
    assert_eq!(stats.exported.load(Relaxed), 0);
    assert_eq!(stats.dropped_export_failed.load(Relaxed), 2);
    assert!(stats.failed_exports.load(Relaxed) >= 1);
    assert_eq!(stats.dropped_queue_full.load(Relaxed), 0);
    assert!(collector.spans().is_empty());
}

#[tokio::test]
async fn a_stopped_grpc_collector_drops_and_counts_spans() {
    collector_down(Protocol::Grpc).await;
}

#[tokio::test]
async fn a_stopped_http_collector_drops_and_counts_spans() {
    collector_down(Protocol::Http).await;
}

/// On a current-thread runtime the batching task cannot run between two
/// `submit` calls: only `max_queue` spans fit, the rest are dropped at once.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let collector = Collector::start().await.unwrap();
    let endpoint = collector.grpc_endpoint();
    collector.stop().await;
    let batch = BatchSettings { max_queue: 4, max_batch: 2, delay: Duration::from_secs(60) };
    let exporter = Exporter::start(&settings(endpoint, Protocol::Grpc), &batch, &service()).unwrap();
    let tracer = Tracer::new(Sampler { ratio: 1.0, parent_based: true }, Some(exporter.clone()));
    for i in 0..100 {
        tracer.start_root(format!("span {i}"), SpanKind::Internal).end();
    }
    assert_eq!(exporter.stats().dropped_queue_full.load(Relaxed), 96);
    exporter.shutdown().await;
    let stats = exporter.stats();
    assert_eq!(stats.dropped_export_failed.load(Relaxed), 4);
    assert_eq!(stats.exported.load(Relaxed), 0);
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let bad_scheme = settings("ftp://127.0.0.1:4317".to_owned(), Protocol::Grpc);
    let err = Exporter::start(&bad_scheme, &batching(), &service()).unwrap_err();
    assert!(err.to_string().contains("http:// or https://"), "{err}");
    let mut bad_header = settings("http://127.0.0.1:4317".to_owned(), Protocol::Http);
    bad_header.headers = vec![("bad header".to_owned(), "x".to_owned())];
    let err = Exporter::start(&bad_header, &batching(), &service()).unwrap_err();
    assert!(err.to_string().contains("bad header"), "{err}");
}

/// A collector that goes down while the exporter is connected: later
/// exports fail and are counted; brought back on the same ports, exports
/// reach it again.
async fn collector_goes_down_and_comes_back(protocol: Protocol) {
    let collector = Collector::start().await.unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        Protocol::Http => collector.http_endpoint(),
    };
    let exporter = Exporter::start(&settings(endpoint, protocol), &batching(), &service()).unwrap();
    let tracer = Tracer::new(Sampler { ratio: 1.0, parent_based: true }, Some(exporter.clone()));
    tracer.start_root("before", SpanKind::Internal).end();
    assert_eq!(collector.wait_for_spans(1, WAIT).await.len(), 1);

    let (grpc, http) = (collector.grpc_addr(), collector.http_addr());
    collector.stop().await;
    tracer.start_root("while down", SpanKind::Internal).end();
    let deadline = tokio::time::Instant::now() + WAIT;
    while exporter.stats().dropped_export_failed.load(Relaxed) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(exporter.stats().dropped_export_failed.load(Relaxed), 1);
    assert_eq!(collector.spans().len(), 1);

    let back = Collector::start_on(grpc, http).await.unwrap();
    tracer.start_root("after", SpanKind::Internal).end();
    let spans = back.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["after"]);
    exporter.shutdown().await;
    assert_eq!(exporter.stats().exported.load(Relaxed), 2);
}

#[tokio::test]
async fn a_grpc_collector_going_down_and_back() {
    collector_goes_down_and_comes_back(Protocol::Grpc).await;
}

#[tokio::test]
async fn an_http_collector_going_down_and_back() {
    collector_goes_down_and_comes_back(Protocol::Http).await;
}
