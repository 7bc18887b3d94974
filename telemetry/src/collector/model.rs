//! What the test collector keeps: spans and metrics flattened out of the
//! OTLP protobuf messages (ids as lowercase hex, attributes as a map), so a
//! test can find a span by name and compare ids with `traceparent` values
//! and access-log fields directly.

use std::collections::BTreeMap;

use opentelemetry::trace::SpanKind;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality, HistogramDataPoint, NumberDataPoint};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, Span};

/// An attribute value as received.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Arrays, maps and bytes, in their debug form.
    Other(String),
}

impl AttrValue {
    /// The string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The float, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The boolean, when it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AttrValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Attributes by key.
pub type Attributes = BTreeMap<String, AttrValue>;

/// Which of the collector's servers received something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf.
    Http,
}

/// A span's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCode {
    /// Not set.
    Unset,
    /// Explicitly succeeded.
    Ok,
    /// Failed.
    Error,
}

/// A span event.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedEvent {
    /// Its name.
    pub name: String,
    /// Its attributes.
    pub attributes: Attributes,
    /// When it happened (ns since the Unix epoch).
    pub time_unix_nano: u64,
}

/// A received span.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Whether the parent is in another process (the OTLP span flags'
    /// is-remote bits); `None` when the exporter did not say.
    pub parent_is_remote: Option<bool>,
    /// The W3C `tracestate` the span was reported with (empty: none).
    pub trace_state: String,
    /// The span name.
    pub name: String,
    /// Its kind (`Internal` when unspecified).
    pub kind: SpanKind,
    /// Its attributes.
    pub attributes: Attributes,
    /// Its events.
    pub events: Vec<ReceivedEvent>,
    /// Its status code.
    pub status_code: StatusCode,
    /// Its status message (the error description).
    pub status_message: String,
    /// Start time (ns since the Unix epoch).
    pub start_time_unix_nano: u64,
    /// End time (ns since the Unix epoch).
    pub end_time_unix_nano: u64,
    /// The resource it was reported under (`service.name`, ...).
    pub resource: Attributes,
    /// The instrumentation scope's name.
    pub scope: String,
    /// How it arrived.
    pub transport: Transport,
}

impl ReceivedSpan {
    /// An attribute.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// A string attribute.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// An integer attribute.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }
}

/// The shape of a received metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge.
    Gauge,
    /// A sum (a counter when monotonic).
    Sum {
        /// Only ever grows.
        monotonic: bool,
        /// Cumulative (else delta).
        cumulative: bool,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// Cumulative (else delta).
        cumulative: bool,
    },
    /// An exponential histogram (points are `Other`).
    ExponentialHistogram,
    /// A summary (points are `Other`).
    Summary,
    /// No data.
    Empty,
}

/// A data point's value.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// An explicit-bucket histogram point.
    Histogram {
        /// Observations.
        count: u64,
        /// Their sum.
        sum: Option<f64>,
        /// Bucket upper bounds (the last bucket, to +Inf, has none).
        bounds: Vec<f64>,
        /// Per-bucket (not cumulative) counts, one more than `bounds`.
        bucket_counts: Vec<u64>,
    },
    /// Kinds the collector does not flatten.
    Other,
}

/// A data point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Its attributes (the Prometheus labels).
    pub attributes: Attributes,
    /// Its value.
    pub value: PointValue,
    /// Start of the cumulative window (ns since the Unix epoch).
    pub start_time_unix_nano: u64,
    /// When it was read (ns since the Unix epoch).
    pub time_unix_nano: u64,
}

/// A received metric (one per metric per export request).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMetric {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its unit.
    pub unit: String,
    /// Its shape.
    pub kind: MetricKind,
    /// Its data points.
    pub points: Vec<Point>,
    /// The resource it was reported under.
    pub resource: Attributes,
    /// How it arrived.
    pub transport: Transport,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn spans_of(request: &ExportTraceServiceRequest, transport: Transport) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in &request.resource_spans {
        let resource = resource_attributes(rs.resource.as_ref());
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            out.extend(ss.spans.iter().map(|s| flatten_span(s, &resource, &scope, transport)));
        }
    }
    out
}

