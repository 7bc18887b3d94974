//! Streaming bodies: the FFI [`Chunk`] (bytes owned by whichever side made
//! them, released through a drop function, so a chunk crosses the boundary
//! without a copy) and [`BodyStream`], the author's handle on a body read
//! chunk by chunk with back-pressure (the reader pulls; nothing more is read
//! from the client than was asked for). A body may end with trailers
//! (HTTP/2 or chunked HTTP/1.1 trailers, gRPC's `grpc-status`):
//! [`BodyStream::trailers`] reads them after the end,
//! [`BodyStream::with_trailers`] adds them to a body a plugin makes.

use std::{
    future::poll_fn,
    panic::{AssertUnwindSafe, catch_unwind},
    task::{Context, Poll},
};

use abi_stable::{
    StableAbi,
    sabi_trait::TD_Opaque,
    std_types::{RErr, RNone, ROk, ROption, RResult, RSome, RString, RVec, Tuple2},
};
use async_ffi::{ContextExt, FfiContext, FfiPoll};

use crate::{
    ffi::{BodyStreamBox, BodyStreamOps, BodyStreamOps_TO},
    host::ffi::FfiHeader,
};

/// Trailer fields: `(name, value)` pairs, names in lower case.
pub(crate) type Trailers = Vec<(String, Vec<u8>)>;

pub(crate) fn trailers_to_ffi(trailers: Trailers) -> RVec<FfiHeader> {
    trailers.into_iter().map(|(name, value)| Tuple2(RString::from(name), RVec::from(value))).collect()
}

fn trailers_from_ffi(trailers: RVec<FfiHeader>) -> Trailers {
    trailers.into_iter().map(|Tuple2(name, value)| (name.into_string(), value.into_vec())).collect()
}

/// One chunk of a body. The bytes belong to an owner (a host `Bytes`, a
/// plugin `Vec`) that is released, by the side that made it, when the chunk
/// is dropped: passing a chunk across the boundary copies nothing.
#[repr(C)]
#[derive(StableAbi)]
pub struct Chunk {
    ptr: *const u8,
    len: usize,
    owner: *mut (),
    release: unsafe extern "C" fn(*mut ()),
}

// SAFETY: a chunk is only made from `Send + Sync` owners (see `from_owner`)
// and gives shared read access to immutable bytes.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

unsafe extern "C" fn release_box<T>(owner: *mut ()) {
    // A panicking destructor must not unwind into the caller (maybe the other library).
    let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(owner.cast::<T>()) })));
}

unsafe extern "C" fn release_nothing(_: *mut ()) {}

