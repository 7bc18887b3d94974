//! The tracer: the sampler and the exporter, installed once per process
//! (replaced on a manifest reload). With none installed, tracing is off:
//! no ids, no propagation, no cost.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use opentelemetry::trace::SpanKind;

use crate::context::{Remote, SpanContext};
use crate::export::Exporter;
use crate::sampler::Sampler;
use crate::span::Span;

static INSTALLED: ArcSwapOption<Tracer> = ArcSwapOption::const_empty();
/// Whether a tracer is installed: one relaxed load for the hot paths that
/// only need to know that tracing is off ([`enabled`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes spans: samples them and hands the recorded ones to the exporter.
#[derive(Debug)]
pub struct Tracer {
    sampler: Sampler,
    exporter: Option<Arc<Exporter>>,
}

impl Tracer {
    /// A tracer; `exporter: None` keeps ids and propagation but records nothing.
    pub fn new(sampler: Sampler, exporter: Option<Arc<Exporter>>) -> Tracer {
        Tracer { sampler, exporter }
    }

    /// The sampling policy.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    /// The exporter, when one is configured.
    pub fn exporter(&self) -> Option<&Arc<Exporter>> {
        self.exporter.as_ref()
    }

    /// The server span of a request: a child of the caller's span when
    /// `headers` carry a valid `traceparent`, else the root of a new trace.
    /// `route_ratio` is the matched route's sampling ratio, when it sets one.
    pub fn start_server(&self, headers: &HeaderMap, name: impl Into<Cow<'static, str>>, route_ratio: Option<f64>) -> Span {
        server_span(&self.sampler, || self.exporter.clone(), headers, name, route_ratio)
    }

    /// The root span of a new trace (background work with no request).
    pub fn start_root(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Span {
        let (trace_id, span_id) = crate::ids::trace_and_span_id();
        let sampled = self.sampler.decide(None, trace_id, None);
        let ctx = SpanContext { trace_id, span_id, sampled, tracestate: None };
        self.span(ctx, name, kind, None)
    }

    fn span(&self, ctx: SpanContext, name: impl Into<Cow<'static, str>>, kind: SpanKind, parent: Option<(opentelemetry::trace::SpanId, bool)>) -> Span {
        match &self.exporter {
            Some(exporter) if ctx.sampled => Span::recorded(ctx, exporter.clone(), name.into(), kind, parent),
            _ => Span::unrecorded(ctx),
        }
    }
}

/// The server span of a request from the installed tracer
/// ([`Tracer::start_server`]); `None` when tracing is off. The request
/// path's way in: the sampling decision reads the installed sampler's copy
/// (two atomic loads) and only a sampled span loads the tracer for its
/// exporter (an `arc_swap` load, ~45 instructions, paid by 1% of requests at
/// a 1% ratio instead of all of them).
#[inline]
pub fn start_server(headers: &HeaderMap, name: impl Into<Cow<'static, str>>, route_ratio: Option<f64>) -> Option<Span> {
    if !enabled() {
        return None;
    }
    let sampler = Sampler { ratio: f64::from_bits(RATIO.load(Ordering::Relaxed)), parent_based: PARENT_BASED.load(Ordering::Relaxed) };
    let exporter = || INSTALLED.load().as_ref().and_then(|t| t.exporter.clone());
    Some(server_span(&sampler, exporter, headers, name, route_ratio))
}

#[inline(always)]
fn server_span(
    sampler: &Sampler,
    exporter: impl FnOnce() -> Option<Arc<Exporter>>,
    headers: &HeaderMap,
    name: impl Into<Cow<'static, str>>,
    route_ratio: Option<f64>,
) -> Span {
    let (ctx, parent) = match Remote::extract(headers) {
        Some(remote) => {
            let sampled = sampler.decide(Some(remote.sampled), remote.trace_id, route_ratio);
            let ctx = SpanContext { trace_id: remote.trace_id, span_id: crate::ids::span_id(), sampled, tracestate: remote.tracestate };
            (ctx, Some((remote.span_id, true)))
        }
        None => {
            let (trace_id, span_id) = crate::ids::trace_and_span_id();
            let sampled = sampler.decide(None, trace_id, route_ratio);
            (SpanContext { trace_id, span_id, sampled, tracestate: None }, None)
        }
    };
    match ctx.sampled.then(exporter).flatten() {
        Some(exporter) => Span::recorded(ctx, exporter, name.into(), SpanKind::Server, parent),
        None => Span::unrecorded(ctx),
    }
}

/// The installed sampler's ratio (`f64` bits) and parent-based flag, for [`start_server`].
static RATIO: AtomicU64 = AtomicU64::new(0);
static PARENT_BASED: AtomicBool = AtomicBool::new(true);

/// Installs `tracer` for the process (`None`: tracing off).
pub fn install(tracer: Option<Arc<Tracer>>) {
    let on = tracer.is_some();
    if let Some(tracer) = &tracer {
        RATIO.store(tracer.sampler.ratio.to_bits(), Ordering::Relaxed);
        PARENT_BASED.store(tracer.sampler.parent_based, Ordering::Relaxed);
    }
    INSTALLED.store(tracer);
    ENABLED.store(on, Ordering::Release);
}

/// The installed tracer.
pub fn installed() -> Option<Arc<Tracer>> {
    if !enabled() {
        return None;
    }
    INSTALLED.load_full()
}

/// Whether a tracer is installed (tracing is on): a few instructions, for
/// the request path to skip all tracing work when it is off.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}
