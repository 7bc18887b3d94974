//! The host's in-flight request ([`Exchange`]) and response ([`HostResponse`]),
//! and the views plugins get of them (`RequestOps` / `ResponseOps`).
//!
//! Plugins read straight from these structs through the FFI views: a header
//! lookup is a `HeaderMap::get`, no copy. Edits are validated here, so a
//! plugin can never put an invalid header on the wire.

use std::{net::SocketAddr, sync::Arc};

use arc_swap::ArcSwapOption;
use abi_stable::std_types::{RErr, RNone, ROk, ROption, RResult, RSlice, RSome, RStr, RString, RVec};
use bytes::Bytes;
use covet_plugin_api::{
    Body, Header, Headers, HttpVersion, Response,
    ffi::{BodyStreamBox, RequestOps, ResponseOps},
    span::{AttrValue, FfiAttribute},
};
use crate::{
    metadata::Metadata,
    runtime::native::body::{FfiBody, HostBodyStream, OverLimit},
    runtime::native::span,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};

/// A request on its way through the pipeline.
pub struct Exchange {
    /// Method.
    pub method: Method,
    /// Request target.
    pub uri: Uri,
    /// Protocol version.
    pub version: Version,
    /// Headers (plugins may edit them).
    pub headers: HeaderMap,
    /// The client's address, formatted once per connection.
    pub client: Arc<str>,
    /// The matched route's pattern.
    pub route: Arc<str>,
    /// Route parameters.
    pub params: Vec<(String, String)>,
    /// The buffered body (empty when the body is streamed: see `body_stream`).
    pub body: Bytes,
    /// The unread request body, for a route that streams it (an ASGI handler
    /// with `request_body: stream`, or a chain of native plugins that all
    /// declare `BodyMode::Stream`), or a body a filter replaced with a
    /// stream; `None` otherwise. Plugins that read `body` see it empty then.
    pub body_stream: Option<Box<RequestBody>>,
    /// Metadata set by plugins.
    pub metadata: Metadata,
    /// The request id (visible ASCII).
    pub request_id: HeaderValue,
    /// The span of the plugin call in progress (set by the pipeline around
    /// each phase call); `None` when tracing is off.
    pub span: Option<covet_telemetry::Span>,
}

impl Exchange {
    /// The exchange of a routed request: its head, the matched route
    /// `route` and its `params`, the body read so far (or `body_stream`, the
    /// stream to read it from) and its id. No metadata yet, no span.
    pub fn from_parts(
        parts: http::request::Parts,
        client: Arc<str>,
        route: Arc<str>,
        params: Vec<(String, String)>,
        body: Bytes,
        body_stream: Option<Box<RequestBody>>,
        request_id: HeaderValue,
    ) -> Exchange {
        Exchange {
            method: parts.method,
            uri: with_root_path(parts.uri),
            version: parts.version,
            headers: parts.headers,
            client,
            route,
            params,
            body,
            body_stream,
            metadata: Metadata::default(),
            request_id,
            span: None,
        }
    }

    /// The request id as text.
    pub fn id(&self) -> &str {
        crate::request_id::as_str(&self.request_id)
    }

    /// A metadata value.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata.get(key)
    }
}

/// `uri`, with the path `/` when it has a query but no path (`http://h?q`
/// in absolute form): an empty path is `/` (RFC 9110 §4.2.3), and plugins
/// read the target as path plus query (the proxy forwards it as is).
fn with_root_path(uri: Uri) -> Uri {
    let target = match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('?') => format!("/{}", pq.as_str()),
        _ => return uri,
    };
    let mut parts = uri.into_parts();
    parts.path_and_query = target.parse().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// An error reading a request body.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request body not read yet (HTTP/1 and HTTP/2: hyper's; HTTP/3: one
/// buffered chunk) and the limit on its size. The mutex only makes it
/// `Sync`; the one reader takes the body out with [`RequestBody::into_parts`].
pub struct RequestBody {
    body: std::sync::Mutex<http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>>,
    max: u64,
    over: Option<OverLimit>,
}

