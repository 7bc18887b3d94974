//! `GET /metrics`: the host's counters in the Prometheus text format.
//!
//! Nothing here is on the request path. The request path only bumps the
//! atomics of [`crate::metrics::RequestMetrics`] and of each plugin's
//! [`PluginStats`]; a collector registered with `prometheus-client` reads
//! them (and the histogram snapshots) when a scrape comes in.
//!
//! | metric | labels |
//! |---|---|
//! | `covet_requests_total` | `class` (`1xx` … `5xx`) |
//! | `covet_request_duration_seconds` (histogram) | |
//! | `covet_plugin_calls_total`, `_errors_total`, `_panics_total` | `plugin` |
//! | `covet_plugin_call_duration_seconds` (histogram) | `plugin` |
//! | `covet_plugin_swaps_total`, `covet_plugin_swap_failures_total` | `plugin` |
//! | `covet_plugin_info` (gauge, 1) | `plugin`, `kind`, `version`, `sha256` of the live instance |
//! | `covet_manifest_reloads_total` | `result` (`ok`, `failed`) |
//! | `covet_cache_requests_total` | `route`, `status` (`hit`, `miss`, `stale`, `revalidated`, `bypass`, `other`): from the metadata `cache.status` ([`crate::metrics::cache`]) |
//! | `covet_background_runs_total` | `result` (`ok`, `fault`, `dropped`): runs of `RespondAndContinue` ([`crate::background`]) |
//! | `covet_plugin_outbound_requests_total`, `_denied_total`, `_errors_total` | `plugin` (host services' outbound HTTP, every kind) |
//! | `covet_upstream_*` | `upstream` (and `endpoint`): see [`super::upstream_metrics`] |
//! | `covet_connections_open`, `covet_connections_parked` (gauges) | TCP connections (HTTP/1.1, HTTP/2) open, and those waiting for bytes without hyper's state ([`crate::server::park`]) |
//! | `covet_trace_spans_exported_total` | |
//! | `covet_trace_spans_dropped_total` | `reason` (`queue_full`, `export_failed`) |
//! | `covet_otlp_export_failures_total` | `signal` (`traces`, `metrics`) |
//!
//! The tracing counters are always written (0 while tracing is off) and
//! count since the host started, across reloads that replace the exporter.
//!
//! The encoder writes counter families the OpenMetrics way (`# TYPE
//! covet_requests counter`, samples `covet_requests_total`); Prometheus'
//! 0.0.4 parser reads that as usual. No `# EOF` and no `info` type are
//! written, so the body is valid 0.0.4 text.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter},
    registry::Registry,
};

use crate::{
    control::ControlPlane,
    metrics::{Histogram, Snapshot},
    registry::{PluginStats, Slot},
};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics registry of one admin server.
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// A registry whose collector reads `control`'s host at scrape time.
    pub fn new(control: Arc<ControlPlane>) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HostCollector { control }));
        Exposition { registry }
    }

    /// The text exposition, read now.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut text, &self.registry) {
            tracing::warn!("cannot encode metrics: {e}");
        }
        text
    }
}

/// What OTLP metrics export reads ([`crate::otel`]): a registry of its own
/// over `control`'s host, the same collector `/metrics` renders.
pub fn otlp_source(control: Arc<ControlPlane>) -> covet_telemetry::metrics::Collect {
    let exposition = Exposition::new(control);
    Arc::new(move || covet_telemetry::metrics::snapshot_from_registry(&exposition.registry))
}

/// Reads the host's atomics on every scrape.
struct HostCollector {
    control: Arc<ControlPlane>,
}

impl fmt::Debug for HostCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostCollector")
    }
}

/// `(help, the counter)` of one per-plugin counter family.
type PluginCounter = (&'static str, &'static str, fn(&PluginStats) -> &AtomicU64);

