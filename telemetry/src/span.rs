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
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TraceState};
use opentelemetry::KeyValue;

use crate::context::SpanContext;
use crate::export::Exporter;
use crate::wire::{self, AttrValue};

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
    /// Start, ns since the Unix epoch.
    start: u64,
    /// The encoded span so far: its attributes and events, in the order
    /// they were set (protobuf allows a message's fields in any order). At
    /// the end the other fields are appended and this is the span's bytes.
    fields: Vec<u8>,
    attributes: u32,
    dropped_attributes: u32,
    events: u32,
    dropped_events: u32,
    status: Status,
}

/// Bytes reserved for a recorded span's encoding when it starts (enough for
/// a server span's attributes and its ids, name and times: one allocation).
const INITIAL_BYTES: usize = 384;

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
            start: unix_nanos(SystemTime::now()),
            fields: Vec::with_capacity(INITIAL_BYTES),
            attributes: 0,
            dropped_attributes: 0,
            events: 0,
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

    #[inline]
    fn tracestate(&self) -> Option<&HeaderValue> {
        self.shared.as_ref().and_then(|s| s.tracestate.as_ref())
    }

    #[inline]
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
    #[inline]
    pub fn child(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Span {
        match self.recording() {
            Some(rec) => self.recorded_child(rec, name.into(), kind),
            None => Span { trace_id: self.trace_id, span_id: crate::ids::span_id(), sampled: self.sampled, shared: self.shared.clone() },
        }
    }

    #[cold]
    fn recorded_child(&self, rec: &Recording, name: Cow<'static, str>, kind: SpanKind) -> Span {
        let ctx = SpanContext { trace_id: self.trace_id(), span_id: crate::ids::span_id(), sampled: self.sampled, tracestate: self.tracestate().cloned() };
        Span::recorded(ctx, rec.exporter.clone(), name, kind, Some((self.span_id, false)))
    }

    /// Sets an attribute (replacing one with the same key).
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.with(|r| r.set(attribute.key.as_str(), |buf| wire::otel_key_value(buf, wire::span::ATTRIBUTES, &attribute)));
    }

    /// Sets several attributes at once (one lock; see [`Span::set_attribute`]).
    pub fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        self.with(|r| {
            for kv in attributes {
                r.set(kv.key.as_str(), |buf| wire::otel_key_value(buf, wire::span::ATTRIBUTES, &kv));
            }
        });
    }

    /// Adds attributes from borrowed values, for a span that has none of
    /// these keys yet (one just started): nothing is looked up or copied but
    /// into the span's encoding. A key set twice this way is sent twice.
    pub fn add_attributes<'a>(&self, attributes: impl IntoIterator<Item = (&'a str, AttrValue<'a>)>) {
        self.with(|r| {
            for (k, v) in attributes {
                r.add(|buf| wire::key_value(buf, wire::span::ATTRIBUTES, k, v));
            }
        });
    }

    /// Adds an event, timestamped now.
    pub fn add_event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        self.with(|r| {
            if r.events >= MAX_EVENTS as u32 {
                r.dropped_events += 1;
                return;
            }
            r.events += 1;
            let name = name.into();
            wire::nested(&mut r.fields, wire::span::EVENTS, |buf| {
                wire::fixed64(buf, wire::event::TIME, unix_nanos(SystemTime::now()));
                wire::bytes(buf, wire::event::NAME, name.as_bytes());
                attributes.iter().for_each(|kv| wire::otel_key_value(buf, wire::event::ATTRIBUTES, kv));
            });
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
        rec.exporter.submit(self.encode(record));
    }

    fn with(&self, f: impl FnOnce(&mut Record)) {
        if let Some(rec) = self.recording()
            && let Some(record) = rec.record.lock().unwrap_or_else(PoisonError::into_inner).as_mut()
        {
            f(record);
        }
    }

    /// The span's OTLP `Span` message: the record's fields and the rest.
    fn encode(&self, r: Record) -> Vec<u8> {
        use wire::span as field;
        let mut buf = r.fields;
        wire::bytes(&mut buf, field::TRACE_ID, &self.trace_id);
        wire::bytes(&mut buf, field::SPAN_ID, &self.span_id.to_bytes());
        if let Some(state) = self.tracestate().and_then(|v| v.to_str().ok()).and_then(|s| s.parse::<TraceState>().ok()) {
            wire::bytes(&mut buf, field::TRACE_STATE, state.header().as_bytes());
        }
        if r.parent != SpanId::INVALID {
            wire::bytes(&mut buf, field::PARENT_SPAN_ID, &r.parent.to_bytes());
        }
        wire::bytes(&mut buf, field::NAME, r.name.as_bytes());
        wire::uint(&mut buf, field::KIND, kind_code(&r.kind));
        wire::fixed64(&mut buf, field::START, r.start);
        wire::fixed64(&mut buf, field::END, unix_nanos(SystemTime::now()));
        wire::uint(&mut buf, field::DROPPED_ATTRIBUTES, u64::from(r.dropped_attributes));
        wire::uint(&mut buf, field::DROPPED_EVENTS, u64::from(r.dropped_events));
        wire::nested(&mut buf, field::STATUS, |buf| match &r.status {
            Status::Error { description } => {
                wire::bytes(buf, 2, description.as_bytes());
                wire::uint(buf, 3, 2);
            }
            Status::Ok => wire::uint(buf, 3, 1),
            Status::Unset => {}
        });
        // SpanFlags: the trace flags, and whether the parent is remote
        // (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, _IS_REMOTE_MASK), as the SDK writes them.
        let flags = u32::from(self.sampled) | 0x100 | if r.parent_is_remote { 0x200 } else { 0 };
        wire::fixed32(&mut buf, field::FLAGS, flags);
        buf
    }
}

