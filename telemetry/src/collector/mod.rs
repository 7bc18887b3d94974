//! A real in-process OTLP collector for tests (feature `collector`): a
//! tonic gRPC server implementing the OTLP `TraceService` and
//! `MetricsService`, and an HTTP server answering `POST /v1/traces` and
//! `POST /v1/metrics` with protobuf bodies, both on 127.0.0.1. It keeps
//! every span and metric it receives, flattened (see [`ReceivedSpan`],
//! [`ReceivedMetric`]), and can be stopped to test a collector that is down.
//!
//! ```ignore
//! let collector = Collector::start().await?;
//! // point the exporter at collector.grpc_endpoint() or collector.http_endpoint()
//! let spans = collector.wait_for_spans(3, Duration::from_secs(10)).await;
//! collector.stop().await; // now exports fail: connection refused
//! ```

mod model;
mod servers;

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

#[cfg(test)]
pub(crate) use model::metrics_of;
pub use model::{
    hex, AttrValue, Attributes, MetricKind, Point, PointValue, ReceivedEvent, ReceivedMetric, ReceivedSpan, StatusCode,
    Transport,
};

/// One export call the collector answered.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    /// Which server got it.
    pub transport: Transport,
    /// `traces` or `metrics`.
    pub signal: &'static str,
    /// Its headers (gRPC metadata), names lowercase.
    pub headers: Vec<(String, String)>,
    /// How many spans or metrics it carried.
    pub items: usize,
}

/// What the collector received so far; `changed` ticks on every request.
#[derive(Debug)]
pub(crate) struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    metrics: Mutex<Vec<ReceivedMetric>>,
    requests: Mutex<Vec<ReceivedRequest>>,
    changed: watch::Sender<u64>,
}

impl Store {
    fn new() -> Store {
        Store {
            spans: Mutex::default(),
            metrics: Mutex::default(),
            requests: Mutex::default(),
            changed: watch::Sender::new(0),
        }
    }

    pub(crate) fn add_spans(&self, request: ReceivedRequest, spans: Vec<ReceivedSpan>) {
        lock(&self.spans).extend(spans);
        self.add_request(request);
    }

    pub(crate) fn add_metrics(&self, request: ReceivedRequest, metrics: Vec<ReceivedMetric>) {
        lock(&self.metrics).extend(metrics);
        self.add_request(request);
    }

    fn add_request(&self, request: ReceivedRequest) {
        lock(&self.requests).push(request);
        self.changed.send_modify(|n| *n += 1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running server: its shutdown signal and task.
type Running = Mutex<Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>>;

/// The test collector (see the module docs). Stops when dropped.
#[derive(Debug)]
pub struct Collector {
    store: std::sync::Arc<Store>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    grpc: Running,
    http: Running,
}

impl Collector {
    /// Starts both servers on 127.0.0.1, ports chosen by the system.
    /// Must be called inside a tokio runtime.
    pub async fn start() -> std::io::Result<Collector> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Collector::start_on(any, any).await
    }

    /// Starts both servers on the given addresses (e.g. to bring a stopped
    /// collector back on the same ports).
    pub async fn start_on(grpc: SocketAddr, http: SocketAddr) -> std::io::Result<Collector> {
        let store = std::sync::Arc::new(Store::new());
        let (grpc_addr, grpc) = servers::grpc(grpc, store.clone()).await?;
        let (http_addr, http) = servers::http(http, store.clone()).await?;
        Ok(Collector { store, grpc_addr, http_addr, grpc: Mutex::new(Some(grpc)), http: Mutex::new(Some(http)) })
    }

    /// The gRPC server's address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The HTTP server's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `http://127.0.0.1:<port>` of the gRPC server (an OTLP gRPC endpoint).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:<port>` of the HTTP server (the OTLP/HTTP base:
    /// exporters append `/v1/traces` and `/v1/metrics`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.store.spans).clone()
    }

    /// Every metric received so far (one entry per metric per export).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        lock(&self.store.metrics).clone()
    }

    /// Every export call answered so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.store.requests).clone()
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        lock(&self.store.spans).clear();
        lock(&self.store.metrics).clear();
        lock(&self.store.requests).clear();
    }

    /// Waits until at least `n` spans arrived or `timeout` passed, and
    /// returns the spans received by then (check the count).
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.wait_for_spans_where(|spans| spans.len() >= n, timeout).await
    }

    /// Waits until `done(spans)` holds or `timeout` passed; returns the spans.
    pub async fn wait_for_spans_where(&self, done: impl Fn(&[ReceivedSpan]) -> bool, timeout: Duration) -> Vec<ReceivedSpan> {
        self.wait(|| done(&lock(&self.store.spans)), timeout).await;
        self.spans()
    }

    /// Waits until `done(metrics)` holds or `timeout` passed; returns the metrics.
    pub async fn wait_for_metrics(&self, done: impl Fn(&[ReceivedMetric]) -> bool, timeout: Duration) -> Vec<ReceivedMetric> {
        self.wait(|| done(&lock(&self.store.metrics)), timeout).await;
        self.metrics()
    }

    async fn wait(&self, done: impl Fn() -> bool, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.store.changed.subscribe();
        while !done() {
            if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
                return;
            }
        }
    }

    /// Stops both servers: their ports refuse connections afterwards and
    /// open connections are closed. Idempotent.
    pub async fn stop(&self) {
        for server in [&self.grpc, &self.http] {
            let running = lock(server).take();
            if let Some((signal, mut task)) = running {
                let _ = signal.send(());
                if tokio::time::timeout(Duration::from_secs(3), &mut task).await.is_err() {
                    task.abort();
                }
            }
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        for server in [&self.grpc, &self.http] {
            if let Some((_, task)) = lock(server).take() {
                task.abort();
            }
        }
    }
}
