//! `_covet_host.Span`: the span of one plugin call, as Python holds it
//! (the Rust half of `covet.trace`).
//!
//! An executor makes one only when the call has a span (`Exchange.span` is
//! `Some`: tracing is on), on the Python thread, and hands it to the
//! bridge, which puts it in the `covet.trace` context variable for that
//! call (a sync call: set and reset around it; a coroutine or an ASGI app:
//! set inside the request's own task context, so it follows every await
//! and never reaches another request). With tracing off nothing is made:
//! the bridge gets `None` and `covet.trace` calls are no-ops.
//!
//! The Python side checks argument types (clear `TypeError`s even with
//! tracing off); the conversions here check again, since the class is
//! reachable from Python.

use covet_telemetry::{KeyValue, Value};
use pyo3::{
    exceptions::{PyOverflowError, PyTypeError},
    prelude::*,
    types::{PyBool, PyFloat, PyInt, PyString},
};

/// The span of the plugin call in progress (a clone: the pipeline ends it).
#[pyclass(module = "_covet_host", name = "Span", frozen)]
pub struct PySpan(pub covet_telemetry::Span);

impl PySpan {
    /// A Python object for `span`, or `None` when the call has no span.
    pub fn wrap(py: Python<'_>, span: Option<&covet_telemetry::Span>) -> PyResult<Option<Py<PySpan>>> {
        span.map(|s| Py::new(py, PySpan(s.clone()))).transpose()
    }

    /// The span inside a Python `Span` (a host service call's `span=` argument).
    pub fn inner(span: Option<PyRef<'_, PySpan>>) -> Option<covet_telemetry::Span> {
        span.map(|s| s.0.clone())
    }
}

/// An attribute value: str, int (64-bit), float or bool.
fn value(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        return value
            .extract::<i64>()
            .map(Value::I64)
            .map_err(|_| PyOverflowError::new_err(format!("span attribute {key:?}: int {value} does not fit in 64 bits")));
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned().into()));
    }
    let kind = value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    Err(PyTypeError::new_err(format!("span attribute {key:?} must be str, int, float or bool, got {kind}")))
}

#[pymethods]
impl PySpan {
    /// Whether attributes and events set now are kept (sampled, exported, not ended).
    fn is_recording(&self) -> bool {
        self.0.is_recording()
    }

    /// Sets `key` (replacing an earlier value) to a str, int, float or bool.
    fn set_attribute(&self, key: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.0.is_recording() {
            return Ok(());
        }
        let value = self::value(key, value)?;
        self.0.set_attribute(KeyValue::new(key.to_owned(), value));
        Ok(())
    }

    /// Adds event `name`, timestamped now, with `attributes` (key, value) pairs.
    fn add_event(&self, name: &str, attributes: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<()> {
        if !self.0.is_recording() {
            return Ok(());
        }
        let attributes =
            attributes.iter().map(|(k, v)| Ok(KeyValue::new(k.clone(), value(k, v)?))).collect::<PyResult<Vec<_>>>()?;
        self.0.add_event(name.to_owned(), attributes);
        Ok(())
    }

    /// The W3C `traceparent` of this span (also when it is not sampled).
    fn traceparent(&self) -> String {
        String::from_utf8_lossy(self.0.context().traceparent().as_bytes()).into_owned()
    }

    fn __repr__(&self) -> String {
        format!("<covet span {}>", self.traceparent())
    }
}
