//! Tracing from a plugin: attributes and events on the span of the current
//! plugin call. The host opens one span per plugin call (a child of the
//! request's server span, named `"{plugin} {phase}"`) and exports it over
//! OpenTelemetry when the trace is sampled; when it is not, these calls do
//! nothing and cost a virtual call. Check
//! [`Request::span_is_recording`](crate::Request::span_is_recording) before
//! computing a costly attribute.
//!
//! ```
//! # use covet_plugin_api::{Request, AttrValue};
//! fn annotate(req: &Request<'_>, tenant: &str) {
//!     req.set_span_attribute("tenant.id", tenant);
//!     req.set_span_attribute("cache.hit", false);
//!     req.set_span_attribute("items", 3i64);
//!     if req.span_is_recording() {
//!         let summary = format!("{} headers", req.headers().len());
//!         req.add_span_event("token checked", &[("jwt.kid", "k1".into()), ("summary", summary.into())]);
//!     }
//! }
//! ```
//!
//! What each call does, by the host's tracing state:
//!
//! | call | tracing off | unsampled trace | sampled, exported |
//! |---|---|---|---|
//! | `set_span_attribute`, `add_span_event` | nothing | nothing | kept on the span |
//! | `span_is_recording` | `false` | `false` | `true` |
//! | `traceparent` | `None` | `Some("00-…-00")` | `Some("00-…-01")` |
//!
//! An attribute set twice keeps the last value; a span keeps at most 128
//! attributes and 128 events (more are counted as dropped). Values are the
//! OpenTelemetry scalar kinds ([`AttrValue`]); `&str`, `String`, `i64`,
//! `u32`, `f64` and `bool` convert into one with `.into()`.
//!
//! Outbound calls the plugin makes through the host services during the
//! call (`host.http()`, `host.upstream()`) get client spans that are children
//! of this span (one per upstream attempt), and carry their own ids in
//! `traceparent`: the plugin does not set that header itself. Use
//! [`Request::traceparent`](crate::Request::traceparent) to propagate the
//! trace by other means (a message-queue header, a log line).
//!
//! In unit tests, [`TestRequest`](crate::testing::TestRequest) records the
//! span in memory: assert with `span_attribute`, `span_attributes` and
//! `span_events`; set what the plugin reads with `traceparent` and
//! `span_recording`.

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