fn flatten_span(s: &Span, resource: &Attributes, scope: &str, transport: Transport) -> ReceivedSpan {
    let status = s.status.clone().unwrap_or_default();
    ReceivedSpan {
        trace_id: hex(&s.trace_id),
        span_id: hex(&s.span_id),
        parent_span_id: (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
        parent_is_remote: parent_is_remote(s.flags),
        trace_state: s.trace_state.clone(),
        name: s.name.clone(),
        kind: kind(s.kind),
        attributes: attributes(&s.attributes),
        events: s.events.iter().map(event).collect(),
        status_code: match status.code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        },
        status_message: status.message,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        resource: resource.clone(),
        scope: scope.to_owned(),
        transport,
    }
}

/// The is-remote bits of OTLP span flags (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`
/// 0x100, `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK` 0x200).
fn parent_is_remote(flags: u32) -> Option<bool> {
    (flags & 0x100 != 0).then_some(flags & 0x200 != 0)
}

fn kind(k: i32) -> SpanKind {
    match span::SpanKind::try_from(k) {
        Ok(span::SpanKind::Server) => SpanKind::Server,
        Ok(span::SpanKind::Client) => SpanKind::Client,
        Ok(span::SpanKind::Producer) => SpanKind::Producer,
        Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

fn event(e: &span::Event) -> ReceivedEvent {
    ReceivedEvent { name: e.name.clone(), attributes: attributes(&e.attributes), time_unix_nano: e.time_unix_nano }
}

pub(crate) fn metrics_of(request: &ExportMetricsServiceRequest, transport: Transport) -> Vec<ReceivedMetric> {
    let mut out = Vec::new();
    for rm in &request.resource_metrics {
        let resource = resource_attributes(rm.resource.as_ref());
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let (kind, points) = data(m.data.as_ref());
                out.push(ReceivedMetric {
                    name: m.name.clone(),
                    description: m.description.clone(),
                    unit: m.unit.clone(),
                    kind,
                    points,
                    resource: resource.clone(),
                    transport,
                });
            }
        }
    }
    out
}

fn data(data: Option<&metric::Data>) -> (MetricKind, Vec<Point>) {
    let cumulative = |t: i32| t == AggregationTemporality::Cumulative as i32;
    match data {
        Some(metric::Data::Gauge(g)) => (MetricKind::Gauge, g.data_points.iter().map(number_point).collect()),
        Some(metric::Data::Sum(s)) => (
            MetricKind::Sum { monotonic: s.is_monotonic, cumulative: cumulative(s.aggregation_temporality) },
            s.data_points.iter().map(number_point).collect(),
        ),
        Some(metric::Data::Histogram(h)) => (
            MetricKind::Histogram { cumulative: cumulative(h.aggregation_temporality) },
            h.data_points.iter().map(histogram_point).collect(),
        ),
        Some(metric::Data::ExponentialHistogram(h)) => (
            MetricKind::ExponentialHistogram,
            h.data_points.iter().map(|p| other_point(&p.attributes, p.start_time_unix_nano, p.time_unix_nano)).collect(),
        ),
        Some(metric::Data::Summary(s)) => (
            MetricKind::Summary,
            s.data_points.iter().map(|p| other_point(&p.attributes, p.start_time_unix_nano, p.time_unix_nano)).collect(),
        ),
        None => (MetricKind::Empty, Vec::new()),
    }
}

fn number_point(p: &NumberDataPoint) -> Point {
    let value = match p.value {
        Some(number_data_point::Value::AsInt(i)) => PointValue::Int(i),
        Some(number_data_point::Value::AsDouble(d)) => PointValue::Double(d),
        None => PointValue::Other,
    };
    Point { attributes: attributes(&p.attributes), value, start_time_unix_nano: p.start_time_unix_nano, time_unix_nano: p.time_unix_nano }
}

fn histogram_point(p: &HistogramDataPoint) -> Point {
    Point {
        attributes: attributes(&p.attributes),
        value: PointValue::Histogram {
            count: p.count,
            sum: p.sum,
            bounds: p.explicit_bounds.clone(),
            bucket_counts: p.bucket_counts.clone(),
        },
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
    }
}

fn other_point(attrs: &[KeyValue], start: u64, time: u64) -> Point {
    Point { attributes: attributes(attrs), value: PointValue::Other, start_time_unix_nano: start, time_unix_nano: time }
}

fn resource_attributes(resource: Option<&Resource>) -> Attributes {
    resource.map(|r| attributes(&r.attributes)).unwrap_or_default()
}

/// OTLP key-values as a map.
pub fn attributes(list: &[KeyValue]) -> Attributes {
    list.iter().map(|kv| (kv.key.clone(), value(kv.value.as_ref()))).collect()
}

fn value(v: Option<&AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::Float(*d),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
        other => AttrValue::Other(format!("{other:?}")),
    }
}
