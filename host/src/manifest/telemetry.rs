//! The `telemetry:` block: OpenTelemetry tracing (sampling, batching) and
//! the OTLP collector spans and metrics go to. See docs/telemetry.md.
//!
//! ```yaml
//! telemetry:
//!   service_name: covet                  # default "covet"
//!   otlp:                                # absent: ids, propagation and log fields only
//!     endpoint: http://127.0.0.1:4317    # http:// or https://
//!     protocol: grpc                     # grpc (default) | http
//!     headers: { authorization: "Bearer x" }
//!     timeout: 5s
//!   tracing:                             # absent: tracing off
//!     sample_ratio: 0.01                 # share of new traces recorded
//!     parent_based: true                 # follow the caller's sampled flag
//!     max_queue: 2048
//!     max_batch: 512
//!     batch_delay: 1s
//!   metrics:                             # absent: no OTLP metrics (needs `otlp`)
//!     interval: 10s
//! routes:
//!   - { path: /checkout, handler: shop, trace_sample_ratio: 1.0 }
//! ```
//!
//! `tracing:` or `metrics:` written with no value (or `{}`) turns it on with
//! the defaults.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use covet_telemetry::export::{BatchSettings, OtlpSettings, Protocol};
use covet_telemetry::sampler::Sampler;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Loc;
use super::units::HumanDuration;
use super::validate::Problems;

/// The telemetry settings, checked. The default: tracing and export off.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetrySettings {
    /// `service.name` of the exported resource (default `covet`).
    pub service_name: String,
    /// The collector; `None`: nothing is exported.
    pub otlp: Option<OtlpSettings>,
    /// Tracing; `None`: off (no ids, no propagation, no cost).
    pub tracing: Option<TracingSettings>,
    /// How often the host's metrics are exported over OTLP; `None`: never.
    pub metrics_interval: Option<Duration>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings { service_name: DEFAULT_SERVICE_NAME.to_owned(), otlp: None, tracing: None, metrics_interval: None }
    }
}

/// `telemetry.tracing`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingSettings {
    /// The default ratio and whether a caller's sampled flag is followed.
    pub sampler: Sampler,
    /// The exporter's queue and batches.
    pub batch: BatchSettings,
}

/// `service.name` when the manifest does not set one.
pub const DEFAULT_SERVICE_NAME: &str = "covet";
/// Time allowed for one export call when `otlp.timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time between two metric exports when `metrics.interval` is not set.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(10);

/// OpenTelemetry: traces and metrics over OTLP.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Telemetry")]
pub struct RawTelemetry {
    /// `service.name` of the exported spans and metrics (default `covet`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub service_name: Option<Spanned<String>>,
    /// The OTLP collector spans and metrics are sent to; absent: trace ids, propagation and access-log fields only, nothing exported.
    #[serde(default)]
    pub otlp: Option<RawOtlp>,
    /// Tracing: a server span per request, a span per plugin call, client spans per outbound call and upstream attempt; absent: tracing off. Written with no value, on with the defaults.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<RawTracing>")]
    pub tracing: Option<Spanned<RawTracing>>,
    /// Export the host's `/metrics` over OTLP every `interval` (needs `otlp`); absent: not exported. Written with no value, on with the defaults.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<RawMetrics>")]
    pub metrics: Option<Spanned<RawMetrics>>,
}

/// The OTLP collector.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TelemetryOtlp")]
pub struct RawOtlp {
    /// The collector's `http://` or `https://` URL, e.g. `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318` (HTTP; `/v1/traces` and `/v1/metrics` are appended).
    #[schemars(with = "String")]
    pub endpoint: Spanned<String>,
    /// `grpc` (default) or `http` (protobuf over HTTP).
    #[serde(default)]
    pub protocol: RawOtlpProtocol,
    /// Headers sent with every export (e.g. `authorization`).
    #[serde(default)]
    pub headers: HeaderEntries,
    /// Time allowed for one export call (default 5s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
}

