//! Tracing from a plugin (`covet:plugin/tracing@0.2.0`): attributes and
//! events on the span the host opened for the call in progress (one per
//! phase call, `"{plugin} {phase}"`, a child of the request's server span).
//!
//! When tracing is off, the trace is not sampled, or outside a request (a
//! background tick), the calls do nothing; check [`is_recording`] before
//! computing a costly attribute. Outbound `wasi:http` requests made during
//! the call carry the trace by themselves (the host injects `traceparent`).
//!
//! ```ignore
//! use covet_guest::tracing;
//!
//! tracing::set_attribute("tenant.id", tenant.as_str());
//! tracing::set_attribute("cache.hit", false);
//! tracing::add_event("token checked", &[("jwt.kid", "k1".into())]);
//! if let Some(tp) = tracing::traceparent() {
//!     req.set_metadata("traceparent", &tp); // pass the trace on by hand
//! }
//! ```
//!
//! Only the functions a plugin calls are imported, so a component built
//! with this crate that never calls them loads on any covet host.

mod bindings {
    wit_bindgen::generate!({
        world: "covet:plugin/traced",
        path: "../../plugin-api/wit/0.2.0",
    });
}

use bindings::covet::plugin::tracing as wit;

pub use wit::AttributeValue;

/// Whether attributes and events set now are kept (tracing on, the trace
/// sampled and exported).
pub fn is_recording() -> bool {
    wit::is_recording()
}

/// Sets an attribute on the call's span (replacing one with the same key).
pub fn set_attribute(key: &str, value: impl Into<AttributeValue>) {
    wit::set_attribute(key, &value.into());
}

/// Adds an event, timestamped now, with its attributes.
pub fn add_event(name: &str, attributes: &[(&str, AttributeValue)]) {
    let attributes: Vec<(String, AttributeValue)> = attributes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    wit::add_event(name, &attributes);
}

/// The call's span as a W3C `traceparent` (sampled or not), to pass the
/// trace on by hand; `None` when tracing is off or outside a request.
pub fn traceparent() -> Option<String> {
    wit::traceparent()
}

impl From<&str> for AttributeValue {
    fn from(v: &str) -> Self {
        AttributeValue::Str(v.to_owned())
    }
}

impl From<String> for AttributeValue {
    fn from(v: String) -> Self {
        AttributeValue::Str(v)
    }
}

impl From<i64> for AttributeValue {
    fn from(v: i64) -> Self {
        AttributeValue::Int(v)
    }
}

impl From<i32> for AttributeValue {
    fn from(v: i32) -> Self {
        AttributeValue::Int(i64::from(v))
    }
}

impl From<u32> for AttributeValue {
    fn from(v: u32) -> Self {
        AttributeValue::Int(i64::from(v))
    }
}

impl From<f64> for AttributeValue {
    fn from(v: f64) -> Self {
        AttributeValue::Float(v)
    }
}

impl From<bool> for AttributeValue {
    fn from(v: bool) -> Self {
        AttributeValue::Bool(v)
    }
}
