//! The span exporter: a bounded queue the request path pushes finished
//! spans into without waiting, and a background task on the host runtime
//! that sends them to the collector in batches over OTLP (gRPC or HTTP with
//! protobuf). A full queue or a failed export drops spans and counts them;
//! requests never wait on the collector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::background::Background;
use crate::error::TelemetryError;
use crate::resource::ServiceInfo;
use crate::span_sender::SpanSender;

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
    stats: Arc<ExportStats>,
    /// Finished spans, each an encoded OTLP `Span` ([`crate::wire`]).
    queue: mpsc::Sender<Vec<u8>>,
    task: Background,
}

impl Exporter {
    /// Starts an exporter to `otlp`'s collector, batching as `batch` says,
    /// reporting as `service`. Must be called inside a tokio runtime: the
    /// batching task is spawned on it. Fails on unusable settings (endpoint,
    /// headers); an unreachable collector is not an error here (exports fail
    /// and are counted).
    pub fn start(otlp: &OtlpSettings, batch: &BatchSettings, service: &ServiceInfo) -> Result<Arc<Exporter>, TelemetryError> {
        let sender = SpanSender::new(otlp, service)?;
        let (queue, spans) = mpsc::channel(batch.max_queue.max(1));
        let stats = Arc::new(ExportStats::default());
        let worker = Worker { spans, stats: stats.clone(), sender, batch: batch.clone(), warned: None };
        let task = Background::spawn(otlp.timeout, |stopped| worker.run(stopped));
        Ok(Arc::new(Exporter { stats, queue, task }))
    }

    /// The counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Queues a finished span; never waits. A full queue drops it (counted),
    /// as does an exporter shut down.
    pub(crate) fn submit(&self, span: Vec<u8>) {
        if self.queue.try_send(span).is_err() {
            ExportStats::add(&self.stats.dropped_queue_full, 1);
        }
    }

    /// Sends what is queued and stops the batching task, waiting at most the
    /// export timeout (what is left then is dropped). Spans submitted later
    /// are dropped and counted as `dropped_queue_full`. Idempotent.
    /// (Dropping the last `Arc<Exporter>` also flushes, in the background.)
    pub async fn shutdown(&self) {
        self.task.stop().await;
    }
}

/// The batching task's state.
struct Worker {
    spans: mpsc::Receiver<Vec<u8>>,
    stats: Arc<ExportStats>,
    sender: SpanSender,
    batch: BatchSettings,
    warned: Option<Instant>,
}

impl Worker {
    /// Batches and sends until stopped or every sender is gone, then flushes.
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let max = self.batch.max_batch.max(1);
        let mut batch = Vec::with_capacity(max);
        loop {
            // Wait for a first span, then for more until the batch is full or `delay` passed.
            tokio::select! {
                _ = &mut stopped => break,
                n = self.spans.recv_many(&mut batch, max) => if n == 0 { break },
            }
            let deadline = tokio::time::Instant::now() + self.batch.delay;
            while batch.len() < max {
                let room = max - batch.len();
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    n = self.spans.recv_many(&mut batch, room) => if n == 0 { break },
                }
            }
            self.export(std::mem::replace(&mut batch, Vec::with_capacity(max))).await;
        }
        self.flush(batch).await;
    }

    /// Sends `batch` and everything still queued.
    async fn flush(&mut self, mut batch: Vec<Vec<u8>>) {
        self.spans.close();
        let max = self.batch.max_batch.max(1);
        while let Ok(span) = self.spans.try_recv() {
            batch.push(span);
            if batch.len() == max {
                self.export(std::mem::take(&mut batch)).await;
            }
        }
        if !batch.is_empty() {
            self.export(batch).await;
        }
    }

    async fn export(&mut self, batch: Vec<Vec<u8>>) {
        let n = batch.len() as u64;
        match self.sender.send(&batch).await {
            Ok(()) => ExportStats::add(&self.stats.exported, n),
            Err(e) => {
                ExportStats::add(&self.stats.dropped_export_failed, n);
                ExportStats::add(&self.stats.failed_exports, 1);
                warn_limited(&mut self.warned, || tracing::warn!("{e}; {n} spans dropped (warning at most every 30 s)"));
            }
        }
    }
}

/// Shortest time between two warnings about failed exports.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(30);

/// Runs `warn` unless it ran less than [`WARN_EVERY`] ago.
pub(crate) fn warn_limited(last: &mut Option<Instant>, warn: impl FnOnce()) {
    if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
        *last = Some(Instant::now());
        warn();
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
