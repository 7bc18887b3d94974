//! Tracing from a plugin: attributes and events on the span of the current
//! plugin call. The host opens one span per plugin call (a child of the
//! request's server span) and exports it over OpenTelemetry when the trace
//! is sampled; when it is not, these calls do nothing and cost a virtual
//! call. Check [`Request::span_is_recording`](crate::Request::span_is_recording)
//! before computing a costly attribute.
//!
//! ```ignore
//! req.set_span_attribute("tenant.id", tenant);
//! req.set_span_attribute("cache.hit", false);
//! req.add_span_event("token checked", &[("jwt.kid", "k1".into())]);
//! ```
//!
//! Outbound calls the plugin makes through the host services during the
//! call (`host.http()`, `host.upstream()`) get client spans that are children
//! of this span, and carry its trace in `traceparent`.

use abi_stable::{
    StableAbi,
    std_types::{RString, Tuple2},
};

/// An attribute value: the OpenTelemetry scalar kinds.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// Text.
    Str(RString),
    /// A signed integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// An attribute as it crosses the boundary: key and value.
pub type FfiAttribute = Tuple2<RString, AttrValue>;

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::Str(v.into())
    }
}

impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::Str(v.into())
    }
}

impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}

impl From<u32> for AttrValue {
    fn from(v: u32) -> Self {
        AttrValue::Int(i64::from(v))
    }
}

impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        AttrValue::Float(v)
    }
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}
