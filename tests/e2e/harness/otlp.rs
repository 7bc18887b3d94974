//! A real OTLP collector for the telemetry tests: thin glue over
//! `covet_telemetry::collector` (a tonic gRPC server and a hyper HTTP
//! server, both on port 0) that fixes which of the two the host is pointed
//! at, and hands spans over as [`ExportedSpan`]s whose attributes compare
//! with `serde_json::json!` values.
//!
//! ```ignore
//! let collector = Collector::grpc().await;
//! // manifest: telemetry.otlp.endpoint = collector.endpoint(), protocol = collector.protocol()
//! let spans = collector.trace(&trace_id).await; // waits for the trace's server span
//! ```

use std::time::Duration;

use covet_telemetry::collector::{self, AttrValue, Attributes, MetricKind, PointValue, ReceivedSpan, StatusCode, Transport};
use covet_telemetry::SpanKind;
use serde_json::Value;

/// How long [`Collector::trace`] waits for a trace.
const PATIENCE: Duration = Duration::from_secs(15);

/// A collector the host exports to over one protocol. Stops when dropped.
pub struct Collector {
    inner: collector::Collector,
    transport: Transport,
}

/// A span as the collector received it.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// The span name.
    pub name: String,
    /// `server`, `client`, `internal` (or `producer`, `consumer`).
    pub kind: &'static str,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// 16 lowercase hex digits; empty for a root span.
    pub parent_span_id: String,
    /// Whether the parent is in another process (`None`: not said).
    pub parent_remote: Option<bool>,
    /// The W3C `tracestate` it was reported with.
    pub trace_state: String,
    /// `unset`, `ok` or `error`.
    pub status: &'static str,
    /// The error description.
    pub status_message: String,
    /// Events: name and attributes.
    pub events: Vec<(String, Attributes)>,
    attributes: Attributes,
    resource: Attributes,
}

impl ExportedSpan {
    /// An attribute as JSON (`Null` when absent).
    pub fn attr(&self, key: &str) -> Value {
        self.attributes.get(key).map(json).unwrap_or(Value::Null)
    }

    /// A resource attribute as JSON (`Null` when absent).
    pub fn resource(&self, key: &str) -> Value {
        self.resource.get(key).map(json).unwrap_or(Value::Null)
    }

    /// The attributes of the event named `name` (panics when there is none).
    pub fn event(&self, name: &str) -> Value {
        let (_, attrs) = self.events.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("event {name:?} on {self:?}"));
        attrs.iter().map(|(k, v)| (k.clone(), json(v))).collect::<serde_json::Map<_, _>>().into()
    }
}

fn json(value: &AttrValue) -> Value {
    match value {
        AttrValue::Str(s) => Value::String(s.clone()),
        AttrValue::Int(i) => Value::from(*i),
        AttrValue::Float(f) => Value::from(*f),
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Other(debug) => Value::String(debug.clone()),
    }
}

impl From<&ReceivedSpan> for ExportedSpan {
    fn from(s: &ReceivedSpan) -> ExportedSpan {
        ExportedSpan {
            service: s.resource.get("service.name").and_then(AttrValue::as_str).unwrap_or_default().to_owned(),
            name: s.name.clone(),
            kind: match s.kind {
                SpanKind::Server => "server",
                SpanKind::Client => "client",
                SpanKind::Producer => "producer",
                SpanKind::Consumer => "consumer",
                SpanKind::Internal => "internal",
            },
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone().unwrap_or_default(),
            parent_remote: s.parent_is_remote,
            trace_state: s.trace_state.clone(),
            status: match s.status_code {
                StatusCode::Unset => "unset",
                StatusCode::Ok => "ok",
                StatusCode::Error => "error",
            },
            status_message: s.status_message.clone(),
            events: s.events.iter().map(|e| (e.name.clone(), e.attributes.clone())).collect(),
            attributes: s.attributes.clone(),
            resource: s.resource.clone(),
        }
    }
}

impl Collector {
    /// A collector the host reaches over OTLP/gRPC.
    pub async fn grpc() -> Collector {
        Collector::start(Transport::Grpc).await
    }

