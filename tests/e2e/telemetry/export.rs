//! Export: OTLP over gRPC and over HTTP both deliver (with the resource
//! naming the service); a collector that is down — never there, or stopped
//! while the host runs — costs no request (all answer 200) and the drop and
//! failure counters in `/metrics` grow; one that accepts connections and
//! never answers blocks no request either, and the full queue drops spans
//! (counted); with `telemetry.metrics` the
//! registry behind `/metrics` reaches the collector with the same values.

use std::time::Instant;

use covet_e2e::{Host, otlp::Collector};
use covet_telemetry::collector::MetricKind;
use serde_json::json;

use super::{PATIENCE, Traced, access_line, field, one, sample, scrape, send, wait_metric};

/// `/hello` answered by the static-response plugin, exporting to `collector`.
fn hello(collector: Option<&Collector>) -> Traced {
    Traced::new(collector).native("hello", "covet-static-response", json!({ "body": "hello" })).route("/hello", &[], "hello")
}

const DROPPED: &str = "covet_trace_spans_dropped_total{reason=\"export_failed\"}";
const FAILURES: &str = "covet_otlp_export_failures_total{signal=\"traces\"}";

/// Sends `n` requests to `/hello`; every one must answer 200.
async fn all_answer(host: &Host, n: usize) {
    for i in 0..n {
        let reply = send(host, "/hello", &[]).await;
        assert_eq!((i, reply.status.as_u16(), reply.text().as_str()), (i, 200, "hello"));
    }
}

#[tokio::test]
async fn spans_arrive_over_grpc_and_over_http() {
    for collector in [Collector::grpc().await, Collector::http().await] {
        let host = hello(Some(&collector)).telemetry("service_name", json!("checkout-gw")).start().await;
        let id = format!("over-{}", collector.protocol());
        assert_eq!(send(&host, "/hello", &[("x-request-id", &id)]).await.status, 200);
        let line = access_line(&host, &id).await;
        let trace = field(&line, "trace_id").unwrap_or_else(|| panic!("trace_id in {line}"));
        let spans = collector.trace(trace).await;
        let server = one(&spans, "GET /hello");
        assert_eq!(server.service, "checkout-gw", "over {}", collector.protocol());
        assert!(!server.resource("service.version").as_str().unwrap_or("").is_empty(), "service.version: {server:?}");
        let instance = server.resource("service.instance.id");
        assert!(instance.as_str().is_some_and(|i| i.ends_with(&format!(":{}", host.pid()))), "hostname:pid: {instance}");
        let plugin = one(&spans, "hello handle");
        assert_eq!(plugin.parent_span_id, server.span_id);
        assert_eq!(server.attr("network.protocol.version"), json!("1.1"));
        let id = format!("h2-{}", collector.protocol());
        assert_eq!(host.http2().send(http::Method::GET, "/hello", &[("x-request-id", &id)], "").await.expect("h2c").status, 200);
        let line = access_line(&host, &id).await;
        let trace = field(&line, "trace_id").unwrap_or_else(|| panic!("trace_id in {line}"));
        let server = one(&collector.trace(trace).await, "GET /hello").clone();
        assert_eq!(server.attr("network.protocol.version"), json!("2"), "over h2c");
    }
}

#[tokio::test]
async fn a_collector_that_was_never_there_costs_no_request() {
    for protocol in ["grpc", "http"] {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", closed.local_addr().expect("address"));
        drop(closed);
        let host = hello(None).otlp_at(&endpoint, protocol).otlp_key("timeout", json!("500ms")).start().await;
        all_answer(&host, 30).await;
        let dropped = wait_metric(&host, DROPPED, 1.0).await;
        wait_metric(&host, FAILURES, 1.0).await;
        all_answer(&host, 30).await;
        wait_metric(&host, DROPPED, dropped + 1.0).await;
        assert_eq!(sample(&scrape(&host).await, "covet_trace_spans_exported_total"), 0.0, "over {protocol}");
    }
}