impl Record {
    /// Sets the attribute `key`, which `write` encodes, replacing one with
    /// the same key.
    fn set(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(old) = wire::find_key(&self.fields, wire::span::ATTRIBUTES, key) {
            self.fields.drain(old);
            self.attributes -= 1;
        }
        self.add(write);
    }

    /// Adds an attribute that `write` encodes (counted as dropped past the limit).
    fn add(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.attributes < MAX_ATTRIBUTES as u32 {
            self.attributes += 1;
            write(&mut self.fields);
        } else {
            self.dropped_attributes += 1;
        }
    }
}

/// OTLP `SpanKind`.
fn kind_code(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `t` in ns since the Unix epoch (0 before it).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry_proto::tonic::trace::v1::Span as Proto;
    use prost::Message;

    use super::*;
    use crate::export::{BatchSettings, OtlpSettings, Protocol};

    /// What `span` would send now, decoded.
    fn encoded(span: &Span) -> Proto {
        let rec = span.recording().expect("recorded");
        let record = rec.record.lock().unwrap().take().expect("not ended");
        Proto::decode(span.encode(record).as_slice()).unwrap()
    }

    #[tokio::test]
    async fn attributes_replace_by_key_and_the_encoding_has_every_field() {
        let otlp = OtlpSettings { endpoint: "http://127.0.0.1:9".into(), protocol: Protocol::Grpc, headers: Vec::new(), timeout: Duration::from_secs(1) };
        let exporter = Exporter::start(&otlp, &BatchSettings::default(), &crate::ServiceInfo::new("t", "0")).unwrap();
        let ctx = SpanContext { trace_id: TraceId::from(7u128), span_id: SpanId::from(9u64), sampled: true, tracestate: Some(HeaderValue::from_static("a=1")) };
        let span = Span::recorded(ctx, exporter, "first".into(), SpanKind::Client, Some((SpanId::from(3u64), true)));
        span.add_attributes([("a", AttrValue::Str("x")), ("n", AttrValue::I64(1))]);
        span.set_attribute(KeyValue::new("n", 2_i64));
        span.set_attributes([KeyValue::new("a", "y"), KeyValue::new("b", true)]);
        span.add_event("e", vec![KeyValue::new("k", "v")]);
        span.rename("second");
        span.set_error("broke");
        let got = encoded(&span);
        let keys: Vec<_> = got.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["n", "a", "b"], "each key once, the last value");
        assert_eq!(got.attributes[0].value.as_ref().unwrap().value, Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(2)));
        assert_eq!(got.name, "second");
        assert_eq!(got.kind, 3);
        assert_eq!(got.trace_id, TraceId::from(7u128).to_bytes());
        assert_eq!(got.span_id, SpanId::from(9u64).to_bytes());
        assert_eq!(got.parent_span_id, SpanId::from(3u64).to_bytes());
        assert_eq!(got.trace_state, "a=1");
        assert_eq!(got.flags, 0x301);
        assert!(got.start_time_unix_nano > 0 && got.end_time_unix_nano >= got.start_time_unix_nano);
        assert_eq!((got.events.len(), got.events[0].name.as_str()), (1, "e"));
        let status = got.status.unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "broke"));
    }

    #[tokio::test]
    async fn attributes_past_the_limit_are_counted_as_dropped() {
        let otlp = OtlpSettings { endpoint: "http://127.0.0.1:9".into(), protocol: Protocol::Http, headers: Vec::new(), timeout: Duration::from_secs(1) };
        let exporter = Exporter::start(&otlp, &BatchSettings::default(), &crate::ServiceInfo::new("t", "0")).unwrap();
        let ctx = SpanContext { trace_id: TraceId::from(1u128), span_id: SpanId::from(1u64), sampled: true, tracestate: None };
        let span = Span::recorded(ctx, exporter, "s".into(), SpanKind::Internal, None);
        span.set_attributes((0..MAX_ATTRIBUTES + 3).map(|i| KeyValue::new(format!("k{i}"), i as i64)));
        let got = encoded(&span);
        assert_eq!((got.attributes.len(), got.dropped_attributes_count), (MAX_ATTRIBUTES, 3));
        assert!(got.parent_span_id.is_empty());
        assert_eq!(got.flags, 0x101);
    }
}