/// How the collector is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "TelemetryProtocol")]
pub enum RawOtlpProtocol {
    /// OTLP/gRPC (the default).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// Sampling and the span exporter's batching.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "TelemetryTracing")]
pub struct RawTracing {
    /// Share of new traces recorded, 0.0 to 1.0 (default 0.01); a route's `trace_sample_ratio` replaces it on that route.
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 1.0))]
    pub sample_ratio: Option<Spanned<f64>>,
    /// Follow the sampled flag of an incoming `traceparent` (default true).
    pub parent_based: Option<bool>,
    /// Most finished spans waiting for export; more are dropped and counted (default 2048).
    #[schemars(with = "Option<usize>", range(min = 1))]
    pub max_queue: Option<Spanned<usize>>,
    /// Most spans per export call (default 512).
    #[schemars(with = "Option<usize>", range(min = 1))]
    pub max_batch: Option<Spanned<usize>>,
    /// Longest a finished span waits before its batch is sent (default 1s).
    #[schemars(with = "Option<HumanDuration>")]
    pub batch_delay: Option<Spanned<HumanDuration>>,
}

/// Metrics over OTLP.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "TelemetryMetrics")]
pub struct RawMetrics {
    /// Time between two exports of the host's metrics (default 10s).
    #[schemars(with = "Option<HumanDuration>")]
    pub interval: Option<Spanned<HumanDuration>>,
}

/// A block that may be written with no value: null is the block with its defaults.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Spanned<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let spanned = Spanned::<Option<T>>::deserialize(deserializer)?;
    let value = spanned.value.unwrap_or_default();
    Ok(Some(Spanned::new(value, spanned.referenced, spanned.defined)))
}

/// `otlp.headers` in manifest order, each name and value with its location.
#[derive(Debug, Default)]
pub struct HeaderEntries(pub Vec<(Spanned<String>, Spanned<String>)>);

impl<'de> Deserialize<'de> for HeaderEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeadersVisitor)
    }
}

struct HeadersVisitor;

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = HeaderEntries;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping from header names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(HeaderEntries(entries))
    }
}

impl JsonSchema for HeaderEntries {
    fn schema_name() -> Cow<'static, str> {
        "TelemetryHeaders".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Header names and their values.",
            "type": "object",
            "additionalProperties": { "type": "string" }
        })
    }
}

/// Checks `telemetry:`; the default settings when it is absent.
pub fn settings(raw: Option<RawTelemetry>, problems: &mut Problems) -> TelemetrySettings {
    let Some(raw) = raw else { return TelemetrySettings::default() };
    let service_name = match raw.service_name {
        Some(name) if name.value.trim().is_empty() => {
            let help = "name the service as traces should show it, e.g. `service_name: gateway`, or remove the key (default \"covet\")";
            problems.report(Loc::of(&name), "telemetry.service_name", "empty service name".to_owned(), Some(help.to_owned()));
            DEFAULT_SERVICE_NAME.to_owned()
        }
        Some(name) => name.value,
        None => DEFAULT_SERVICE_NAME.to_owned(),
    };
    let otlp = raw.otlp.map(|otlp| otlp_settings(otlp, problems));
    let tracing = raw.tracing.map(|tracing| tracing_settings(tracing.value, problems));
    let metrics_interval = raw.metrics.map(|metrics| {
        if otlp.is_none() {
            let help = "metrics are sent to the OTLP collector: add `otlp: { endpoint: http://127.0.0.1:4317 }` under `telemetry:`, or remove `metrics`";
            problems.report(Loc::of(&metrics), "telemetry.metrics", "`metrics` needs `otlp`".to_owned(), Some(help.to_owned()));
        }
        positive(metrics.value.interval.as_ref(), "telemetry.metrics.interval", problems).unwrap_or(DEFAULT_METRICS_INTERVAL)
    });
    TelemetrySettings { service_name, otlp, tracing, metrics_interval }
}

fn otlp_settings(raw: RawOtlp, problems: &mut Problems) -> OtlpSettings {
    check_endpoint(&raw.endpoint, problems);
    let mut headers = Vec::with_capacity(raw.headers.0.len());
    for (name, value) in raw.headers.0 {
        let key = super::source_index::join("telemetry.otlp.headers", &name.value);
        if http::HeaderName::from_bytes(name.value.as_bytes()).is_err() {
            let help = "a header name is letters, digits and `-` (e.g. authorization, x-api-key)";
            problems.report(Loc::of(&name), key, format!("invalid header name \"{}\"", name.value), Some(help.to_owned()));
        } else if http::HeaderValue::from_str(&value.value).is_err() {
            let help = "a header value is visible ASCII text and spaces, on one line";
            problems.report(Loc::of(&value), key, format!("invalid value of header \"{}\"", name.value), Some(help.to_owned()));
        }
        headers.push((name.value.to_ascii_lowercase(), value.value));
    }
    let protocol = match raw.protocol {
        RawOtlpProtocol::Grpc => Protocol::Grpc,
        RawOtlpProtocol::Http => Protocol::Http,
    };
    let timeout = positive(raw.timeout.as_ref(), "telemetry.otlp.timeout", problems).unwrap_or(DEFAULT_TIMEOUT);
    OtlpSettings { endpoint: raw.endpoint.value.trim().to_owned(), protocol, headers, timeout }
}

