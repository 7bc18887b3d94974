//! The host's metrics over OTLP: every interval, the registry that renders
//! `/metrics` is read (through prometheus-client's protobuf encoding, so the
//! host's custom collectors are included), converted to OTLP metrics (see
//! [`to_request`]) and sent to the collector: the OTLP `MetricsService` over
//! gRPC, or `POST {endpoint}/v1/metrics` with a protobuf body over HTTP.
//! A failed export is counted and warned about at most every 30 s; nothing
//! is retried (the next interval sends fresh cumulative values).
//!
//! ```ignore
//! let registry = Arc::new(registry);
//! let collect: Collect = Arc::new(move || snapshot_from_registry(&registry));
//! let metrics = MetricsExporter::start(&otlp, Duration::from_secs(10), &service, collect)?;
//! ...
//! metrics.shutdown().await; // one last export
//! ```

mod convert;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::oneshot;

pub use convert::to_request;
pub use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily;

use crate::background::Background;
use crate::error::TelemetryError;
use crate::export::{warn_limited, OtlpSettings, Protocol};
use crate::http_client::HyperClient;
use crate::resource::ServiceInfo;
use crate::span_sender::{base_endpoint, header_map};

/// The registry's content at one moment.
pub type Snapshot = Vec<MetricFamily>;

/// Reads the host's registry (called on the exporter's task every interval).
pub type Collect = Arc<dyn Fn() -> Result<Snapshot, TelemetryError> + Send + Sync>;

/// Reads `registry` (its metrics and custom collectors) as Prometheus protobuf families.
pub fn snapshot_from_registry(registry: &Registry) -> Result<Snapshot, TelemetryError> {
    prometheus_client::encoding::prometheus_protobuf::encode(registry)
        .map_err(|_| TelemetryError::Config("the metrics registry could not be encoded".to_owned()))
}

/// The start of cumulative metrics: the first time this is called (the host
/// calls it at start; else the first metrics exporter does).
pub fn process_start() -> SystemTime {
    static START: OnceLock<SystemTime> = OnceLock::new();
    *START.get_or_init(SystemTime::now)
}

/// Counts of metric exports.
#[derive(Debug, Default)]
pub struct MetricsStats {
    /// Export calls the collector accepted.
    pub exported: AtomicU64,
    /// Export calls that failed (collector down, refused, timed out, registry unreadable).
    pub failed_exports: AtomicU64,
}

/// Sends the host's metrics periodically (see the module docs).
#[derive(Debug)]
pub struct MetricsExporter {
    stats: Arc<MetricsStats>,
    task: Background,
}

impl MetricsExporter {
    /// Starts exporting what `collect` returns every `interval` (the first
    /// export one interval from now) to `otlp`'s collector, reporting as
    /// `service`. Must be called inside a tokio runtime. Fails on unusable
    /// settings. Dropping the exporter stops it (after one last export).
    pub fn start(otlp: &OtlpSettings, interval: Duration, service: &ServiceInfo, collect: Collect) -> Result<Arc<MetricsExporter>, TelemetryError> {
        let sender = Sender::new(otlp)?;
        let stats = Arc::new(MetricsStats::default());
        let start = process_start();
        let worker = Worker { sender, collect, service: service.clone(), start, stats: stats.clone(), warned: None };
        let every = interval.max(Duration::from_millis(10));
        let task = Background::spawn(otlp.timeout, |stopped| worker.run(every, stopped));
        Ok(Arc::new(MetricsExporter { stats, task }))
    }

    /// The counters.
    pub fn stats(&self) -> &MetricsStats {
        &self.stats
    }

    /// Sends the metrics one last time and stops, waiting at most the export timeout. Idempotent.
    pub async fn shutdown(&self) {
        self.task.stop().await;
    }
}

/// The exporting task's state.
struct Worker {
    sender: Sender,
    collect: Collect,
    service: ServiceInfo,
    start: SystemTime,
    stats: Arc<MetricsStats>,
    warned: Option<Instant>,
}

impl Worker {
    async fn run(mut self, interval: Duration, mut stopped: oneshot::Receiver<()>) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = ticks.tick() => self.export().await,
            }
        }
        self.export().await;
    }

    async fn export(&mut self) {
        let result = match (self.collect)() {
            Ok(families) => self.sender.send(to_request(&families, &self.service, self.start, SystemTime::now())).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.stats.exported.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.stats.failed_exports.fetch_add(1, Relaxed);
                warn_limited(&mut self.warned, || tracing::warn!("metrics: {e} (warning at most every 30 s)"));
            }
        }
    }
}

/// One collector, over gRPC or HTTP.
enum Sender {
    Grpc { client: MetricsServiceClient<tonic::transport::Channel>, metadata: tonic::metadata::MetadataMap, endpoint: String, timeout: Duration },
    Http { client: HyperClient, url: String, headers: HeaderMap, timeout: Duration },
}

impl Sender {
    fn new(otlp: &OtlpSettings) -> Result<Sender, TelemetryError> {
        let base = base_endpoint(&otlp.endpoint)?;
        let headers = header_map(&otlp.headers)?;
        let timeout = otlp.timeout;
        Ok(match otlp.protocol {
            Protocol::Grpc => {
                let bad = |e: tonic::transport::Error| TelemetryError::Config(format!("OTLP endpoint {base:?}: {e}"));
                let mut endpoint = tonic::transport::Endpoint::from_shared(base.clone()).map_err(bad)?.connect_timeout(timeout).timeout(timeout);
                if base.starts_with("https://") {
                    endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots()).map_err(bad)?;
                }
                let client = MetricsServiceClient::new(endpoint.connect_lazy());
                Sender::Grpc { client, metadata: tonic::metadata::MetadataMap::from_headers(headers), endpoint: base, timeout }
            }
            Protocol::Http => Sender::Http { client: HyperClient::new(timeout), url: format!("{base}/v1/metrics"), headers, timeout },
        })
    }

    async fn send(&self, request: ExportMetricsServiceRequest) -> Result<(), TelemetryError> {
        let (endpoint, timeout) = match self {
            Sender::Grpc { endpoint, timeout, .. } => (endpoint, *timeout),
            Sender::Http { url, timeout, .. } => (url, *timeout),
        };
        let failed = |reason: String| TelemetryError::Export { endpoint: endpoint.clone(), reason };
        match tokio::time::timeout(timeout, self.send_once(request)).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
        }
    }

    async fn send_once(&self, body: ExportMetricsServiceRequest) -> Result<(), String> {
        match self {
            Sender::Grpc { client, metadata, .. } => {
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                client.clone().export(request).await.map(drop).map_err(|s| format!("{}: {}", s.code(), s.message()))
            }
            Sender::Http { client, url, headers, .. } => {
                let mut request = Request::post(url.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(Bytes::from(body.encode_to_vec()))
                    .map_err(|e| e.to_string())?;
                request.headers_mut().extend(headers.clone());
                let response = client.send(request).await.map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{}: {}", response.status(), String::from_utf8_lossy(response.body())))
                }
            }
        }
    }
}

/// `t` in ns since the Unix epoch, as the conversion writes it.
#[cfg(test)]
fn unix_nanos_for_tests(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