impl RequestBody {
    /// `body`, to be cut off past `max` bytes.
    pub fn new<B>(body: B, max: u64) -> RequestBody
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BodyError>,
    {
        use http_body_util::BodyExt;
        RequestBody { body: std::sync::Mutex::new(body.map_err(Into::into).boxed_unsync()), max, over: None }
    }

    /// Like [`RequestBody::new`]; a native plugin reading past `max` raises `over`.
    pub fn limited<B>(body: B, max: u64, over: OverLimit) -> RequestBody
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BodyError>,
    {
        RequestBody { over: Some(over), ..RequestBody::new(body, max) }
    }

    /// The body and its limit.
    pub fn into_parts(self) -> (http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>, u64) {
        (self.body.into_inner().unwrap_or_else(|p| p.into_inner()), self.max)
    }

    /// The body as a native plugin reads it: chunk by chunk, cut off past the limit.
    pub fn into_ffi(self) -> BodyStreamBox {
        let over = self.over.clone().unwrap_or_default();
        let (body, max) = self.into_parts();
        HostBodyStream::limited(body, max, over).into_ffi()
    }
}

/// Formats a client address once per connection.
pub fn client_string(addr: SocketAddr) -> Arc<str> {
    Arc::from(addr.to_string())
}

/// A response on its way back to the client.
#[derive(Debug, Clone)]
pub struct HostResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (with `stream`: the chunk sent before the stream's chunks).
    pub body: Bytes,
    /// The rest of a streaming body (an ASGI app sending `more_body`), written
    /// to the client chunk by chunk as the plugin produces it.
    pub stream: Option<BodyStream>,
}

/// One chunk of a streaming body, or why the stream broke off.
pub type Chunk = Result<Bytes, String>;

/// `data` holding `permit` until hyper has written and dropped it: how a
/// producer (a WASM guest's body, an ASGI app's `send`) keeps at most a
/// semaphore's worth of bytes between itself and a slow client.
pub fn held_chunk(data: Bytes, permit: tokio::sync::OwnedSemaphorePermit) -> Bytes {
    Bytes::from_owner(Held { data, _permit: permit })
}

/// A chunk and its share of a producer's in-flight budget (see [`held_chunk`]).
struct Held {
    data: Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// The receiving end of a streaming body. Cloning shares it: whoever takes it
/// first writes it.
#[derive(Clone)]
pub struct BodyStream {
    source: Arc<std::sync::Mutex<Option<StreamSource>>>,
}

/// Where a streaming body's chunks come from.
pub enum StreamSource {
    /// Chunks pushed on a channel (an ASGI app sending `more_body`); `guard`
    /// is dropped with the body (it tells the producer that the client went
    /// away, or that the response was written).
    Channel(tokio::sync::mpsc::UnboundedReceiver<Chunk>, Arc<dyn Send + Sync>),
    /// A native plugin's stream, pulled as the client takes the bytes.
    Plugin(FfiBody),
}

impl BodyStream {
    /// A stream of the chunks sent on `rx`; `guard` lives as long as the body.
    pub fn new(rx: tokio::sync::mpsc::UnboundedReceiver<Chunk>, guard: Arc<dyn Send + Sync>) -> BodyStream {
        BodyStream::from_source(StreamSource::Channel(rx, guard))
    }

    /// A native plugin's stream.
    pub fn from_ffi(stream: BodyStreamBox) -> BodyStream {
        BodyStream::from_source(StreamSource::Plugin(FfiBody::new(stream)))
    }

    fn from_source(source: StreamSource) -> BodyStream {
        BodyStream { source: Arc::new(std::sync::Mutex::new(Some(source))) }
    }