#[tokio::test]
async fn a_collector_that_never_answers_blocks_no_request_and_a_full_queue_drops() {
    // Accepts connections and never answers: the exporter's first call hangs
    // until its 10 s timeout, so the queue (2 spans) fills and the rest drop.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let host = hello(None)
        .otlp_at(&endpoint, "grpc")
        .otlp_key("timeout", json!("10s"))
        .tracing("max_queue", json!(2))
        .tracing("max_batch", json!(1))
        .start()
        .await;
    all_answer(&host, 30).await;
    let dropped = wait_metric(&host, "covet_trace_spans_dropped_total{reason=\"queue_full\"}", 1.0).await;
    assert!(dropped >= 50.0, "30 requests made 60 spans, at most 3 fit (one in flight, two queued): {dropped}");
    held.abort();
}

#[tokio::test]
async fn a_collector_stopped_while_the_host_runs_costs_no_request() {
    let collector = Collector::grpc().await;
    let host = hello(Some(&collector)).start().await;
    all_answer(&host, 5).await;
    let exported = wait_metric(&host, "covet_trace_spans_exported_total", 10.0).await;
    collector.stop().await;
    all_answer(&host, 50).await;
    let dropped = wait_metric(&host, DROPPED, 1.0).await;
    all_answer(&host, 50).await;
    wait_metric(&host, DROPPED, dropped + 1.0).await;
    let text = scrape(&host).await;
    assert!(sample(&text, FAILURES) >= 1.0, "{text}");
    assert!(sample(&text, "covet_trace_spans_exported_total") >= exported, "{text}");
}

#[tokio::test]
async fn metrics_reach_the_collector_with_the_values_of_the_metrics_endpoint() {
    for collector in [Collector::grpc().await, Collector::http().await] {
        let host = hello(Some(&collector)).telemetry("metrics", json!({ "interval": "200ms" })).start().await;
        all_answer(&host, 7).await;
        let text = scrape(&host).await;
        let requests = sample(&text, "covet_requests_total{class=\"2xx\"}");
        let durations = sample(&text, "covet_request_duration_seconds_count");
        let calls = sample(&text, "covet_plugin_calls_total{plugin=\"hello\"}");
        assert!(requests >= 7.0 && durations >= 7.0 && calls >= 7.0, "{text}");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = (
                collector.sum("covet_requests_total", &[("class", "2xx")]),
                collector.histogram_count("covet_request_duration_seconds", &[]),
                collector.sum("covet_plugin_calls_total", &[("plugin", "hello")]),
            );
            if got == (Some(requests), Some(durations), Some(calls)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "over {}: the collector's latest (requests, durations, calls) {got:?} never matched /metrics \
                 ({requests}, {durations}, {calls}); metric names received: {:?}\nlogs:\n{}",
                collector.protocol(),
                collector.metric_names(),
                host.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let kinds = collector.metric_names();
        let kind = |name: &str| kinds.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
        assert_eq!(kind("covet_requests_total"), Some(MetricKind::Sum { monotonic: true, cumulative: true }));
        assert_eq!(kind("covet_request_duration_seconds"), Some(MetricKind::Histogram { cumulative: true }));
        assert_same_buckets(&text, &collector, "covet_request_duration_seconds");
    }
}

/// The histogram's bucket bounds and cumulative counts in the scrape equal
/// the collector's (per-bucket counts, summed up).
fn assert_same_buckets(scrape: &str, collector: &Collector, name: &str) {
    let prefix = format!("{name}_bucket{{le=\"");
    let scraped: Vec<(f64, f64)> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, value) = rest.split_once("\"} ")?;
            Some((le.parse().ok()?, value.trim().parse().ok()?))
        })
        .filter(|(le, _): &(f64, f64)| le.is_finite())
        .collect();
    let (bounds, counts) = collector.histogram(name, &[]).unwrap_or_else(|| panic!("{name} at the collector"));
    assert!(!scraped.is_empty(), "no {name} buckets in:\n{scrape}");
    assert_eq!(bounds, scraped.iter().map(|(le, _)| *le).collect::<Vec<_>>(), "{name}: the same bucket bounds");
    let cumulative: Vec<f64> = counts.iter().scan(0u64, |sum, c| { *sum += c; Some(*sum as f64) }).take(bounds.len()).collect();
    assert_eq!(cumulative, scraped.iter().map(|(_, v)| *v).collect::<Vec<_>>(), "{name}: the same counts per bucket");
}
