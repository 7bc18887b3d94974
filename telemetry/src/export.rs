//! The span exporter: a bounded queue the request path pushes finished
//! spans into without waiting, and a background task on the host runtime
//! that sends them to the collector in batches over OTLP (gRPC or HTTP with
//! protobuf). A full queue or a failed export drops spans and counts them;
//! requests never wait on the collector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SpanData;

/// How the collector is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`http://collector:4317`).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http://collector:4318`; `/v1/traces`
    /// and `/v1/metrics` are appended).
    Http,
}

/// The collector and its client settings (`telemetry.otlp` in the manifest).
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpSettings {
    /// `http://` or `https://` URL of the collector.
    pub endpoint: String,
    /// gRPC or HTTP.
    pub protocol: Protocol,
    /// Extra request headers (authentication), sent with every export.
    pub headers: Vec<(String, String)>,
    /// Time allowed for one export call (default 5 s).
    pub timeout: Duration,
}

/// Batching (`telemetry.tracing` in the manifest).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSettings {
    /// Most spans waiting for export; more are dropped and counted (default 2048).
    pub max_queue: usize,
    /// Most spans per export call (default 512).
    pub max_batch: usize,
    /// Longest a span waits before its batch is sent (default 1 s).
    pub delay: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings { max_queue: 2048, max_batch: 512, delay: Duration::from_secs(1) }
    }
}

/// Counts of what happened to spans, for `/metrics` and the admin API.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export failed (collector down, refused, timed out).
    pub dropped_export_failed: AtomicU64,
    /// Export calls that failed.
    pub failed_exports: AtomicU64,
}

impl ExportStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The exporter (see the module docs).
#[derive(Debug)]
pub struct Exporter {
    scope: InstrumentationScope,
    stats: ExportStats,
    queue: tokio::sync::mpsc::Sender<SpanData>,
}

impl Exporter {
    /// The instrumentation scope spans are reported under (`covet`, with the host's version).
    pub fn scope(&self) -> &InstrumentationScope {
        &self.scope
    }

    /// The counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Queues a finished span; never waits. A full queue drops it (counted).
    pub fn submit(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            ExportStats::add(&self.stats.dropped_queue_full, 1);
        }
    }
}
