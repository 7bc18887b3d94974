//! The span a plugin phase runs in, visible to the host services it calls.
//!
//! The pipeline runs each phase future inside [`scope`]: while the future is
//! polled (on whatever thread polls it), [`get`] returns the phase's span.
//! A native plugin's call to `host.upstream(..).send()` or `host.http()`,
//! and a WASM guest's outbound request, reach the host services inside that
//! poll, so the services make their client spans children of it and inject
//! its ids. A Python plugin runs on the interpreter's own thread: its
//! runtime passes the span explicitly (it does not use this module).
//!
//! Work a plugin spawns in the background has no current span: its calls
//! start traces of their own ([`client_span`]).

use std::borrow::Cow;
use std::future::Future;

use opentelemetry::trace::SpanKind;

use crate::span::Span;

tokio::task_local! {
    static CURRENT: Span;
}

/// Runs `fut` with `span` as the current span.
pub fn scope<F: Future>(span: Span, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(span, fut)
}

/// Runs `f` with `span` as the current span (synchronous calls).
pub fn sync_scope<R>(span: Span, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(span, f)
}

/// The current span, when a phase is being polled.
pub fn get() -> Option<Span> {
    CURRENT.try_with(Span::clone).ok()
}

/// A client span for an outbound call made now: a child of the current
/// span, or the root of a new trace (sampled by the installed tracer's
/// ratio) when there is none; `None` when tracing is off.
pub fn client_span(name: impl Into<Cow<'static, str>>) -> Option<Span> {
    match get() {
        Some(parent) => Some(parent.child(name, SpanKind::Client)),
        None => crate::tracer::installed().map(|t| t.start_root(name, SpanKind::Client)),
    }
}