/// An absolute `http://` or `https://` URL with a host.
fn check_endpoint(endpoint: &Spanned<String>, problems: &mut Problems) {
    let uri = endpoint.value.trim().parse::<http::Uri>().ok();
    let scheme_ok = uri.as_ref().and_then(|u| u.scheme_str()).is_some_and(|s| s == "http" || s == "https");
    let host_ok = uri.as_ref().and_then(|u| u.host()).is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        return;
    }
    let help = "write an http:// or https:// URL, e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318 (http)";
    let message = format!("invalid OTLP endpoint \"{}\"", endpoint.value);
    problems.report(Loc::of(endpoint), "telemetry.otlp.endpoint", message, Some(help.to_owned()));
}

fn tracing_settings(raw: RawTracing, problems: &mut Problems) -> TracingSettings {
    let mut sampler = Sampler::default();
    if let Some(ratio) = &raw.sample_ratio {
        sampler.ratio = ratio_value(ratio, "telemetry.tracing.sample_ratio", problems).unwrap_or(sampler.ratio);
    }
    sampler.parent_based = raw.parent_based.unwrap_or(sampler.parent_based);
    let mut batch = BatchSettings::default();
    batch.max_queue = count(raw.max_queue.as_ref(), "telemetry.tracing.max_queue", problems).unwrap_or(batch.max_queue);
    batch.max_batch = count(raw.max_batch.as_ref(), "telemetry.tracing.max_batch", problems).unwrap_or(batch.max_batch);
    if let Some(max_batch) = raw.max_batch.as_ref().filter(|_| batch.max_batch > batch.max_queue) {
        let message = format!("`max_batch` {} is larger than `max_queue` {}", batch.max_batch, batch.max_queue);
        let help = "a batch is taken from the queue: lower `max_batch` or raise `max_queue`";
        problems.report(Loc::of(max_batch), "telemetry.tracing.max_batch", message, Some(help.to_owned()));
    }
    batch.delay = positive(raw.batch_delay.as_ref(), "telemetry.tracing.batch_delay", problems).unwrap_or(batch.delay);
    TracingSettings { sampler, batch }
}

/// A sampling ratio from 0.0 to 1.0; `None` (reported) when out of range.
pub fn ratio_value(ratio: &Spanned<f64>, key: &str, problems: &mut Problems) -> Option<f64> {
    if (0.0..=1.0).contains(&ratio.value) {
        return Some(ratio.value);
    }
    let help = "write a share of traces from 0.0 to 1.0, e.g. 0.01 (1%) or 1.0 (every trace)";
    problems.report(Loc::of(ratio), key, format!("sample ratio {} is out of range", ratio.value), Some(help.to_owned()));
    None
}

/// A count of 1 or more; `None` when absent or 0 (reported).
fn count(value: Option<&Spanned<usize>>, key: &str, problems: &mut Problems) -> Option<usize> {
    let value = value?;
    if value.value == 0 {
        let help = "write a count of 1 or more, or remove the key for the default";
        problems.report(Loc::of(value), key, format!("`{}` is 0", key.rsplit('.').next().unwrap_or(key)), Some(help.to_owned()));
        return None;
    }
    Some(value.value)
}

/// A duration above zero; `None` when absent or zero (reported).
fn positive(value: Option<&Spanned<HumanDuration>>, key: &str, problems: &mut Problems) -> Option<Duration> {
    let value = value?;
    if value.value.0.is_zero() {
        let help = "write a duration above zero, e.g. 1s or 500ms, or remove the key for the default";
        problems.report(Loc::of(value), key, "a zero duration".to_owned(), Some(help.to_owned()));
        return None;
    }
    Some(value.value.0)
}

#[cfg(test)]
mod tests;
