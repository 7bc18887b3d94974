//! In-memory requests and responses for unit-testing a plugin without a host.
//!
//! ```
//! use covet_plugin_api::testing::TestRequest;
//! let mut req = TestRequest::get("/users/7").header("x-api-key", "k1").param("id", "7");
//! let view = req.view();
//! assert_eq!(view.header("X-Api-Key"), Some("k1"));
//! assert_eq!(view.param("id"), Some("7"));
//! ```
//!
//! The span of the plugin call is recorded in memory, so a test can assert
//! what the plugin set on it ([`TestRequest::span_attribute`],
//! [`TestRequest::span_events`]):
//!
//! ```
//! use covet_plugin_api::{AttrValue, testing::TestRequest};
//! let mut req = TestRequest::get("/").traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
//! let view = req.view();
//! view.set_span_attribute("tenant.id", "t1");
//! view.add_span_event("cache miss", &[("cache.key", "k".into())]);
//! assert_eq!(view.traceparent().as_deref(), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
//! drop(view);
//! assert_eq!(req.span_attribute("tenant.id"), Some(AttrValue::Str("t1".into())));
//! assert_eq!(req.span_events()[0].name, "cache miss");
//! ```

use std::cell::RefCell;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RNone, ROk, ROption, RResult, RSlice, RSome, RStr, RString, RVec},
};

use crate::{
    BodyStream, Header, HttpVersion, Request, ResponseMut,
    ffi::{BodyStreamBox, RequestOps, RequestOps_TO, ResponseOps, ResponseOps_TO},
    span::{AttrValue, FfiAttribute},
};

/// An event a plugin added to the span of its call.
#[derive(Debug, Clone, PartialEq)]
pub struct TestEvent {
    /// The event's name.
    pub name: String,
    /// Its attributes, in the order given.
    pub attributes: Vec<(String, AttrValue)>,
}

/// The span of the plugin call under test, recorded in memory.
#[derive(Debug, Clone, Default)]
struct TestSpan {
    /// Whether the plugin sees it as recorded.
    recording: bool,
    /// `traceparent` the plugin reads (`None`: tracing off).
    traceparent: Option<String>,
    attributes: Vec<(String, AttrValue)>,
    events: Vec<TestEvent>,
}

/// A request held in memory; [`TestRequest::view`] gives the plugin's view of it.
#[derive(Debug, Clone)]
pub struct TestRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Route parameters.
    pub params: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Metadata bag.
    pub metadata: Vec<(String, String)>,
    /// Client address.
    pub client_addr: String,
    /// The span of the plugin call: what the plugin set on it. Behind a
    /// `RefCell` because the span calls take `&self`, as on the host.
    span: RefCell<TestSpan>,
}

impl TestRequest {
    /// A `GET` for `uri` from `127.0.0.1:40000`.
    pub fn get(uri: &str) -> TestRequest {
        TestRequest {
            method: "GET".into(),
            uri: uri.into(),
            headers: Vec::new(),
            params: Vec::new(),
            body: Vec::new(),
            metadata: Vec::new(),
            client_addr: "127.0.0.1:40000".into(),
            span: RefCell::new(TestSpan { recording: true, ..TestSpan::default() }),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> TestRequest {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Adds a route parameter.
    pub fn param(mut self, name: &str, value: &str) -> TestRequest {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, key: &str, value: &str) -> TestRequest {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Sets the client address.
    pub fn client(mut self, addr: &str) -> TestRequest {
        self.client_addr = addr.into();
        self
    }

    /// Sets the `traceparent` the plugin reads from its span (by default
    /// none, as with tracing off).
    pub fn traceparent(self, traceparent: &str) -> TestRequest {
        self.span.borrow_mut().traceparent = Some(traceparent.into());
        self
    }

    /// Whether the plugin sees its span as recorded (default `true`, so
    /// what it sets is kept for assertions; `false`, as for an unsampled
    /// trace: the plugin's span calls are then ignored, as on the host).
    pub fn span_recording(self, recording: bool) -> TestRequest {
        self.span.borrow_mut().recording = recording;
        self
    }

    /// The value the plugin last set for span attribute `key` (for assertions).
    pub fn span_attribute(&self, key: &str) -> Option<AttrValue> {
        self.span.borrow().attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// Every span attribute the plugin set, one per key, in first-set order (for assertions).
    pub fn span_attributes(&self) -> Vec<(String, AttrValue)> {
        self.span.borrow().attributes.clone()
    }

    /// The events the plugin added to its span, in order (for assertions).
    pub fn span_events(&self) -> Vec<TestEvent> {
        self.span.borrow().events.clone()
    }

    /// The plugin's view of this request.
    pub fn view(&mut self) -> Request<'_> {
        Request::from_ffi(RequestOps_TO::from_ptr(self, TD_Opaque))
    }

    /// The first value of a header (for assertions).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// A metadata value (for assertions).
    pub fn get_metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn ropt(value: Option<&str>) -> ROption<RStr<'_>> {
    match value {
        Some(v) => RSome(RStr::from_str(v)),
        None => RNone,
    }
}

fn set(pairs: &mut Vec<(String, String)>, name: &str, value: &str) {
    pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    pairs.push((name.to_ascii_lowercase(), value.into()));
}

impl RequestOps for TestRequest {
    fn method(&self) -> RStr<'_> {
        self.method.as_str().into()
    }
    fn uri(&self) -> RStr<'_> {
        self.uri.as_str().into()
    }
    fn version(&self) -> HttpVersion {
        HttpVersion::Http11
    }
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        ropt(find(&self.headers, name.as_str()))
    }
    fn headers(&self) -> RVec<Header> {
        self.headers.iter().map(|(k, v)| Header::new(k.clone(), v.clone())).collect()
    }
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        set(&mut self.headers, name.as_str(), value.as_str());
        ROk(())
    }
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        self.headers.push((name.as_str().to_ascii_lowercase(), value.to_string()));
        ROk(())
    }
    fn remove_header(&mut self, name: RStr<'_>) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_str()));
    }
    fn client_addr(&self) -> RStr<'_> {
        self.client_addr.as_str().into()
    }
    fn param(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        ropt(self.params.iter().find(|(k, _)| k == name.as_str()).map(|(_, v)| v.as_str()))
    }
    fn route(&self) -> RStr<'_> {
        self.uri.as_str().into()
    }
    fn body(&self) -> RSlice<'_, u8> {
        self.body.as_slice().into()
    }
    fn metadata(&self, key: RStr<'_>) -> ROption<RStr<'_>> {
        ropt(self.get_metadata(key.as_str()))
    }
    fn set_metadata(&mut self, key: RStr<'_>, value: RStr<'_>) {
        self.metadata.retain(|(k, _)| k != key.as_str());
        self.metadata.push((key.to_string(), value.to_string()));
    }
    fn request_id(&self) -> RStr<'_> {
        "test-request".into()
    }
    fn take_body(&mut self) -> BodyStreamBox {
        BodyStream::from_bytes(std::mem::take(&mut self.body)).into_ffi()
    }
    fn set_body_stream(&mut self, body: BodyStreamBox) {
        self.body = block_on(BodyStream::from_ffi(body).collect(usize::MAX)).unwrap_or_default();
    }
    fn span_is_recording(&self) -> bool {
        self.span.borrow().recording
    }
    fn span_set_attribute(&self, key: RStr<'_>, value: AttrValue) {
        let mut span = self.span.borrow_mut();
        if !span.recording {
            return;
        }
        match span.attributes.iter_mut().find(|(k, _)| k == key.as_str()) {
            Some(kv) => kv.1 = value,
            None => span.attributes.push((key.to_string(), value)),
        }
    }
    fn span_add_event(&self, name: RStr<'_>, attributes: RVec<FfiAttribute>) {
        let mut span = self.span.borrow_mut();
        if span.recording {
            let attributes = attributes.into_iter().map(|kv| (kv.0.into_string(), kv.1)).collect();
            span.events.push(TestEvent { name: name.to_string(), attributes });
        }
    }
    fn traceparent(&self) -> ROption<RString> {
        self.span.borrow().traceparent.as_deref().map(RString::from).into()
    }
}

