//! Prometheus metric families (prometheus-client's protobuf encoding of the
//! registry that renders `/metrics`) to an OTLP metrics export request:
//!
//! | Prometheus | OTLP |
//! |---|---|
//! | counter | monotonic cumulative Sum (double points) |
//! | gauge, untyped, info (`_info` gauge of 1) | Gauge (double points) |
//! | histogram | cumulative Histogram, the same bounds (the `+Inf` one implied), per-bucket counts |
//! | summary | Summary |
//! | labels | attributes (strings) |
//!
//! Names are kept as `/metrics` shows them (counters end in `_total`), help
//! becomes the description. Cumulative points start at the counter's own
//! start time when it has one, else at `start` (the process start).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, summary_data_point::ValueAtQuantile, AggregationTemporality, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as prom;

use crate::resource::ServiceInfo;

/// Times of one conversion, in ns since the Unix epoch.
#[derive(Clone, Copy)]
struct Times {
    start: u64,
    now: u64,
}

/// The OTLP request carrying `families` (see the module docs), read at `now`.
pub fn to_request(families: &[prom::MetricFamily], service: &ServiceInfo, start: SystemTime, now: SystemTime) -> ExportMetricsServiceRequest {
    let times = Times { start: unix_nanos(start), now: unix_nanos(now) };
    let scope = InstrumentationScope { name: "covet".to_owned(), version: service.service_version.clone(), ..Default::default() };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(service.proto()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope),
                metrics: families.iter().filter_map(|f| metric(f, times)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(family: &prom::MetricFamily, t: Times) -> Option<Metric> {
    let points = &family.metric;
    let data = match prom::MetricType::try_from(family.r#type).ok()? {
        prom::MetricType::Counter => Data::Sum(Sum {
            data_points: points.iter().map(|m| counter_point(m, t)).collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        prom::MetricType::Gauge | prom::MetricType::Untyped => {
            Data::Gauge(Gauge { data_points: points.iter().map(|m| gauge_point(m, t)).collect() })
        }
        prom::MetricType::Histogram | prom::MetricType::GaugeHistogram => Data::Histogram(Histogram {
            data_points: points.iter().filter_map(|m| histogram_point(m, t)).collect(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        }),
        prom::MetricType::Summary => {
            Data::Summary(Summary { data_points: points.iter().filter_map(|m| summary_point(m, t)).collect() })
        }
    };
    Some(Metric { name: family.name.clone(), description: family.help.clone(), unit: family.unit.clone(), data: Some(data), ..Default::default() })
}

fn counter_point(m: &prom::Metric, t: Times) -> NumberDataPoint {
    let counter = m.counter.clone().unwrap_or_default();
    let start = counter.start_timestamp.as_ref().map_or(t.start, timestamp_nanos);
    number_point(m, counter.value, start, t.now)
}

fn gauge_point(m: &prom::Metric, t: Times) -> NumberDataPoint {
    let value = match (&m.gauge, &m.untyped) {
        (Some(g), _) => g.value,
        (None, Some(u)) => u.value,
        (None, None) => 0.0,
    };
    number_point(m, value, 0, t.now)
}

fn number_point(m: &prom::Metric, value: f64, start: u64, now: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(&m.label),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn histogram_point(m: &prom::Metric, t: Times) -> Option<HistogramDataPoint> {
    let h = m.histogram.as_ref()?;
    let count = if h.sample_count_float > 0.0 { h.sample_count_float as u64 } else { h.sample_count };
    let (explicit_bounds, bucket_counts) = buckets(&h.bucket, count);
    Some(HistogramDataPoint {
        attributes: attributes(&m.label),
        start_time_unix_nano: h.start_timestamp.as_ref().map_or(t.start, timestamp_nanos),
        time_unix_nano: t.now,
        count,
        sum: Some(h.sample_sum),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    })
}

/// Cumulative Prometheus buckets to OTLP's bounds and per-bucket counts.
/// The last bucket (`+Inf`, or `f64::MAX` as prometheus-client writes it)
/// is implied in OTLP; when the family has none, it gets what is left of
/// `count`.
fn buckets(list: &[prom::Bucket], count: u64) -> (Vec<f64>, Vec<u64>) {
    let mut bounds = Vec::with_capacity(list.len());
    let mut counts = Vec::with_capacity(list.len() + 1);
    let mut previous = 0;
    for bucket in list {
        let cumulative = if bucket.cumulative_count_float > 0.0 { bucket.cumulative_count_float as u64 } else { bucket.cumulative_count };
        counts.push(cumulative.saturating_sub(previous));
        previous = cumulative;
        if bucket.upper_bound.is_finite() && bucket.upper_bound < f64::MAX {
            bounds.push(bucket.upper_bound);
        }
    }
    if counts.len() == bounds.len() {
        counts.push(count.saturating_sub(previous));
    }
    (bounds, counts)
}

fn summary_point(m: &prom::Metric, t: Times) -> Option<SummaryDataPoint> {
    let s = m.summary.as_ref()?;
    Some(SummaryDataPoint {
        attributes: attributes(&m.label),
        start_time_unix_nano: s.start_timestamp.as_ref().map_or(t.start, timestamp_nanos),
        time_unix_nano: t.now,
        count: s.sample_count,
        sum: s.sample_sum,
        quantile_values: s.quantile.iter().map(|q| ValueAtQuantile { quantile: q.quantile, value: q.value }).collect(),
        ..Default::default()
    })
}

fn attributes(labels: &[prom::LabelPair]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|l| KeyValue {
            key: l.name.clone(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(l.value.clone())) }),
            ..Default::default()
        })
        .collect()
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn timestamp_nanos(t: &prost_types::Timestamp) -> u64 {
    u64::try_from(t.seconds).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(u64::try_from(t.nanos).unwrap_or(0))
}
