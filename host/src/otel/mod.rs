//! OpenTelemetry in the host: the manifest's `telemetry:` block made live.
//!
//! At start and on every manifest reload, [`prepare`] builds what the new
//! settings need: the [`Tracer`] (none when `tracing` is absent: tracing
//! off), a span exporter when `otlp` and `tracing` are set, and a metrics
//! exporter when `otlp` and `metrics` are set. An exporter whose settings
//! (collector, batching or interval, service name) did not change is kept
//! running, not rebuilt. [`Prepared::install`] makes it live once the reload
//! is committed; an exporter no longer used is flushed in the background.
//! [`shutdown`] turns tracing off and flushes what is queued.
//!
//! The request path starts its server span with
//! [`server_span::start_installed`]: with tracing off that is one relaxed
//! atomic load, no reference count, no allocation.
//!
//! Metrics over OTLP read the same registry as `GET /metrics`
//! ([`set_metrics_source`], called once at start). The exporters' counters
//! add up across reloads that replace them ([`span_totals`],
//! [`metrics_export_failures`]).

pub mod plugin_span;
pub mod server_span;

use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, PoisonError,
    atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
};
use std::future::Future;
use std::time::Duration;

use covet_telemetry::{
    ServiceInfo, Tracer,
    export::{BatchSettings, ExportStats, Exporter, OtlpSettings},
    metrics::{Collect, MetricsExporter},
};

use crate::manifest::TelemetrySettings;

/// Whether a tracer is installed (read on every request).
static ON: AtomicBool = AtomicBool::new(false);

/// The installed tracer; `None` (one atomic load) when tracing is off.
#[inline]
pub fn tracer() -> Option<Arc<Tracer>> {
    if !ON.load(Relaxed) {
        return None;
    }
    covet_telemetry::tracer::installed()
}

/// A running exporter with the settings it was made from.
struct Export<S, E> {
    settings: S,
    exporter: Arc<E>,
}

type SpanExport = Export<(OtlpSettings, BatchSettings, String), Exporter>;
type MetricsExport = Export<(OtlpSettings, Duration, String), MetricsExporter>;

/// The exporters running now.
#[derive(Default)]
struct Running {
    spans: Option<SpanExport>,
    metrics: Option<MetricsExport>,
}

static RUNNING: Mutex<Running> = Mutex::new(Running { spans: None, metrics: None });

fn running() -> MutexGuard<'static, Running> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The registry metrics over OTLP read (the one `/metrics` renders).
static METRICS_SOURCE: OnceLock<Collect> = OnceLock::new();

/// Sets where OTLP metrics are read from; the first call wins.
pub fn set_metrics_source(collect: Collect) {
    covet_telemetry::metrics::process_start();
    let _ = METRICS_SOURCE.set(collect);
}

/// Counters of exporters replaced or shut down, so totals never go back.
static RETIRED: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
const EXPORTED: usize = 0;
const QUEUE_FULL: usize = 1;
const EXPORT_FAILED: usize = 2;
const FAILED_EXPORTS: usize = 3;
const METRICS_FAILED: usize = 4;

fn span_counts(stats: &ExportStats) -> [u64; 4] {
    [&stats.exported, &stats.dropped_queue_full, &stats.dropped_export_failed, &stats.failed_exports].map(|c| c.load(Relaxed))
}

fn retire_counts(stats: &ExportStats) {
    for (i, n) in span_counts(stats).into_iter().enumerate() {
        RETIRED[i].fetch_add(n, Relaxed);
    }
}

/// What became of spans since the host started (for `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanTotals {
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans dropped because the export queue was full.
    pub dropped_queue_full: u64,
    /// Spans dropped because their export failed.
    pub dropped_export_failed: u64,
    /// Span export calls that failed.
    pub failed_exports: u64,
}

/// The span counters: the running exporter's plus those it replaced.
pub fn span_totals() -> SpanTotals {
    let mut n: [u64; 4] = std::array::from_fn(|i| RETIRED[i].load(Relaxed));
    if let Some(spans) = &running().spans {
        let live = span_counts(spans.exporter.stats());
        n.iter_mut().zip(live).for_each(|(total, live)| *total += live);
    }
    SpanTotals { exported: n[EXPORTED], dropped_queue_full: n[QUEUE_FULL], dropped_export_failed: n[EXPORT_FAILED], failed_exports: n[FAILED_EXPORTS] }
}

