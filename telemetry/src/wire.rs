//! OTLP trace protobuf written by hand: a recorded span's attributes and
//! events are encoded as they are set, the span itself once when it ends,
//! and a batch is those bytes framed under one resource and scope.
//!
//! Through the SDK's `SpanData`, opentelemetry-proto's conversion and
//! prost's encoder (which recomputes every nested message's length at each
//! of the six levels an attribute sits under) a recorded two-span trace
//! cost ~36,000 instructions; written directly it is a few thousand (see
//! docs/telemetry.md, "Cost"). The messages and field numbers are those of
//! `opentelemetry/proto/trace/v1/trace.proto`, `common/v1/common.proto` and
//! `collector/trace/v1/trace_service.proto`; the tests decode the bytes with
//! opentelemetry-proto's prost types.

use opentelemetry::{Array, KeyValue, Value};

/// Length-delimited wire type.
const LEN: u8 = 2;

/// `Span` fields.
pub(crate) mod span {
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const TRACE_STATE: u32 = 3;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START: u32 = 7;
    pub const END: u32 = 8;
    pub const ATTRIBUTES: u32 = 9;
    pub const DROPPED_ATTRIBUTES: u32 = 10;
    pub const EVENTS: u32 = 11;
    pub const DROPPED_EVENTS: u32 = 12;
    pub const STATUS: u32 = 15;
    pub const FLAGS: u32 = 16;
}

/// `Span.Event` fields.
pub(crate) mod event {
    pub const TIME: u32 = 1;
    pub const NAME: u32 = 2;
    pub const ATTRIBUTES: u32 = 3;
}

/// An attribute value borrowed from the caller (nothing is copied but into
/// the encoded bytes).
#[derive(Clone, Copy, Debug)]
pub enum AttrValue<'a> {
    /// A string.
    Str(&'a str),
    /// An integer.
    I64(i64),
    /// A boolean.
    Bool(bool),
    /// A float.
    F64(f64),
}

/// Appends `v` as a base-128 varint.
#[inline]
pub(crate) fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes `v` takes as a varint.
#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn key(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, u64::from(field << 3 | u32::from(wire)));
}

/// A `bytes` or `string` field (written even when empty).
#[inline]
pub(crate) fn bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, LEN);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// A `uint32`/`int32`/enum/`bool` field, left out when zero (proto3 default).
pub(crate) fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, 0);
        varint(buf, v);
    }
}