/// Runs a future to completion on this thread (parking it while the future
/// waits): for testing an [`crate::AsyncPlugin`]'s phases without a host.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(value) = fut.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park();
    }
}

/// A response held in memory; [`TestResponse::view`] gives `on_response`'s view of it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl TestResponse {
    /// A response with this status and no headers or body.
    pub fn new(status: u16) -> TestResponse {
        TestResponse { status, headers: Vec::new(), body: Vec::new() }
    }

    /// The plugin's view of this response.
    pub fn view(&mut self) -> ResponseMut<'_> {
        ResponseMut::from_ffi(ResponseOps_TO::from_ptr(self, TD_Opaque))
    }

    /// The first value of a header (for assertions).
    pub fn get_header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

impl ResponseOps for TestResponse {
    fn status(&self) -> u16 {
        self.status
    }
    fn set_status(&mut self, status: u16) -> RResult<(), RString> {
        self.status = status;
        ROk(())
    }
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        ropt(find(&self.headers, name.as_str()))
    }
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        set(&mut self.headers, name.as_str(), value.as_str());
        ROk(())
    }
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        self.headers.push((name.as_str().to_ascii_lowercase(), value.to_string()));
        ROk(())
    }
    fn remove_header(&mut self, name: RStr<'_>) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_str()));
    }
    fn body(&self) -> RSlice<'_, u8> {
        self.body.as_slice().into()
    }
    fn set_body(&mut self, body: RVec<u8>) {
        self.body = body.into_vec();
    }
    fn take_body(&mut self) -> BodyStreamBox {
        BodyStream::from_bytes(std::mem::take(&mut self.body)).into_ffi()
    }
    fn set_body_stream(&mut self, body: BodyStreamBox) {
        self.body = block_on(BodyStream::from_ffi(body).collect(usize::MAX)).unwrap_or_default();
    }
    fn headers(&self) -> RVec<Header> {
        self.headers.iter().map(|(k, v)| Header::new(k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrecorded_span_keeps_nothing_and_tracing_off_has_no_traceparent() {
        let mut req = TestRequest::get("/").span_recording(false);
        let view = req.view();
        assert!(!view.span_is_recording());
        view.set_span_attribute("k", 1i64);
        view.add_span_event("e", &[]);
        assert_eq!(view.traceparent(), None);
        drop(view);
        assert!(req.span_attributes().is_empty());
        assert!(req.span_events().is_empty());
    }

    #[test]
    fn an_attribute_set_twice_keeps_the_last_value() {
        let mut req = TestRequest::get("/");
        let view = req.view();
        view.set_span_attribute("k", 1i64);
        view.set_span_attribute("k", true);
        view.add_span_event("e", &[("n", 2.5.into())]);
        drop(view);
        assert_eq!(req.span_attributes(), vec![("k".to_owned(), AttrValue::Bool(true))]);
        assert_eq!(req.span_events(), vec![TestEvent { name: "e".into(), attributes: vec![("n".into(), AttrValue::Float(2.5))] }]);
    }
}