/// Failed metric exports since the host started.
pub fn metrics_export_failures() -> u64 {
    let live = running().metrics.as_ref().map_or(0, |m| m.exporter.stats().failed_exports.load(Relaxed));
    RETIRED[METRICS_FAILED].load(Relaxed) + live
}

/// Telemetry built for a manifest, not live yet.
pub struct Prepared {
    tracer: Option<Arc<Tracer>>,
    spans: Option<SpanExport>,
    metrics: Option<MetricsExport>,
}

/// Builds what `settings` need (see the module docs). Must run on the
/// host's runtime: a new exporter starts its task there. Fails on settings
/// the exporter refuses; nothing running changes then.
pub fn prepare(settings: &TelemetrySettings) -> Result<Prepared, String> {
    let name = &settings.service_name;
    let spans = match (&settings.otlp, &settings.tracing) {
        (Some(otlp), Some(tracing)) => Some(span_export((otlp.clone(), tracing.batch.clone(), name.clone()))?),
        _ => None,
    };
    let metrics = match (&settings.otlp, settings.metrics_interval, METRICS_SOURCE.get()) {
        (Some(otlp), Some(interval), Some(source)) => Some(metrics_export((otlp.clone(), interval, name.clone()), source)?),
        _ => None,
    };
    let exporter = spans.as_ref().map(|s| s.exporter.clone());
    let tracer = settings.tracing.as_ref().map(|t| Arc::new(Tracer::new(t.sampler, exporter)));
    Ok(Prepared { tracer, spans, metrics })
}

fn span_export(settings: (OtlpSettings, BatchSettings, String)) -> Result<SpanExport, String> {
    if let Some(same) = running().spans.as_ref().filter(|r| r.settings == settings) {
        return Ok(Export { exporter: same.exporter.clone(), settings });
    }
    let service = ServiceInfo::new(&settings.2, env!("CARGO_PKG_VERSION"));
    let exporter = Exporter::start(&settings.0, &settings.1, &service).map_err(|e| e.to_string())?;
    Ok(Export { settings, exporter })
}

fn metrics_export(settings: (OtlpSettings, Duration, String), source: &Collect) -> Result<MetricsExport, String> {
    if let Some(same) = running().metrics.as_ref().filter(|r| r.settings == settings) {
        return Ok(Export { exporter: same.exporter.clone(), settings });
    }
    let service = ServiceInfo::new(&settings.2, env!("CARGO_PKG_VERSION"));
    let exporter = MetricsExporter::start(&settings.0, settings.1, &service, source.clone()).map_err(|e| e.to_string())?;
    Ok(Export { settings, exporter })
}

impl Prepared {
    /// Makes it live: installs the tracer and retires exporters no longer used.
    pub fn install(self) {
        let on = self.tracer.is_some();
        covet_telemetry::tracer::install(self.tracer);
        ON.store(on, Relaxed);
        let old = std::mem::replace(&mut *running(), Running { spans: self.spans, metrics: self.metrics });
        let now = running();
        if let Some(old) = old.spans.filter(|o| !now.spans.as_ref().is_some_and(|n| Arc::ptr_eq(&n.exporter, &o.exporter))) {
            in_background(async move {
                old.exporter.shutdown().await;
                retire_counts(old.exporter.stats());
            });
        }
        if let Some(old) = old.metrics.filter(|o| !now.metrics.as_ref().is_some_and(|n| Arc::ptr_eq(&n.exporter, &o.exporter))) {
            in_background(async move {
                old.exporter.shutdown().await;
                RETIRED[METRICS_FAILED].fetch_add(old.exporter.stats().failed_exports.load(Relaxed), Relaxed);
            });
        }
    }
}

fn in_background(work: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}

/// Turns tracing off and sends what is queued, each exporter bounded by its
/// timeout. Called once, at shutdown.
pub async fn shutdown() {
    covet_telemetry::tracer::install(None);
    ON.store(false, Relaxed);
    let Running { spans, metrics } = std::mem::take(&mut *running());
    if let Some(spans) = spans {
        spans.exporter.shutdown().await;
        retire_counts(spans.exporter.stats());
    }
    if let Some(metrics) = metrics {
        metrics.exporter.shutdown().await;
        RETIRED[METRICS_FAILED].fetch_add(metrics.exporter.stats().failed_exports.load(Relaxed), Relaxed);
    }
}
