//! A span: its ids and, only when the trace is sampled and an exporter is
//! installed, a record of name, kind, times, attributes, events and status
//! that becomes an OpenTelemetry `SpanData` when the span ends.
//!
//! An unsampled span is two ids and a flag (40 bytes, moved and copied on
//! every phase call): making one, its children, setting attributes on it
//! and ending it allocate nothing and cost a few instructions. The rare
//! parts share one allocation: a caller's `tracestate` and the record.
//! Clones share the record; the first `end` exports it and later calls
//! (and attributes set after it) are ignored.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue};
use opentelemetry::trace::{Event, SpanContext as OtelContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::context::SpanContext;
use crate::export::Exporter;

/// Most attributes and events kept on one span; more are counted as dropped.
pub const MAX_ATTRIBUTES: usize = 128;
/// Most events kept on one span.
pub const MAX_EVENTS: usize = 128;

/// A span (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Span {
    /// The trace id's bytes (a `TraceId` is a `u128`, 16-byte aligned: as
    /// bytes the span packs into 40 bytes with no padding).
    trace_id: [u8; 16],
    span_id: SpanId,
    sampled: bool,
    /// `tracestate` and the record; `None` for the common unsampled span of
    /// a caller that sent no `tracestate`.
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    tracestate: Option<HeaderValue>,
    rec: Option<Recording>,
}

#[derive(Debug)]
struct Recording {
    exporter: Arc<Exporter>,
    record: Mutex<Option<Record>>,
}

#[derive(Debug)]
struct Record {
    name: Cow<'static, str>,
    kind: SpanKind,
    parent: SpanId,
    parent_is_remote: bool,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
    events: Vec<Event>,
    dropped_events: u32,
    status: Status,
}

impl Span {
    /// A span with no record (unsampled, or no exporter): ids only.
    #[inline]
    pub fn unrecorded(ctx: SpanContext) -> Span {
        let shared = ctx.tracestate.map(|tracestate| Arc::new(Shared { tracestate: Some(tracestate), rec: None }));
        Span { trace_id: ctx.trace_id.to_bytes(), span_id: ctx.span_id, sampled: ctx.sampled, shared }
    }

    /// A recorded span, started now.
    pub(crate) fn recorded(
        ctx: SpanContext,
        exporter: Arc<Exporter>,
        name: Cow<'static, str>,
        kind: SpanKind,
        parent: Option<(SpanId, bool)>,
    ) -> Span {
        let (parent, parent_is_remote) = parent.unwrap_or((SpanId::INVALID, false));
        let record = Record {
            name,
            kind,
            parent,
            parent_is_remote,
            start: SystemTime::now(),
            attributes: Vec::with_capacity(8),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            status: Status::Unset,
        };
        let rec = Recording { exporter, record: Mutex::new(Some(record)) };
        let shared = Arc::new(Shared { tracestate: ctx.tracestate, rec: Some(rec) });
        Span { trace_id: ctx.trace_id.to_bytes(), span_id: ctx.span_id, sampled: ctx.sampled, shared: Some(shared) }
    }

    /// Its ids (for propagation and the access log).
    pub fn context(&self) -> SpanContext {
        SpanContext { trace_id: self.trace_id(), span_id: self.span_id, sampled: self.sampled, tracestate: self.tracestate().cloned() }
    }

