//! Bodies across the native ABI, both ways: [`HostBodyStream`] hands a
//! request or response body the host holds to a plugin as an FFI
//! `BodyStreamOps` object (each `Bytes` chunk crosses as a `Chunk` that owns
//! it: no copy), and [`FfiBody`] turns a plugin's stream back into an
//! `http_body::Body` the host reads or writes to the client (each `Chunk`
//! becomes a `Bytes` that owns it: no copy either). Trailers cross both
//! ways: a host body's trailers frame is kept and reported by
//! `BodyStreamOps::trailers`, and a plugin stream's trailers become a
//! trailers frame after its last chunk.
//!
//! `limits.max_body` is enforced as the request body streams: past it the
//! stream yields an error and raises the request's [`OverLimit`] flag, which
//! the service turns into a 413 when the response has not started.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, RNone, ROk, ROption, RResult, RSome, RString, RVec, Tuple2},
};
use bytes::Bytes;
use covet_plugin_api::{
    ffi::{
        BodyStreamBox, BodyStreamOps, BodyStreamOps_TO, Chunk,
        async_ffi::{ContextExt, FfiContext, FfiPoll},
    },
    host::ffi::FfiHeader,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::body::{Body, Frame, SizeHint};

use crate::exchange::BodyError;

/// Raised when a streamed request body passed `limits.max_body`.
pub type OverLimit = Arc<AtomicBool>;

type FfiChunk = FfiPoll<ROption<RResult<Chunk, RString>>>;

/// A host body as the plugin reads it.
pub struct HostBodyStream {
    body: UnsyncBoxBody<Bytes, BodyError>,
    /// Bytes still allowed, and the flag to raise when they run out.
    limit: Option<(u64, u64, OverLimit)>,
    done: bool,
    /// The trailers frame that ended the body, until the plugin asks.
    trailers: Option<HeaderMap>,
}

impl HostBodyStream {
    /// `body`, unlimited (a response body, or a request body already checked).
    pub fn new(body: UnsyncBoxBody<Bytes, BodyError>) -> HostBodyStream {
        HostBodyStream { body, limit: None, done: false, trailers: None }
    }

    /// `body`, broken off past `max` bytes (raising `over`).
    pub fn limited(body: UnsyncBoxBody<Bytes, BodyError>, max: u64, over: OverLimit) -> HostBodyStream {
        HostBodyStream { body, limit: Some((max, max, over)), done: false, trailers: None }
    }

    /// Boxed as the FFI object.
    pub fn into_ffi(self) -> BodyStreamBox {
        BodyStreamOps_TO::from_value(self, TD_Opaque)
    }

    /// One buffer as an FFI stream (a buffered body a plugin takes).
    pub fn once(bytes: Bytes) -> BodyStreamBox {
        HostBodyStream::new(http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync()).into_ffi()
    }

    fn charge(&mut self, len: usize) -> Result<(), String> {
        let Some((max, left, over)) = &mut self.limit else { return Ok(()) };
        match left.checked_sub(len as u64) {
            Some(rest) => {
                *left = rest;
                Ok(())
            }
            None => {
                over.store(true, Ordering::Release);
                Err(format!("request body larger than limits.max_body ({max} bytes)"))
            }
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        loop {
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.to_string()))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.trailers.get_or_insert_with(HeaderMap::new).extend(trailers);
                    }
                    continue;
                }
            };
            if data.is_empty() {
                continue;
            }
            return Poll::Ready(Some(self.charge(data.len()).map(|()| data)));
        }
    }
}

impl BodyStreamOps for HostBodyStream {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> FfiChunk {
        if self.done {
            return FfiPoll::Ready(RNone);
        }
        match cx.with_context(|cx| self.poll_next(cx)) {
            Poll::Pending => FfiPoll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                FfiPoll::Ready(RNone)
            }
            Poll::Ready(Some(Ok(data))) => FfiPoll::Ready(RSome(ROk(Chunk::from_owner(data)))),
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                FfiPoll::Ready(RSome(RErr(e.into())))
            }
        }
    }

    fn size_hint(&self) -> ROption<u64> {
        self.body.size_hint().exact().into()
    }

    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        self.trailers.take().map(|map| trailers_to_ffi(&map)).into()
    }
}

/// Trailer fields as they cross to a plugin.
fn trailers_to_ffi(map: &HeaderMap) -> RVec<FfiHeader> {
    map.iter().map(|(name, value)| Tuple2(RString::from(name.as_str()), RVec::from(value.as_bytes()))).collect()
}

/// A plugin's trailer fields as a header map; an invalid name or value is
/// dropped (logged), as nothing invalid may reach the wire.
fn trailers_from_ffi(fields: RVec<FfiHeader>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(fields.len());
    for Tuple2(name, value) in fields {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::debug!(name = %name, "dropping an invalid trailer field from a plugin's body"),
        }
    }
    map
}

/// A plugin's body stream as an `http_body::Body`: its chunks, then its
/// trailers (when it has some) as a trailers frame.
pub struct FfiBody(BodyStreamBox, bool);

// Nothing is pinned structurally: the stream lives behind its RBox and is
// only called through `&mut` (abi_stable just does not declare it `Unpin`).
impl Unpin for FfiBody {}

impl FfiBody {
    /// Wraps the stream.
    pub fn new(stream: BodyStreamBox) -> FfiBody {
        FfiBody(stream, false)
    }

    /// The stream, to hand to a plugin again.
    pub fn into_inner(self) -> BodyStreamBox {
        self.0
    }
}

impl Body for FfiBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.1 {
            return Poll::Ready(None);
        }
        let stream = &mut this.0;
        match cx.with_ffi_context(|ffi| stream.poll_chunk(ffi)) {
            FfiPoll::Pending => Poll::Pending,
            FfiPoll::Ready(RNone) => {
                this.1 = true;
                match this.0.trailers() {
                    RSome(fields) => Poll::Ready(Some(Ok(Frame::trailers(trailers_from_ffi(fields))))),
                    RNone => Poll::Ready(None),
                }
            }
            FfiPoll::Ready(RSome(ROk(chunk))) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_owner(chunk))))),
            FfiPoll::Ready(RSome(RErr(e))) => Poll::Ready(Some(Err(e.into_string().into()))),
            FfiPoll::Panicked => Poll::Ready(Some(Err("the plugin's body stream panicked".into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.1
    }

    fn size_hint(&self) -> SizeHint {
        match self.0.size_hint() {
            RSome(n) => SizeHint::with_exact(n),
            RNone => SizeHint::default(),
        }
    }
}