/// A `fixed64` field.
pub(crate) fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, 1);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A `fixed32` field.
pub(crate) fn fixed32(buf: &mut Vec<u8>, field: u32, v: u32) {
    key(buf, field, 5);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A nested message field whose body `body` writes: its length is written
/// in one byte, and moved over when the body turns out 128 bytes or longer.
pub(crate) fn nested(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    if len < 0x80 {
        buf[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        buf.splice(at..=at, prefix);
    }
}

/// A `KeyValue` as field `field` of the enclosing message. Its lengths are
/// known up front: written straight, with room reserved once.
pub(crate) fn key_value(buf: &mut Vec<u8>, field: u32, k: &str, v: AttrValue<'_>) {
    let any = any_value_len(v);
    let body = 1 + varint_len(k.len() as u64) + k.len() + 1 + varint_len(any as u64) + any;
    buf.reserve(2 + varint_len(body as u64) + body);
    key(buf, field, LEN);
    varint(buf, body as u64);
    bytes(buf, 1, k.as_bytes());
    key(buf, 2, LEN);
    varint(buf, any as u64);
    any_value(buf, v);
}

/// The length of [`any_value`]'s output.
fn any_value_len(v: AttrValue<'_>) -> usize {
    match v {
        AttrValue::Str(s) => 1 + varint_len(s.len() as u64) + s.len(),
        AttrValue::Bool(_) => 2,
        AttrValue::I64(i) => 1 + varint_len(i as u64),
        AttrValue::F64(_) => 9,
    }
}

/// An `AnyValue` body (a oneof: written even when zero or empty).
fn any_value(buf: &mut Vec<u8>, v: AttrValue<'_>) {
    match v {
        AttrValue::Str(s) => bytes(buf, 1, s.as_bytes()),
        AttrValue::Bool(b) => {
            key(buf, 2, 0);
            buf.push(u8::from(b));
        }
        AttrValue::I64(i) => {
            key(buf, 3, 0);
            varint(buf, i as u64);
        }
        AttrValue::F64(f) => fixed64(buf, 4, f.to_bits()),
    }
}

/// An OpenTelemetry `KeyValue` as field `field` (arrays as `ArrayValue`).
pub(crate) fn otel_key_value(buf: &mut Vec<u8>, field: u32, kv: &KeyValue) {
    let k = kv.key.as_str();
    match &kv.value {
        Value::Bool(b) => key_value(buf, field, k, AttrValue::Bool(*b)),
        Value::I64(i) => key_value(buf, field, k, AttrValue::I64(*i)),
        Value::F64(f) => key_value(buf, field, k, AttrValue::F64(*f)),
        Value::String(s) => key_value(buf, field, k, AttrValue::Str(s.as_str())),
        Value::Array(array) => nested(buf, field, |buf| {
            bytes(buf, 1, k.as_bytes());
            nested(buf, 2, |buf| nested(buf, 5, |buf| array_values(buf, array)));
        }),
        other => key_value(buf, field, k, AttrValue::Str(&other.as_str())),
    }
}

/// `ArrayValue.values`.
fn array_values(buf: &mut Vec<u8>, array: &Array) {
    let mut each = |v: AttrValue<'_>| nested(buf, 1, |buf| any_value(buf, v));
    match array {
        Array::Bool(list) => list.iter().for_each(|b| each(AttrValue::Bool(*b))),
        Array::I64(list) => list.iter().for_each(|i| each(AttrValue::I64(*i))),
        Array::F64(list) => list.iter().for_each(|f| each(AttrValue::F64(*f))),
        Array::String(list) => list.iter().for_each(|s| each(AttrValue::Str(s.as_str()))),
        other => each(AttrValue::Str(&other.to_string())),
    }
}

/// Where the `KeyValue` with key `k` lies in `fields`: a run of
/// length-delimited fields numbered below 16 (one-byte keys), of which those
/// numbered `field` are `KeyValue`s as [`key_value`] writes them (key first).
pub(crate) fn find_key(fields: &[u8], field: u32, k: &str) -> Option<std::ops::Range<usize>> {
    let tag = (field << 3) as u8 | LEN;
    let mut at = 0;
    while at < fields.len() {
        let start = at;
        let (len, n) = read_varint(&fields[at + 1..])?;
        let body = at + 1 + n;
        let end = body + len as usize;
        if fields[start] == tag {
            // The body starts with the key string: tag 0x0a, its length, its bytes.
            let (klen, m) = read_varint(fields.get(body + 1..end)?)?;
            let kstart = body + 1 + m;
            if fields.get(kstart..kstart + klen as usize)? == k.as_bytes() {
                return Some(start..end);
            }
        }
        at = end;
    }
    None
}

fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The fixed head of every export request (resource and scope), written
/// once per exporter, and the framing of a batch of encoded spans under it.
#[derive(Debug)]
pub(crate) struct Batcher {
    /// `Resource` (field 1 of `ResourceSpans`, key and length included).
    resource: Vec<u8>,
    /// `InstrumentationScope` (field 1 of `ScopeSpans`, key and length included).
    scope: Vec<u8>,
}

impl Batcher {
    /// Spans reported under `resource` (key-value string pairs) by the scope `name`/`version`.
    pub(crate) fn new(resource: &[(&str, &str)], name: &str, version: &str) -> Batcher {
        let mut r = Vec::new();
        nested(&mut r, 1, |buf| resource.iter().for_each(|(k, v)| key_value(buf, 1, k, AttrValue::Str(v))));
        let mut s = Vec::new();
        nested(&mut s, 1, |buf| {
            bytes(buf, 1, name.as_bytes());
            bytes(buf, 2, version.as_bytes());
        });
        Batcher { resource: r, scope: s }
    }

    /// An `ExportTraceServiceRequest` carrying `spans` (each an encoded `Span`).
    pub(crate) fn request(&self, spans: &[Vec<u8>]) -> Vec<u8> {
        let framed = |len: usize| 1 + varint_len(len as u64) + len;
        let scope_spans = self.scope.len() + spans.iter().map(|s| framed(s.len())).sum::<usize>();
        let resource_spans = self.resource.len() + framed(scope_spans);
        let mut out = Vec::with_capacity(framed(resource_spans));
        out.push(1 << 3 | LEN); // ExportTraceServiceRequest.resource_spans
        varint(&mut out, resource_spans as u64);
        out.extend_from_slice(&self.resource);
        out.push(2 << 3 | LEN); // ResourceSpans.scope_spans
        varint(&mut out, scope_spans as u64);
        out.extend_from_slice(&self.scope);
        for span in spans {
            out.push(2 << 3 | LEN); // ScopeSpans.spans
            varint(&mut out, span.len() as u64);
            out.extend_from_slice(span);
        }
        out
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
