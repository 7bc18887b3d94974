//! Trace and span ids from a per-thread generator (wyrand, seeded once per
//! thread from the OS-seeded `RandomState`): a few instructions per id, no
//! lock, no syscall. Ids need to be unique, not secret.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use opentelemetry::trace::{SpanId, TraceId};

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

#[inline]
fn next() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        mix(x)
    })
}

#[inline]
fn mix(x: u64) -> u64 {
    let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

/// A new span id (never zero).
#[inline]
pub fn span_id() -> SpanId {
    SpanId::from(next().max(1))
}

/// A new trace id and the id of its first span, from one look-up of the
/// thread's generator (a new trace on every request without `traceparent`).
#[inline]
pub fn trace_and_span_id() -> (TraceId, SpanId) {
    STATE.with(|s| {
        let mut x = s.get();
        let mut step = || {
            x = x.wrapping_add(0xa076_1d64_78bd_642f);
            mix(x)
        };
        let (high, low, span) = (step(), step(), step());
        s.set(x);
        (TraceId::from(((u128::from(high) << 64) | u128::from(low)).max(1)), SpanId::from(span.max(1)))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_do_not_repeat() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| super::span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let pairs: Vec<_> = (0..10_000).map(|_| super::trace_and_span_id()).collect();
        let traces: std::collections::HashSet<_> = pairs.iter().map(|p| p.0).collect();
        let spans: std::collections::HashSet<_> = pairs.iter().map(|p| p.1).chain(ids).collect();
        assert_eq!((traces.len(), spans.len()), (10_000, 20_000));
    }
}