    /// Takes the source (once).
    pub fn take(&self) -> Option<StreamSource> {
        self.source.lock().ok()?.take()
    }
}

impl StreamSource {
    /// The source as an FFI stream for a plugin, after `first` (the buffered head).
    fn into_ffi(self, first: Bytes) -> BodyStreamBox {
        use http_body_util::BodyExt;
        let empty = first.is_empty();
        let head = http_body_util::Full::new(first).map_err(|never| -> BodyError { match never {} });
        let rest = match self {
            StreamSource::Plugin(body) if empty => return body_ffi(body),
            StreamSource::Plugin(body) => body.boxed_unsync(),
            StreamSource::Channel(rx, guard) => ChannelBody { rx, _guard: guard }.boxed_unsync(),
        };
        HostBodyStream::new(Chain { head: Some(head), rest }.boxed_unsync()).into_ffi()
    }
}

/// A plugin's stream handed back to a plugin as is (no wrapping).
fn body_ffi(body: FfiBody) -> BodyStreamBox {
    body.into_inner()
}

/// An ASGI channel as an `http_body::Body`.
struct ChannelBody {
    rx: tokio::sync::mpsc::UnboundedReceiver<Chunk>,
    _guard: Arc<dyn Send + Sync>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        self.get_mut().rx.poll_recv(cx).map(|chunk| chunk.map(|c| c.map(hyper::body::Frame::data).map_err(Into::into)))
    }
}

/// A buffered head followed by the rest of a body.
struct Chain<H> {
    head: Option<H>,
    rest: http_body_util::combinators::UnsyncBoxBody<Bytes, BodyError>,
}

impl<H: hyper::body::Body<Data = Bytes, Error = BodyError> + Unpin> hyper::body::Body for Chain<H> {
    type Data = Bytes;
    type Error = BodyError;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(head) = &mut this.head {
            match std::pin::Pin::new(head).poll_frame(cx) {
                std::task::Poll::Ready(None) => this.head = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut this.rest).poll_frame(cx)
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyStream")
    }
}

impl HostResponse {
    /// An empty response.
    pub fn new(status: StatusCode) -> HostResponse {
        HostResponse { status, headers: HeaderMap::new(), body: Bytes::new(), stream: None }
    }

    /// Converts a plugin's response, refusing invalid status codes and headers.
    pub fn from_plugin(resp: Response) -> Result<HostResponse, String> {
        let status = StatusCode::from_u16(resp.status).map_err(|_| format!("invalid status code {}", resp.status))?;
        // Room for what the host adds later (x-request-id, content-length).
        let mut headers = header_map(resp.headers.len() + 2);
        for h in resp.headers.iter() {
            let (name, value) = parse_header(h.name.as_str(), h.value.as_str())?;
            headers.append(name, value);
        }
        // Zero copy: the plugin's reference-counted body becomes the Bytes
        // hyper writes (a cdylib is never unloaded, so its deallocator stays valid).
        let stream = resp.stream.take().map(|s| BodyStream::from_ffi(s.into_ffi()));
        let body = if resp.body.is_empty() { Bytes::new() } else { Bytes::from_owner(resp.body) };
        Ok(HostResponse { status, headers, body, stream })
    }
}

/// The last prebuilt response a handler returned, already converted: a
/// handler that answers with the same shared `Headers` and `Body` every time
/// (static content) skips header parsing and body wrapping after the first.
#[derive(Default)]
pub struct ConvertCache {
    last: ArcSwapOption<Converted>,
}

struct Converted {
    headers: Headers,
    map: HeaderMap,
    body: Body,
    bytes: Bytes,
}