impl Chunk {
    /// A chunk over `owner`'s bytes (a `Vec<u8>`, a `bytes::Bytes`, a
    /// `String`): the owner is boxed, not copied.
    pub fn from_owner<T: AsRef<[u8]> + Send + Sync + 'static>(owner: T) -> Chunk {
        let boxed = Box::new(owner);
        let (ptr, len) = {
            let bytes = (*boxed).as_ref();
            (bytes.as_ptr(), bytes.len())
        };
        Chunk { ptr, len, owner: Box::into_raw(boxed).cast(), release: release_box::<T> }
    }

    /// A chunk of static bytes (no allocation).
    pub fn from_static(bytes: &'static [u8]) -> Chunk {
        Chunk { ptr: bytes.as_ptr(), len: bytes.len(), owner: std::ptr::null_mut(), release: release_nothing }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr..ptr+len` points into the owner, alive until `self` drops.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(bytes: Vec<u8>) -> Chunk {
        Chunk::from_owner(bytes)
    }
}

impl From<String> for Chunk {
    fn from(text: String) -> Chunk {
        Chunk::from_owner(text)
    }
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: `release` was chosen with `owner` by the constructor.
        unsafe { (self.release)(self.owner) }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunk({} bytes)", self.len)
    }
}

/// A body read chunk by chunk (a request body a plugin took, a response body
/// it makes or transforms). Reading is pulling: a chunk is asked of the
/// producer only when the reader wants it.
pub struct BodyStream(BodyStreamBox);

impl BodyStream {
    /// Wraps the FFI object (what the host hands over).
    pub fn from_ffi(stream: BodyStreamBox) -> BodyStream {
        BodyStream(stream)
    }

    /// The FFI object (what the host is handed).
    pub fn into_ffi(self) -> BodyStreamBox {
        self.0
    }

    /// A body made by `source`, an FFI stream implemented in this library.
    pub fn from_ops<S: BodyStreamOps + 'static>(source: S) -> BodyStream {
        BodyStream(BodyStreamOps_TO::from_value(source, TD_Opaque))
    }

    /// A body with no bytes.
    pub fn empty() -> BodyStream {
        BodyStream::from_ops(Once(None))
    }

    /// A body of one chunk.
    pub fn from_bytes(bytes: impl Into<Chunk>) -> BodyStream {
        BodyStream::from_ops(Once(Some(bytes.into())))
    }

    /// The exact number of bytes still to come, when the producer knows it.
    pub fn size_hint(&self) -> Option<u64> {
        self.0.size_hint().into_option()
    }

    /// Polls for the next chunk (for hand-written futures and streams).
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Chunk, String>>> {
        match cx.with_ffi_context(|ffi| self.0.poll_chunk(ffi)) {
            FfiPoll::Ready(RSome(ROk(chunk))) => Poll::Ready(Some(Ok(chunk))),
            FfiPoll::Ready(RSome(RErr(e))) => Poll::Ready(Some(Err(e.into_string()))),
            FfiPoll::Ready(RNone) => Poll::Ready(None),
            FfiPoll::Pending => Poll::Pending,
            FfiPoll::Panicked => Poll::Ready(Some(Err("the body's producer panicked".into()))),
        }
    }

    /// The next chunk; `None` at the end of the body, `Err` when it broke off
    /// (the client went away, or the body passed `limits.max_body`).
    pub async fn chunk(&mut self) -> Option<Result<Chunk, String>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Reads the whole body, refusing one longer than `limit` bytes.
    pub async fn collect(mut self, limit: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(self.size_hint().map_or(0, |n| (n as usize).min(limit)));
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(format!("body longer than {limit} bytes"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// This body with every chunk passed through `f` (a transform applied as
    /// the body streams; a panic in `f` breaks the body off with an error).
    /// The body's trailers pass through unchanged.
    pub fn map<F>(self, f: F) -> BodyStream
    where
        F: FnMut(Chunk) -> Chunk + Send + 'static,
    {
        BodyStream::from_ops(Map { inner: self, f, broken: false })
    }

    /// The trailers that ended the body, once [`BodyStream::chunk`] has
    /// returned `None` (before that, and for a body without trailers: `None`).
    /// The host sends a response body's trailers as an HTTP/2 trailers frame,
    /// or on HTTP/1.1 as chunked trailers (only those the response's `trailer`
    /// header names, and only to a client that sent `te: trailers`).
    pub fn trailers(&mut self) -> Option<Trailers> {
        self.0.trailers().into_option().map(trailers_from_ffi)
    }

    /// This body, ending with `trailers` (replacing any the body had).
    pub fn with_trailers(self, trailers: Trailers) -> BodyStream {
        BodyStream::from_ops(WithTrailers { inner: self, trailers: Some(trailers) })
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyStream(size_hint: {:?})", self.size_hint())
    }
}

type FfiChunk = FfiPoll<ROption<RResult<Chunk, RString>>>;

/// A body of at most one chunk.
struct Once(Option<Chunk>);

impl BodyStreamOps for Once {
    fn poll_chunk(&mut self, _: &mut FfiContext<'_>) -> FfiChunk {
        FfiPoll::Ready(self.0.take().map(ROk).into())
    }
    fn size_hint(&self) -> ROption<u64> {
        RSome(self.0.as_ref().map_or(0, |c| c.len() as u64))
    }
}

struct Map<F> {
    inner: BodyStream,
    f: F,
    broken: bool,
}

impl<F: FnMut(Chunk) -> Chunk + Send> BodyStreamOps for Map<F> {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> FfiChunk {
        if self.broken {
            return FfiPoll::Ready(RNone);
        }
        let polled = cx.with_context(|cx| self.inner.poll_chunk(cx));
        match polled {
            Poll::Pending => FfiPoll::Pending,
            Poll::Ready(None) => FfiPoll::Ready(RNone),
            Poll::Ready(Some(Err(e))) => FfiPoll::Ready(RSome(RErr(e.into()))),
            Poll::Ready(Some(Ok(chunk))) => match catch_unwind(AssertUnwindSafe(|| (self.f)(chunk))) {
                Ok(mapped) => FfiPoll::Ready(RSome(ROk(mapped))),
                Err(payload) => {
                    self.broken = true;
                    let message = format!("body transform panicked: {}", crate::__export::panic_message(&payload));
                    FfiPoll::Ready(RSome(RErr(message.into())))
                }
            },
        }
    }
    fn size_hint(&self) -> ROption<u64> {
        RNone // a transform may change the length
    }
    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        self.inner.0.trailers()
    }
}

/// A body with trailers of the plugin's choosing.
struct WithTrailers {
    inner: BodyStream,
    trailers: Option<Trailers>,
}

impl BodyStreamOps for WithTrailers {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> FfiChunk {
        self.inner.0.poll_chunk(cx)
    }
    fn size_hint(&self) -> ROption<u64> {
        self.inner.0.size_hint()
    }
    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        self.trailers.take().map(trailers_to_ffi).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn a_chunk_shares_its_owner_bytes() {
        let v = b"hello".to_vec();
        let at = v.as_ptr();
        let chunk = Chunk::from(v);
        assert_eq!((&*chunk, chunk.as_ptr()), (&b"hello"[..], at));
        assert!(Chunk::from_static(b"").is_empty());
    }

    #[test]
    fn map_transforms_and_collect_limits() {
        let body = BodyStream::from_bytes(b"abc".to_vec()).map(|c| Chunk::from(c.to_ascii_uppercase()));
        assert_eq!(block_on(body.collect(10)).unwrap(), b"ABC");
        let err = block_on(BodyStream::from_bytes(b"abcdef".to_vec()).collect(3)).unwrap_err();
        assert!(err.contains("longer than 3"), "{err}");
        let panics = BodyStream::from_bytes(b"x".to_vec()).map(|_| panic!("boom"));
        assert!(block_on(panics.collect(10)).unwrap_err().contains("boom"));
    }

    #[test]
    fn trailers_come_after_the_end_and_pass_through_map() {
        let trailers = vec![("grpc-status".to_string(), b"0".to_vec())];
        let body = BodyStream::from_bytes(b"abc".to_vec()).with_trailers(trailers.clone());
        let mut body = body.map(|c| Chunk::from(c.to_ascii_uppercase()));
        assert_eq!(&*block_on(body.chunk()).unwrap().unwrap(), b"ABC");
        assert!(block_on(body.chunk()).is_none());
        assert_eq!(body.trailers(), Some(trailers));
        assert_eq!(BodyStream::from_bytes(b"x".to_vec()).trailers(), None, "a plain body has none");
    }
}
