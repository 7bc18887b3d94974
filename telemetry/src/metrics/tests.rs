//! Metrics over OTLP: a registry's counter, gauge and histogram (and a
//! custom collector written like the host's) converted and received by the
//! real in-process collector over gRPC and HTTP; a stopped collector makes
//! exports fail, counted.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector as PromCollector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

use super::*;
use crate::collector::{metrics_of, AttrValue, Collector, MetricKind, PointValue, ReceivedMetric, Transport};

type Labels = Vec<(String, String)>;

/// Like the host's collector: families written at read time.
#[derive(Debug)]
struct HostLike;

impl PromCollector for HostLike {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut family = encoder.encode_descriptor("custom_reloads", "Reloads.", None, MetricType::Counter)?;
        ConstCounter::new(5_u64).encode(family.encode_family(&[("result", "ok")])?)?;
        let mut family = encoder.encode_descriptor("custom_latency_seconds", "Latency.", None, MetricType::Histogram)?;
        // Per-bucket counts, as the host hands them (the encoder sums them).
        family.encode_histogram::<NoLabelSet>(3.5, 3, &[(0.1, 1), (1.0, 1), (f64::MAX, 1)], None)
    }
}

fn registry() -> Registry {
    let mut registry = Registry::default();
    let requests = Family::<Labels, Counter>::default();
    requests.get_or_create(&vec![("class".to_owned(), "2xx".to_owned())]).inc_by(3);
    registry.register("requests", "Finished requests", requests);
    let inflight = Gauge::<i64>::default();
    inflight.set(7);
    registry.register("inflight", "Requests in flight.", inflight);
    let latency = Histogram::new([1.0, 2.0, 5.0]);
    for v in [0.5, 1.5, 1.7, 10.0] {
        latency.observe(v);
    }
    registry.register("latency_seconds", "Latency.", latency);
    registry.register_collector(Box::new(HostLike));
    registry
}

fn service() -> ServiceInfo {
    ServiceInfo::new("covet-test", "1.2.3")
}

fn find<'a>(metrics: &'a [ReceivedMetric], name: &str) -> &'a ReceivedMetric {
    metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no metric {name:?} in {metrics:#?}"))
}

fn str_attr(value: &str) -> AttrValue {
    AttrValue::Str(value.to_owned())
}

/// Checks the registry's metrics as received.
fn check(metrics: &[ReceivedMetric], start: u64) {
    let requests = find(metrics, "requests_total");
    assert_eq!(requests.kind, MetricKind::Sum { monotonic: true, cumulative: true });
    assert_eq!(requests.description, "Finished requests.");
    assert_eq!(requests.points.len(), 1);
    assert_eq!(requests.points[0].value, PointValue::Double(3.0));
    assert_eq!(requests.points[0].attributes.get("class"), Some(&str_attr("2xx")));
    assert_eq!(requests.points[0].start_time_unix_nano, start);
    assert!(requests.points[0].time_unix_nano >= start);

    let inflight = find(metrics, "inflight");
    assert_eq!(inflight.kind, MetricKind::Gauge);
    assert_eq!(inflight.points[0].value, PointValue::Double(7.0));

    let latency = find(metrics, "latency_seconds");
    assert_eq!(latency.kind, MetricKind::Histogram { cumulative: true });
    let expected = PointValue::Histogram { count: 4, sum: Some(13.7), bounds: vec![1.0, 2.0, 5.0], bucket_counts: vec![1, 2, 0, 1] };
    assert_eq!(latency.points[0].value, expected);

    let reloads = find(metrics, "custom_reloads_total");
    assert_eq!(reloads.kind, MetricKind::Sum { monotonic: true, cumulative: true });
    assert_eq!(reloads.points[0].value, PointValue::Double(5.0));
    assert_eq!(reloads.points[0].attributes.get("result"), Some(&str_attr("ok")));
    let custom = find(metrics, "custom_latency_seconds");
    let expected = PointValue::Histogram { count: 3, sum: Some(3.5), bounds: vec![0.1, 1.0], bucket_counts: vec![1, 1, 1] };
    assert_eq!(custom.points[0].value, expected);

    for m in metrics {
        assert_eq!(m.resource.get("service.name"), Some(&str_attr("covet-test")));
        assert_eq!(m.resource.get("service.version"), Some(&str_attr("1.2.3")));
    }
}

#[test]
fn a_counter_a_gauge_and_histograms_convert_to_otlp() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let families = snapshot_from_registry(&registry()).unwrap();
    let request = to_request(&families, &service(), start, SystemTime::now());
    let metrics = metrics_of(&request, Transport::Grpc);
    assert_eq!(metrics.len(), 5, "{metrics:#?}");
    check(&metrics, 1_000_000_000_000);
}

fn settings(endpoint: String, protocol: Protocol) -> OtlpSettings {
    OtlpSettings { endpoint, protocol, headers: vec![("x-tenant".to_owned(), "t1".to_owned())], timeout: Duration::from_secs(5) }
}

fn collect() -> Collect {
    let registry = Arc::new(registry());
    Arc::new(move || snapshot_from_registry(&registry))
}

async fn metrics_reach(protocol: Protocol) {
    let collector = Collector::start().await.unwrap();
    let endpoint = if protocol == Protocol::Grpc { collector.grpc_endpoint() } else { collector.http_endpoint() };
    let exporter = MetricsExporter::start(&settings(endpoint, protocol), Duration::from_millis(50), &service(), collect()).unwrap();
    let metrics = collector.wait_for_metrics(|m| m.len() >= 5, Duration::from_secs(20)).await;
    exporter.shutdown().await;
    assert!(metrics.len() >= 5, "{metrics:#?}");
    check(&metrics[..5], super::unix_nanos_for_tests(process_start()));
    let transport = if protocol == Protocol::Grpc { Transport::Grpc } else { Transport::Http };
    assert!(metrics.iter().all(|m| m.transport == transport));
    let request = &collector.requests()[0];
    assert_eq!(request.signal, "metrics");
    assert!(request.headers.iter().any(|(k, v)| k == "x-tenant" && v == "t1"), "{:?}", request.headers);
    assert!(exporter.stats().exported.load(Relaxed) >= 1);
    assert_eq!(exporter.stats().failed_exports.load(Relaxed), 0);
}

#[tokio::test]
async fn metrics_reach_the_grpc_collector() {
    metrics_reach(Protocol::Grpc).await;
}

#[tokio::test]
async fn metrics_reach_the_http_collector() {
    metrics_reach(Protocol::Http).await;
}

async fn collector_down(protocol: Protocol) {
    let collector = Collector::start().await.unwrap();
    let endpoint = if protocol == Protocol::Grpc { collector.grpc_endpoint() } else { collector.http_endpoint() };
    collector.stop().await;
    let exporter = MetricsExporter::start(&settings(endpoint, protocol), Duration::from_secs(3600), &service(), collect()).unwrap();
    // Shutting down sends once more: it fails, and is counted.
    exporter.shutdown().await;
    assert_eq!(exporter.stats().exported.load(Relaxed), 0);
    assert_eq!(exporter.stats().failed_exports.load(Relaxed), 1);
    assert!(collector.metrics().is_empty());
}

#[tokio::test]
async fn a_stopped_grpc_collector_counts_failed_metric_exports() {
    collector_down(Protocol::Grpc).await;
}

#[tokio::test]
async fn a_stopped_http_collector_counts_failed_metric_exports() {
    collector_down(Protocol::Http).await;
}