impl HostResponse {
    /// Like [`HostResponse::from_plugin`], through `cache` for shared responses.
    pub fn from_plugin_cached(resp: Response, cache: &ConvertCache) -> Result<HostResponse, String> {
        if !(resp.headers.is_shared() && resp.body.is_shared()) || resp.stream.is_set() {
            return HostResponse::from_plugin(resp);
        }
        if let Some(hit) = cache.last.load().as_ref()
            && hit.headers.same(&resp.headers)
            && hit.body.same(&resp.body)
        {
            let status = StatusCode::from_u16(resp.status).map_err(|_| format!("invalid status code {}", resp.status))?;
            let mut headers = header_map(hit.map.len() + 2);
            for (name, value) in &hit.map {
                headers.append(name.clone(), value.clone());
            }
            return Ok(HostResponse { status, headers, body: hit.bytes.clone(), stream: None });
        }
        let converted = HostResponse::from_plugin(resp.clone())?;
        let entry = Converted { headers: resp.headers, map: converted.headers.clone(), body: resp.body, bytes: converted.body.clone() };
        cache.last.store(Some(Arc::new(entry)));
        Ok(converted)
    }
}

/// Cleared header maps of finished requests, per thread, for the next
/// responses: a response's map then costs no allocation. hyper hands a
/// written response's map back as the next request's, and the service
/// returns that here when the request ends ([`recycle_headers`]).
const SPARE_MAPS: usize = 4;

/// A map that grew past this many headers is dropped, not kept: clearing it
/// walks all its slots.
const SPARE_MAP_MAX_CAPACITY: usize = 48;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<HeaderMap>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty header map with room for `capacity` headers: a spare one when
/// this thread has one.
pub(crate) fn header_map(capacity: usize) -> HeaderMap {
    match SPARE.with_borrow_mut(Vec::pop) {
        Some(mut map) => {
            map.reserve(capacity);
            map
        }
        None => HeaderMap::with_capacity(capacity),
    }
}

/// Keeps `map` (a finished request's headers), cleared, for a later response.
pub fn recycle_headers(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > SPARE_MAP_MAX_CAPACITY {
        return;
    }
    map.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARE_MAPS {
            spare.push(map);
        }
    });
}

fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = header_name(name)?;
    let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
    Ok((name, value))
}

/// Header names plugins have set, per thread: parsing a custom name (say
/// `ratelimit-remaining`) allocates, and the same few names come back on
/// every request. A clone of a cached name only bumps a reference count.
const NAME_CACHE_SIZE: usize = 64;