const PLUGIN_COUNTERS: [PluginCounter; 5] = [
    ("covet_plugin_calls", "Phase calls of the plugin, across its instances.", |s| &s.calls),
    ("covet_plugin_errors", "Phase calls that failed or returned an invalid response.", |s| &s.errors),
    ("covet_plugin_panics", "Phase calls that panicked.", |s| &s.panics),
    ("covet_plugin_swaps", "Instances made live by a swap or reload (not the first).", |s| &s.swaps),
    ("covet_plugin_swap_failures", "Swaps or reloads of the plugin that were refused.", |s| &s.swap_failures),
];

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let shared = self.control.shared();
        let requests = &shared.metrics;
        let help = "Finished requests, by response status class.";
        let mut family = encoder.encode_descriptor("covet_requests", help, None, MetricType::Counter)?;
        for (i, count) in requests.by_class.iter().enumerate() {
            let labels = [("class", format!("{}xx", i + 1))];
            counter(count).encode(family.encode_family(&labels)?)?;
        }
        let help = "Request latency, from the head read to the response handed to hyper.";
        let mut family = encoder.encode_descriptor("covet_request_duration_seconds", help, None, MetricType::Histogram)?;
        observations(&mut family, &requests.latency)?;

        let slots = shared.registry.all();
        for (name, help, field) in PLUGIN_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for slot in &slots {
                counter(field(slot.stats())).encode(family.encode_family(&plugin_label(slot))?)?;
            }
        }
        let help = "Time spent in the plugin per phase call.";
        let mut family = encoder.encode_descriptor("covet_plugin_call_duration_seconds", help, None, MetricType::Histogram)?;
        for slot in &slots {
            observations(&mut family.encode_family(&plugin_label(slot))?, &slot.stats().latency)?;
        }
        plugin_info(&mut encoder, &slots)?;
        outbound(&mut encoder, &slots)?;
        super::upstream_metrics::encode(&mut encoder, &crate::runtime::services::upstreams().status())?;

        telemetry(&mut encoder)?;
        background(&mut encoder)?;
        connections(&mut encoder)?;
        cache(&mut encoder)?;

        let (ok, failed) = self.control.manifest_reloads();
        let help = "Manifest reloads, by result.";
        let mut family = encoder.encode_descriptor("covet_manifest_reloads", help, None, MetricType::Counter)?;
        ConstCounter::new(ok).encode(family.encode_family(&[("result", "ok")])?)?;
        ConstCounter::new(failed).encode(family.encode_family(&[("result", "failed")])?)?;
        Ok(())
    }
}

/// Requests a cache looked up, by route and `cache.status`.
fn cache(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Requests a cache plugin looked up, by route and the cache.status it set.";
    let mut family = encoder.encode_descriptor("covet_cache_requests", help, None, MetricType::Counter)?;
    for (route, status, count) in crate::metrics::cache::snapshot() {
        ConstCounter::new(count).encode(family.encode_family(&[("route", &*route), ("status", status)])?)?;
    }
    Ok(())
}

/// What became of background runs ([`crate::background`]).
fn connections(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let (open, parked) = crate::server::park::connections();
    let gauges = [
        ("covet_connections_open", "TCP connections (HTTP/1.1 and HTTP/2) open.", open),
        ("covet_connections_parked", "Open TCP connections waiting for bytes without hyper's buffers: before their first bytes, or idle HTTP/1 connections parked.", parked),
    ];
    for (name, help, value) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        family.encode_gauge(&i64::try_from(value).unwrap_or(i64::MAX))?;
    }
    Ok(())
}

fn background(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let totals = crate::background::totals();
    let help = "Background runs of the rest of a chain after RespondAndContinue, by result (dropped: limits.background_max in flight).";
    let mut family = encoder.encode_descriptor("covet_background_runs", help, None, MetricType::Counter)?;
    for (result, count) in [("ok", totals.ok), ("fault", totals.fault), ("dropped", totals.dropped)] {
        ConstCounter::new(count).encode(family.encode_family(&[("result", result)])?)?;
    }
    Ok(())
}

/// What became of spans, and failed OTLP exports by signal ([`crate::otel`]).
fn telemetry(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let spans = crate::otel::span_totals();
    let help = "Spans the OTLP collector accepted.";
    let family = encoder.encode_descriptor("covet_trace_spans_exported", help, None, MetricType::Counter)?;
    ConstCounter::new(spans.exported).encode(family)?;
    let help = "Spans dropped: the export queue was full, or their export failed (collector down, refused, timed out).";
    let mut family = encoder.encode_descriptor("covet_trace_spans_dropped", help, None, MetricType::Counter)?;
    ConstCounter::new(spans.dropped_queue_full).encode(family.encode_family(&[("reason", "queue_full")])?)?;
    ConstCounter::new(spans.dropped_export_failed).encode(family.encode_family(&[("reason", "export_failed")])?)?;
    let help = "OTLP export calls that failed, by signal.";
    let mut family = encoder.encode_descriptor("covet_otlp_export_failures", help, None, MetricType::Counter)?;
    ConstCounter::new(spans.failed_exports).encode(family.encode_family(&[("signal", "traces")])?)?;
    ConstCounter::new(crate::otel::metrics_export_failures()).encode(family.encode_family(&[("signal", "metrics")])?)?;
    Ok(())
}

