//! The host side of `covet:plugin/tracing@0.2.0`
//! (`plugin-api/wit/0.2.0/tracing.wit`): attributes and events on the span
//! of the plugin call in progress.
//!
//! The executors put a clone of the call's span (`Exchange::span`, set by
//! the pipeline; `None` while tracing is off) in the store's data for the
//! call ([`Ctx::set_span`]) and take it out when the call ends, so a reused
//! instance and a background tick never write to another call's span.
//! Without a span, or on an unsampled one, every function is a no-op that
//! costs the lifting of its arguments. Components that do not import the
//! interface are unaffected: an `InstancePre` resolves only the imports a
//! component has.

use covet_telemetry::{Key, KeyValue, Span, Value};

use self::covet::plugin::tracing::{AttributeValue, Host};
use super::sandbox::Ctx;

wasmtime::component::bindgen!({
    world: "covet:plugin/traced",
    path: "../plugin-api/wit/0.2.0",
});

/// Most attributes kept on one event (like the span's own limit).
const MAX_EVENT_ATTRIBUTES: usize = covet_telemetry::span::MAX_ATTRIBUTES;

impl Ctx {
    /// The span of the call in progress, when it records.
    fn recording(&self) -> Option<&Span> {
        self.span().filter(|span| span.is_recording())
    }
}

impl Host for Ctx {
    fn is_recording(&mut self) -> bool {
        self.recording().is_some()
    }

    fn set_attribute(&mut self, key: String, value: AttributeValue) {
        if let Some(span) = self.recording() {
            span.set_attribute(attribute(key, value));
        }
    }

    fn add_event(&mut self, name: String, attributes: Vec<(String, AttributeValue)>) {
        if let Some(span) = self.recording() {
            let attributes = attributes.into_iter().take(MAX_EVENT_ATTRIBUTES).map(|(k, v)| attribute(k, v)).collect();
            span.add_event(name, attributes);
        }
    }

    fn traceparent(&mut self) -> Option<String> {
        let value = self.span()?.context().traceparent();
        value.to_str().ok().map(str::to_owned)
    }
}

/// The OpenTelemetry attribute for a guest's key and value.
fn attribute(key: String, value: AttributeValue) -> KeyValue {
    let value = match value {
        AttributeValue::Str(text) => Value::from(text),
        AttributeValue::Int(n) => Value::I64(n),
        AttributeValue::Float(x) => Value::F64(x),
        AttributeValue::Bool(b) => Value::Bool(b),
    };
    KeyValue::new(Key::from(key), value)
}

#[cfg(test)]
mod tests {
    use covet_telemetry::{SpanContext, SpanId, TraceId};

    use super::*;

    #[test]
    fn each_kind_becomes_its_opentelemetry_value() {
        assert_eq!(attribute("k".into(), AttributeValue::Str("wasm".into())), KeyValue::new("k", "wasm"));
        assert_eq!(attribute("k".into(), AttributeValue::Int(-3)), KeyValue::new("k", -3i64));
        assert_eq!(attribute("k".into(), AttributeValue::Float(1.5)), KeyValue::new("k", 1.5));
        assert_eq!(attribute("k".into(), AttributeValue::Bool(true)), KeyValue::new("k", true));
    }

    #[test]
    fn without_a_span_the_calls_do_nothing_and_with_one_traceparent_names_it() {
        let sandbox = super::super::sandbox::Sandbox::new(
            "t",
            &Default::default(),
            super::super::services::WasmServices::none("t").unwrap(),
        );
        let engine = &super::super::engine::runtime().unwrap().engine;
        let mut store = sandbox.store(engine).unwrap();
        let ctx = store.data_mut();
        assert!(!ctx.is_recording());
        assert_eq!(ctx.traceparent(), None);
        ctx.set_attribute("fixture.kind".into(), AttributeValue::Str("wasm".into()));
        ctx.add_event("e".into(), vec![("n".into(), AttributeValue::Int(1))]);

        let context = SpanContext { trace_id: TraceId::from(7u128), span_id: SpanId::from(9u64), sampled: false, tracestate: None };
        ctx.set_span(Some(Span::unrecorded(context)));
        assert!(!ctx.is_recording(), "an unsampled span records nothing");
        assert_eq!(ctx.traceparent().as_deref(), Some("00-00000000000000000000000000000007-0000000000000009-00"));
        ctx.set_attribute("fixture.kind".into(), AttributeValue::Str("wasm".into()));
    }
}
