//! Teeing a response body as it streams to the client: each chunk is passed
//! on at once (never held back) and copied into a buffer; when the body ends
//! the buffer is handed to the completion (which stores the entry). Past
//! `limit` bytes the copy stops and the completion is dropped unrun; a body
//! A body of known length is complete at its last byte (the writer may not
//! poll for the end). A body that breaks off, or is dropped before its end (the client went away),
//! also drops it: nothing is stored, and whatever the completion holds (the
//! coalescing leader's guard) is released.

use covet_plugin_api::{
    BodyStream, Chunk,
    __export::abi_stable::std_types::{RNone, ROption, RResult, RSome, RString, RVec},
    ffi::{BodyStreamOps, FfiContext, FfiPoll},
    host::ffi::FfiHeader,
};

type Polled = FfiPoll<ROption<RResult<Chunk, RString>>>;

/// What runs with the whole body once it has streamed.
pub type Completion = Box<dyn FnOnce(Vec<u8>) + Send>;

/// A body passed through while a copy of it is kept.
pub struct Tee {
    inner: BodyStream,
    buffer: Vec<u8>,
    limit: usize,
    /// The body's exact length when known: reaching it is the end (the
    /// writer may stop polling once it has sent that many bytes).
    expected: Option<usize>,
    done: Option<Completion>,
}

impl Tee {
    /// `body`, teed: `done` gets the bytes when it ends within `limit`.
    pub fn body(body: BodyStream, limit: u64, done: Completion) -> BodyStream {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let expected = body.size_hint().and_then(|n| usize::try_from(n).ok());
        let capacity = expected.map_or(0, |n| n.min(limit));
        let mut tee = Tee { inner: body, buffer: Vec::with_capacity(capacity), limit, expected, done: Some(done) };
        if expected.is_some_and(|n| n > limit) {
            tee.done = None;
        } else if expected == Some(0) {
            tee.complete(); // nothing to wait for (the writer may never poll)
        }
        BodyStream::from_ops(tee)
    }

    fn complete(&mut self) {
        if let Some(done) = self.done.take() {
            done(std::mem::take(&mut self.buffer));
        }
    }
}

impl BodyStreamOps for Tee {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> Polled {
        let polled = cx.with_context(|cx| self.inner.poll_chunk(cx));
        match polled {
            std::task::Poll::Pending => FfiPoll::Pending,
            std::task::Poll::Ready(None) => {
                if self.expected.is_none_or(|n| n == self.buffer.len()) {
                    self.complete();
                }
                self.done = None;
                FfiPoll::Ready(RNone)
            }
            std::task::Poll::Ready(Some(Err(e))) => {
                self.done = None;
                self.buffer = Vec::new();
                FfiPoll::Ready(RSome(RResult::RErr(e.into())))
            }
            std::task::Poll::Ready(Some(Ok(chunk))) => {
                if self.done.is_some() {
                    if self.buffer.len() + chunk.len() > self.limit {
                        self.done = None;
                        self.buffer = Vec::new();
                    } else {
                        self.buffer.extend_from_slice(&chunk);
                        if self.expected == Some(self.buffer.len()) {
                            self.complete();
                        }
                    }
                }
                FfiPoll::Ready(RSome(RResult::ROk(chunk)))
            }
        }
    }

    fn size_hint(&self) -> ROption<u64> {
        self.inner.size_hint().into()
    }

    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        match self.inner.trailers() {
            Some(t) => RSome(t.into_iter().map(|(n, v)| covet_plugin_api::__export::abi_stable::std_types::Tuple2(n.into(), v.into())).collect()),
            None => RNone,
        }
    }
}