fn counter(value: &AtomicU64) -> ConstCounter<u64> {
    ConstCounter::new(value.load(Relaxed))
}

fn plugin_label(slot: &Slot) -> [(&'static str, String); 1] {
    [("plugin", slot.name().to_string())]
}

/// Writes one histogram's samples (`_sum`, `_count`, `_bucket`).
fn observations(encoder: &mut MetricEncoder, histogram: &Histogram) -> fmt::Result {
    let Snapshot { sum, count, buckets } = histogram.snapshot();
    encoder.encode_histogram::<NoLabelSet>(sum, count, &per_bucket(&buckets), None)
}

/// Cumulative buckets back to per-bucket counts (the encoder sums them again).
pub(super) fn per_bucket(cumulative: &[(f64, u64)]) -> Vec<(f64, u64)> {
    let mut previous = 0;
    cumulative
        .iter()
        .map(|&(bound, total)| {
            let count = total.saturating_sub(previous);
            previous = total;
            (bound, count)
        })
        .collect()
}

/// `(name, help, which of (requests, denied, errors))` of one outbound HTTP family.
type OutboundCounter = (&'static str, &'static str, fn((u64, u64, u64)) -> u64);

const OUTBOUND_COUNTERS: [OutboundCounter; 3] = [
    ("covet_plugin_outbound_requests", "Outbound HTTP requests the plugin sent (allowed by its grants).", |c| c.0),
    ("covet_plugin_outbound_denied", "Outbound HTTP requests refused: the host is not in the plugin's outbound_http grant.", |c| c.1),
    ("covet_plugin_outbound_errors", "Outbound HTTP requests or response bodies that failed (connect, TLS, timeout, protocol).", |c| c.2),
];

/// The host services' outbound HTTP counters of each plugin, across its instances.
fn outbound(encoder: &mut DescriptorEncoder, slots: &[Arc<Slot>]) -> fmt::Result {
    let counts: Vec<_> = slots.iter().map(|slot| crate::runtime::services::outbound_snapshot(slot.name())).collect();
    for (name, help, pick) in OUTBOUND_COUNTERS {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (slot, count) in slots.iter().zip(&counts) {
            ConstCounter::new(pick(*count)).encode(family.encode_family(&plugin_label(slot))?)?;
        }
    }
    Ok(())
}

fn plugin_info(encoder: &mut DescriptorEncoder, slots: &[Arc<Slot>]) -> fmt::Result {
    let help = "The live instance of each plugin (always 1).";
    let mut family = encoder.encode_descriptor("covet_plugin_info", help, None, MetricType::Gauge)?;
    for slot in slots {
        let Some(instance) = slot.load() else { continue };
        let info = instance.executor.info();
        let labels = [
            ("plugin", slot.name().to_string()),
            ("kind", info.kind.to_string()),
            ("version", info.version.clone()),
            ("sha256", instance.provenance.sha256.clone()),
        ];
        family.encode_family(&labels)?.encode_gauge(&1i64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets_become_per_bucket_counts() {
        let buckets = [(0.1, 2), (1.0, 2), (f64::INFINITY, 5)];
        assert_eq!(per_bucket(&buckets), vec![(0.1, 2), (1.0, 0), (f64::INFINITY, 3)]);
    }

    #[test]
    fn a_histogram_renders_cumulative_prometheus_buckets() {
        let latency = Histogram::default();
        latency.observe(std::time::Duration::from_micros(5));
        latency.observe(std::time::Duration::from_millis(3));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(OneHistogram(latency)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE covet_test_seconds histogram\n"), "{text}");
        assert!(text.contains("covet_test_seconds_count{plugin=\"p\"} 2\n"), "{text}");
        assert!(text.contains("covet_test_seconds_bucket{le=\"0.00001\",plugin=\"p\"} 1\n"), "{text}");
        assert!(text.contains("covet_test_seconds_bucket{le=\"0.005\",plugin=\"p\"} 2\n"), "{text}");
        assert!(text.contains("covet_test_seconds_bucket{le=\"+Inf\",plugin=\"p\"} 2\n"), "{text}");
        assert!(!text.contains("# EOF"), "0.0.4 text has no EOF marker");
    }

    #[derive(Debug)]
    struct OneHistogram(Histogram);

    impl Collector for OneHistogram {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            let mut family = encoder.encode_descriptor("covet_test_seconds", "test", None, MetricType::Histogram)?;
            observations(&mut family.encode_family(&[("plugin", "p")])?, &self.0)
        }
    }
}