    /// A collector the host reaches over OTLP/HTTP (protobuf).
    pub async fn http() -> Collector {
        Collector::start(Transport::Http).await
    }

    async fn start(transport: Transport) -> Collector {
        let inner = collector::Collector::start().await.expect("start the OTLP test collector");
        Collector { inner, transport }
    }

    /// The endpoint for `telemetry.otlp.endpoint`.
    pub fn endpoint(&self) -> String {
        match self.transport {
            Transport::Grpc => self.inner.grpc_endpoint(),
            Transport::Http => self.inner.http_endpoint(),
        }
    }

    /// `grpc` or `http`, for `telemetry.otlp.protocol`.
    pub fn protocol(&self) -> &'static str {
        match self.transport {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }

    /// Every span received so far (panics if one came over the other protocol).
    pub fn spans(&self) -> Vec<ExportedSpan> {
        let spans = self.inner.spans();
        let wrong = spans.iter().find(|s| s.transport != self.transport);
        assert!(wrong.is_none(), "a span came over the wrong protocol (not {}): {wrong:?}", self.protocol());
        spans.iter().map(ExportedSpan::from).collect()
    }

    /// The spans of `trace_id`, once its server span arrived (covet ends the
    /// server span last, and the exporter's queue is FIFO, so the whole
    /// trace is in by then). Panics after 15 s, listing what arrived.
    pub async fn trace(&self, trace_id: &str) -> Vec<ExportedSpan> {
        let done = |spans: &[ReceivedSpan]| spans.iter().any(|s| s.trace_id == trace_id && s.kind == SpanKind::Server);
        let spans = self.inner.wait_for_spans_where(done, PATIENCE).await;
        assert!(
            done(&spans),
            "trace {trace_id} never reached the collector over {}; it got: {:?}",
            self.protocol(),
            spans.iter().map(|s| format!("{} {} ({:?})", s.trace_id, s.name, s.kind)).collect::<Vec<_>>()
        );
        self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }

    /// Stops it: exports fail (connection refused) from now on.
    pub async fn stop(&self) {
        self.inner.stop().await;
    }

    /// The latest value of the counter or gauge `name` at the point with
    /// exactly `attrs` (`None` when none arrived).
    pub fn sum(&self, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
        self.latest(name, attrs).and_then(|v| match v {
            PointValue::Int(i) => Some(i as f64),
            PointValue::Double(d) => Some(d),
            _ => None,
        })
    }

    /// The latest observation count of the histogram `name` at `attrs`.
    pub fn histogram_count(&self, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
        self.latest(name, attrs).and_then(|v| match v {
            PointValue::Histogram { count, .. } => Some(count as f64),
            _ => None,
        })
    }

    /// The latest point of the histogram `name` at `attrs`: bucket upper
    /// bounds and per-bucket (not cumulative) counts.
    pub fn histogram(&self, name: &str, attrs: &[(&str, &str)]) -> Option<(Vec<f64>, Vec<u64>)> {
        self.latest(name, attrs).and_then(|v| match v {
            PointValue::Histogram { bounds, bucket_counts, .. } => Some((bounds, bucket_counts)),
            _ => None,
        })
    }

    /// The names and shapes of the metrics received so far.
    pub fn metric_names(&self) -> Vec<(String, MetricKind)> {
        let mut names: Vec<_> = self.inner.metrics().into_iter().map(|m| (m.name, m.kind)).collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        names
    }

    fn latest(&self, name: &str, attrs: &[(&str, &str)]) -> Option<PointValue> {
        let wanted: Attributes = attrs.iter().map(|(k, v)| (k.to_string(), AttrValue::Str(v.to_string()))).collect();
        let metrics = self.inner.metrics();
        let metric = metrics.iter().rev().find(|m| m.name == name)?;
        assert_eq!(metric.transport, self.transport, "{name} came over the wrong protocol");
        metric.points.iter().find(|p| p.attributes == wanted).map(|p| p.value.clone())
    }
}