thread_local! {
    /// Each name as the plugin spelled it (lower case), and its parsed form.
    static NAMES: std::cell::RefCell<Vec<(Box<str>, HeaderName)>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn header_name(name: &str) -> Result<HeaderName, String> {
    NAMES.with_borrow_mut(|names| {
        // Lengths first: most cached names differ in length, and comparing
        // `HeaderName::as_str()` cost a match on its representation per entry.
        if let Some((_, known)) = names.iter().find(|(text, _)| text.len() == name.len() && **text == *name) {
            return Ok(known.clone());
        }
        let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        if names.len() < NAME_CACHE_SIZE && parsed.as_str() == name {
            names.push((name.into(), parsed.clone()));
        }
        Ok(parsed)
    })
}

fn ropt(value: Option<&str>) -> ROption<RStr<'_>> {
    match value {
        Some(v) => RSome(RStr::from_str(v)),
        None => RNone,
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: RStr<'_>) -> ROption<RStr<'a>> {
    ropt(headers.get(name.as_str()).and_then(|v| v.to_str().ok()))
}

fn set_header(headers: &mut HeaderMap, name: RStr<'_>, value: RStr<'_>, append: bool) -> RResult<(), RString> {
    match parse_header(name.as_str(), value.as_str()) {
        Ok((n, v)) if append => {
            headers.append(n, v);
            ROk(())
        }
        Ok((n, v)) => {
            headers.insert(n, v);
            ROk(())
        }
        Err(e) => RErr(e.into()),
    }
}

/// Removes every field named `name` (any case). Looked up by `&str`, which
/// http lowers and hashes on the stack: parsing a `HeaderName` first
/// allocated a copy of any name it does not know (~430 instructions for a
/// no-op removal). An invalid name matches nothing.
fn remove_header(headers: &mut HeaderMap, name: RStr<'_>) {
    headers.remove(name.as_str());
}

fn api_version(version: Version) -> HttpVersion {
    match version {
        Version::HTTP_10 | Version::HTTP_09 => HttpVersion::Http10,
        Version::HTTP_2 => HttpVersion::Http2,
        Version::HTTP_3 => HttpVersion::Http3,
        _ => HttpVersion::Http11,
    }
}

impl RequestOps for Exchange {
    fn method(&self) -> RStr<'_> {
        self.method.as_str().into()
    }
    fn uri(&self) -> RStr<'_> {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str()).into()
    }
    fn version(&self) -> HttpVersion {
        api_version(self.version)
    }
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        header_str(&self.headers, name)
    }
    fn headers(&self) -> RVec<Header> {
        let utf8 = self.headers.iter().filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)));
        utf8.map(|(n, v)| Header::new(n, v)).collect()
    }
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        set_header(&mut self.headers, name, value, false)
    }
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        set_header(&mut self.headers, name, value, true)
    }
    fn remove_header(&mut self, name: RStr<'_>) {
        remove_header(&mut self.headers, name)
    }
    fn client_addr(&self) -> RStr<'_> {
        (*self.client).into()
    }
    fn param(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        ropt(self.params.iter().find(|(k, _)| k == name.as_str()).map(|(_, v)| v.as_str()))
    }
    fn route(&self) -> RStr<'_> {
        (*self.route).into()
    }
    fn body(&self) -> RSlice<'_, u8> {
        self.body.as_ref().into()
    }
    fn metadata(&self, key: RStr<'_>) -> ROption<RStr<'_>> {
        ropt(self.metadata_value(key.as_str()))
    }
    fn set_metadata(&mut self, key: RStr<'_>, value: RStr<'_>) {
        self.metadata.set(key.as_str(), value.as_str());
    }
    fn request_id(&self) -> RStr<'_> {
        crate::request_id::as_str(&self.request_id).into()
    }
    fn take_body(&mut self) -> BodyStreamBox {
        match self.body_stream.take() {
            Some(unread) => unread.into_ffi(),
            None => HostBodyStream::once(std::mem::take(&mut self.body)),
        }
    }
    fn set_body_stream(&mut self, body: BodyStreamBox) {
        self.body = Bytes::new();
        self.body_stream = Some(Box::new(RequestBody::new(FfiBody::new(body), u64::MAX)));
    }
    fn span_is_recording(&self) -> bool {
        span::is_recording(self.span.as_ref())
    }
    fn span_set_attribute(&self, key: RStr<'_>, value: AttrValue) {
        span::set_attribute(self.span.as_ref(), key, value)
    }
    fn span_add_event(&self, name: RStr<'_>, attributes: RVec<FfiAttribute>) {
        span::add_event(self.span.as_ref(), name, attributes)
    }
    fn traceparent(&self) -> ROption<RString> {
        span::traceparent(self.span.as_ref())
    }
}