    /// The trace it belongs to.
    pub fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(self.trace_id)
    }

    /// Its own id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Whether its trace is sampled.
    pub fn is_sampled(&self) -> bool {
        self.sampled
    }

    fn tracestate(&self) -> Option<&HeaderValue> {
        self.shared.as_ref().and_then(|s| s.tracestate.as_ref())
    }

    fn recording(&self) -> Option<&Recording> {
        self.shared.as_ref().and_then(|s| s.rec.as_ref())
    }

    /// `traceparent` for this span ([`SpanContext::traceparent`]).
    pub fn traceparent(&self) -> HeaderValue {
        crate::context::traceparent(&self.trace_id, self.span_id, self.sampled)
    }

    /// Sets `traceparent` and `tracestate` on an outbound request
    /// ([`SpanContext::inject`]), without building a [`SpanContext`].
    pub fn inject(&self, headers: &mut HeaderMap) {
        crate::context::inject(headers, self.traceparent(), self.tracestate());
    }

    /// Whether attributes and events set on it are kept (sampled, exporter
    /// installed, not ended yet). Check it before computing costly attributes.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.recording().is_some()
    }

    /// A child span started now: recorded when this one is.
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Span {
        let span_id = crate::ids::span_id();
        match self.recording() {
            Some(rec) => {
                let ctx = SpanContext { trace_id: self.trace_id(), span_id, sampled: self.sampled, tracestate: self.tracestate().cloned() };
                Span::recorded(ctx, rec.exporter.clone(), name.into(), kind, Some((self.span_id, false)))
            }
            None => Span { trace_id: self.trace_id, span_id, sampled: self.sampled, shared: self.shared.clone() },
        }
    }

    /// Sets an attribute (replacing one with the same key).
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.with(|r| r.set(attribute));
    }

    /// Sets several attributes at once (one lock; see [`Span::set_attribute`]).
    pub fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        self.with(|r| attributes.into_iter().for_each(|kv| r.set(kv)));
    }

    /// Adds an event, timestamped now.
    pub fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        self.with(|r| {
            if r.events.len() < MAX_EVENTS {
                r.events.push(Event::new(name, SystemTime::now(), attributes, 0));
            } else {
                r.dropped_events += 1;
            }
        });
    }

    /// Marks the span failed, with a description.
    pub fn set_error(&self, description: impl Into<Cow<'static, str>>) {
        self.with(|r| r.status = Status::error(description));
    }

    /// Marks the span succeeded explicitly (`Ok` overrides an error).
    pub fn set_ok(&self) {
        self.with(|r| r.status = Status::Ok);
    }

    /// Renames the span (e.g. once the route is known).
    pub fn rename(&self, name: impl Into<Cow<'static, str>>) {
        self.with(|r| r.name = name.into());
    }

    /// Ends the span now and queues it for export (once; later calls do nothing).
    #[inline]
    pub fn end(&self) {
        if let Some(rec) = self.recording() {
            self.end_recorded(rec);
        }
    }

    #[cold]
    fn end_recorded(&self, rec: &Recording) {
        let Some(record) = rec.record.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        rec.exporter.submit(self.span_data(record, &rec.exporter));
    }

    fn with(&self, f: impl FnOnce(&mut Record)) {
        if let Some(rec) = self.recording()
            && let Some(record) = rec.record.lock().unwrap_or_else(PoisonError::into_inner).as_mut()
        {
            f(record);
        }
    }

    fn span_data(&self, r: Record, exporter: &Exporter) -> SpanData {
        let state = self.tracestate().and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<TraceState>().ok());
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanData {
            span_context: OtelContext::new(self.trace_id(), self.span_id, flags, false, state.unwrap_or_default()),
            parent_span_id: r.parent,
            parent_span_is_remote: r.parent_is_remote,
            span_kind: r.kind,
            name: r.name,
            start_time: r.start,
            end_time: SystemTime::now(),
            attributes: r.attributes,
            dropped_attributes_count: r.dropped_attributes,
            events: events(r.events, r.dropped_events),
            links: SpanLinks::default(),
            status: r.status,
            instrumentation_scope: exporter.scope().clone(),
        }
    }
}

impl Record {
    fn set(&mut self, attribute: KeyValue) {
        if let Some(kv) = self.attributes.iter_mut().find(|kv| kv.key == attribute.key) {
            kv.value = attribute.value;
        } else if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push(attribute);
        } else {
            self.dropped_attributes += 1;
        }
    }
}

fn events(list: Vec<Event>, dropped: u32) -> SpanEvents {
    let mut events = SpanEvents::default();
    events.events = list;
    events.dropped_count = dropped;
    events
}
