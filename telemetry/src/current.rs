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

//!
//! The current span is a thread-local pointer set around each poll of the
//! [`Scoped`] future (and restored after it, also on a panic), like tokio's
//! task-locals but without moving the span in and out of the thread-local
//! on every poll: the pointer is only read during that poll, while the
//! span it points to is borrowed by the future being polled.

use std::borrow::{Borrow, Cow};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use opentelemetry::trace::SpanKind;

use crate::span::Span;

thread_local! {
    static CURRENT: Cell<*const Span> = const { Cell::new(std::ptr::null()) };
}

/// A future polled with a span current (see [`scope`], [`scope_ref`]).
pub struct Scoped<S, F> {
    span: S,
    fut: F,
}

/// Puts the previous current span back when dropped (after a poll, or a panic in it).
struct Restore(*const Span);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Makes `span` current until the guard is dropped.
fn enter(span: &Span) -> Restore {
    Restore(CURRENT.with(|c| c.replace(span)))
}

impl<S: Borrow<Span>, F: Future> Future for Scoped<S, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // `self` (no method hands it out, `Scoped` has no `Drop` and is not
        // `Unpin` unless `F` is); `span` is not pinned and only borrowed.
        let this = unsafe { self.get_unchecked_mut() };
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        let _restore = enter(this.span.borrow());
        fut.poll(cx)
    }
}

/// Runs `fut` with `span` as the current span.
pub fn scope<F: Future>(span: Span, fut: F) -> Scoped<Span, F> {
    Scoped { span, fut }
}

/// Runs `fut` with `span` as the current span, borrowing it (no clone).
pub fn scope_ref<F: Future>(span: &Span, fut: F) -> Scoped<&Span, F> {
    Scoped { span, fut }
}

/// Runs `f` with `span` as the current span (synchronous calls).
pub fn sync_scope<R>(span: Span, f: impl FnOnce() -> R) -> R {
    let _restore = enter(&span);
    f()
}

/// Runs `f` with `span` as the current span, borrowing it (no clone).
pub fn sync_scope_ref<R>(span: &Span, f: impl FnOnce() -> R) -> R {
    let _restore = enter(span);
    f()
}

/// The current span, when a phase is being polled.
pub fn get() -> Option<Span> {
    // SAFETY: a non-null pointer was set by `enter` from a span borrowed for
    // at least as long as its guard lives, and the guard restores the
    // previous value before that borrow ends: the span is alive here.
    CURRENT.with(|c| unsafe { c.get().as_ref() }.cloned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::SpanContext;
    use opentelemetry::trace::{SpanId, TraceId};

    fn span(id: u64) -> Span {
        Span::unrecorded(SpanContext { trace_id: TraceId::from(1u128), span_id: SpanId::from(id), sampled: false, tracestate: None })
    }

    fn current_id() -> Option<SpanId> {
        get().map(|s| s.span_id())
    }

    #[tokio::test]
    async fn a_scope_is_current_while_polled_and_restored_after() {
        assert_eq!(current_id(), None);
        let outer = span(1);
        let seen = scope_ref(&outer, async {
            let before = current_id();
            let inner = scope(span(2), async {
                tokio::task::yield_now().await; // polled again: still current
                current_id()
            })
            .await;
            (before, inner, current_id())
        })
        .await;
        assert_eq!(seen, (Some(SpanId::from(1u64)), Some(SpanId::from(2u64)), Some(SpanId::from(1u64))));
        assert_eq!(current_id(), None);
        assert_eq!(sync_scope(span(3), current_id), Some(SpanId::from(3u64)));
        assert_eq!(sync_scope_ref(&span(5), current_id), Some(SpanId::from(5u64)));
        assert_eq!(current_id(), None);
    }

    #[test]
    fn a_panic_in_a_scope_restores_the_previous_span() {
        let caught = std::panic::catch_unwind(|| sync_scope(span(4), || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(current_id(), None);
    }

    #[test]
    fn an_unrecorded_span_is_small() {
        assert!(std::mem::size_of::<Span>() <= 40, "{}", std::mem::size_of::<Span>());
    }
}
