//! The span calls of a native plugin (`RequestOps::span_*`, `traceparent`)
//! over the span of the plugin call in progress ([`Exchange::span`]):
//! [`AttrValue`]s become OpenTelemetry attributes. With tracing off (no
//! span) or an unsampled span, every call returns at once: nothing is
//! converted or allocated.
//!
//! [`Exchange::span`]: crate::exchange::Exchange::span

use abi_stable::std_types::{ROption, RStr, RString, RVec};
use covet_plugin_api::span::{AttrValue, FfiAttribute};
use covet_telemetry::{KeyValue, Span, Value};

/// Whether `span` keeps attributes and events.
pub(crate) fn is_recording(span: Option<&Span>) -> bool {
    span.is_some_and(Span::is_recording)
}

/// Sets `key = value` on `span` when it is recorded.
pub(crate) fn set_attribute(span: Option<&Span>, key: RStr<'_>, value: AttrValue) {
    if let Some(span) = span.filter(|s| s.is_recording()) {
        span.set_attribute(attribute(key.as_str(), value));
    }
}

/// Adds event `name` with `attributes` to `span` when it is recorded.
pub(crate) fn add_event(span: Option<&Span>, name: RStr<'_>, attributes: RVec<FfiAttribute>) {
    if let Some(span) = span.filter(|s| s.is_recording()) {
        let attributes = attributes.into_iter().map(|kv| attribute(kv.0.as_str(), kv.1)).collect();
        span.add_event(name.as_str().to_owned(), attributes);
    }
}

/// `span`'s `traceparent` (sampled or not); `RNone` with tracing off.
pub(crate) fn traceparent(span: Option<&Span>) -> ROption<RString> {
    match span {
        Some(span) => {
            let value = span.context().traceparent();
            // A traceparent is hex digits and dashes: always UTF-8.
            ROption::RSome(RString::from(value.to_str().unwrap_or_default()))
        }
        None => ROption::RNone,
    }
}

/// The OpenTelemetry attribute for `key` and a plugin's value.
pub(crate) fn attribute(key: &str, value: AttrValue) -> KeyValue {
    let value = match value {
        AttrValue::Str(s) => Value::from(s.into_string()),
        AttrValue::Int(i) => Value::I64(i),
        AttrValue::Float(f) => Value::F64(f),
        AttrValue::Bool(b) => Value::Bool(b),
    };
    KeyValue::new(key.to_owned(), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use covet_telemetry::{SpanContext, SpanId, TraceId};

    fn unrecorded() -> Span {
        let ctx = SpanContext { trace_id: TraceId::from(0xabcu128), span_id: SpanId::from(0x12u64), sampled: true, tracestate: None };
        Span::unrecorded(ctx)
    }

    #[test]
    fn each_value_kind_becomes_the_same_otel_kind() {
        assert_eq!(attribute("a", AttrValue::Str("x".into())), KeyValue::new("a", "x"));
        assert_eq!(attribute("b", AttrValue::Int(-7)), KeyValue::new("b", -7i64));
        assert_eq!(attribute("c", AttrValue::Float(1.5)), KeyValue::new("c", 1.5f64));
        assert_eq!(attribute("d", AttrValue::Bool(true)), KeyValue::new("d", true));
    }

    #[test]
    fn tracing_off_has_no_traceparent_and_records_nothing() {
        assert_eq!(traceparent(None), ROption::RNone);
        assert!(!is_recording(None));
        set_attribute(None, "k".into(), AttrValue::Int(1));
        add_event(None, "e".into(), RVec::new());
    }

    #[test]
    fn an_unsampled_span_still_has_its_traceparent() {
        let span = unrecorded();
        assert!(!is_recording(Some(&span)));
        let expected = "00-00000000000000000000000000000abc-0000000000000012-01";
        assert_eq!(traceparent(Some(&span)).into_option().unwrap().as_str(), expected);
    }
}