impl ResponseOps for HostResponse {
    fn status(&self) -> u16 {
        self.status.as_u16()
    }
    fn set_status(&mut self, status: u16) -> RResult<(), RString> {
        match StatusCode::from_u16(status) {
            Ok(s) => {
                self.status = s;
                ROk(())
            }
            Err(_) => RErr(format!("invalid status code {status}").into()),
        }
    }
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        header_str(&self.headers, name)
    }
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        set_header(&mut self.headers, name, value, false)
    }
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString> {
        set_header(&mut self.headers, name, value, true)
    }
    fn remove_header(&mut self, name: RStr<'_>) {
        remove_header(&mut self.headers, name)
    }
    fn body(&self) -> RSlice<'_, u8> {
        self.body.as_ref().into()
    }
    fn set_body(&mut self, body: RVec<u8>) {
        self.body = Bytes::from(body.into_vec());
        self.stream = None;
        self.headers.remove(header::CONTENT_LENGTH);
    }
    fn take_body(&mut self) -> BodyStreamBox {
        let first = std::mem::take(&mut self.body);
        self.headers.remove(header::CONTENT_LENGTH);
        match self.stream.take().and_then(|s| s.take()) {
            Some(source) => source.into_ffi(first),
            None => HostBodyStream::once(first),
        }
    }
    fn set_body_stream(&mut self, body: BodyStreamBox) {
        self.body = Bytes::new();
        self.stream = Some(BodyStream::from_ffi(body));
        self.headers.remove(header::CONTENT_LENGTH);
    }
    fn headers(&self) -> RVec<Header> {
        let utf8 = self.headers.iter().filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)));
        utf8.map(|(n, v)| Header::new(n, v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prebuilt(body: &str) -> Response {
        Response::text(200, body).with_header("x-a", "1")
    }

    #[test]
    fn a_shared_response_converts_the_same_through_the_cache() {
        let cache = ConvertCache::default();
        let kept = prebuilt("hello");
        let first = HostResponse::from_plugin_cached(kept.clone(), &cache).unwrap();
        let second = HostResponse::from_plugin_cached(kept.clone(), &cache).unwrap();
        assert_eq!((first.status, &first.headers, &first.body), (second.status, &second.headers, &second.body));
        assert_eq!(second.body, "hello");
        assert_eq!(second.headers["x-a"], "1");
    }

    #[test]
    fn removal_ignores_case_and_an_invalid_name_removes_nothing() {
        let mut map = HeaderMap::new();
        map.append("x-custom", HeaderValue::from_static("1"));
        map.append("x-custom", HeaderValue::from_static("2"));
        map.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_header(&mut map, RStr::from_str("bad name\n"));
        remove_header(&mut map, RStr::from_str("x-absent"));
        assert_eq!(map.len(), 3);
        remove_header(&mut map, RStr::from_str("X-Custom"));
        remove_header(&mut map, RStr::from_str("ACCEPT"));
        assert!(map.is_empty(), "{map:?}");
    }

    #[test]
    fn a_recycled_map_comes_back_empty() {
        let mut used = HeaderMap::with_capacity(8);
        used.insert(header::HOST, HeaderValue::from_static("a.example"));
        used.append("x-b", HeaderValue::from_static("1"));
        used.append("x-b", HeaderValue::from_static("2"));
        recycle_headers(used);
        let resp = HostResponse::from_plugin(prebuilt("hello")).unwrap();
        assert_eq!(resp.headers.len(), 2, "{:?}", resp.headers);
        assert_eq!(resp.headers["x-a"], "1");
        assert!(resp.headers.get(header::HOST).is_none() && resp.headers.get("x-b").is_none());
    }

    #[test]
    fn another_response_is_not_answered_from_the_cache() {
        let cache = ConvertCache::default();
        let a = prebuilt("a");
        let b = prebuilt("b");
        HostResponse::from_plugin_cached(a.clone(), &cache).unwrap();
        assert_eq!(HostResponse::from_plugin_cached(b.clone(), &cache).unwrap().body, "b");
        let fresh = HostResponse::from_plugin_cached(Response::text(201, "new"), &cache).unwrap();
        assert_eq!((fresh.status.as_u16(), &fresh.body[..]), (201, &b"new"[..]));
    }

    #[test]
    fn a_target_with_a_query_but_no_path_gets_the_root_path() {
        // Found by the wit_request fuzz target: `http://h?q` made uri() `?q`.
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.uri = Uri::from_static("http://example.com?a=1");
        let ex = Exchange::from_parts(parts, "192.0.2.1:1".into(), "/".into(), Vec::new(), Bytes::new(), None, HeaderValue::from_static("id"));
        assert_eq!(RequestOps::uri(&ex).as_str(), "/?a=1");
        assert_eq!((ex.uri.path(), ex.uri.query(), ex.uri.host()), ("/", Some("a=1"), Some("example.com")));
    }
}
