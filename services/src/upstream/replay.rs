//! A request body that can be sent more than once, within a bound.
//!
//! [`Replay`] owns the client's body stream. Each attempt takes a body from
//! [`Replay::attempt_body`]: it yields the chunks earlier attempts already
//! read, then goes on pulling from the client's stream, recording what it
//! pulls while the recorded total stays within the limit. Once more than the
//! limit was pulled the recording is dropped and the request can no longer be
//! retried. Memory is bounded by the limit; chunks are kept as `Bytes`
//! handles, never copied. Attempts are sequential: making a new attempt body
//! abandons the previous one (polling it afterwards fails).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::http::{BoxError, RequestBody};

/// A replayable request body (see the module docs).
pub(crate) struct Replay {
    shared: Option<Arc<Mutex<Shared>>>,
}

/// What the attempts share: the client's stream and the recording.
struct Shared {
    /// The client's stream; `None` once it ended or failed.
    source: Option<RequestBody>,
    /// Data read so far, while its total is within `limit`.
    chunks: Vec<Bytes>,
    recorded: usize,
    limit: usize,
    /// More than `limit` bytes were read: `chunks` is dropped, no retry.
    overflowed: bool,
    /// The source ended (`None` or a trailers frame).
    ended: bool,
    trailers: Option<HeaderMap>,
    /// The source failed with this message: no retry.
    failed: Option<String>,
    /// The attempt that may read now.
    generation: u64,
}

impl Replay {
    /// Wraps `body` (`None`: a request without a body) keeping up to `limit` bytes for replay.
    pub(crate) fn new(body: Option<RequestBody>, limit: usize) -> Replay {
        let shared = body.map(|source| {
            Arc::new(Mutex::new(Shared {
                source: Some(source),
                chunks: Vec::new(),
                recorded: 0,
                limit,
                overflowed: false,
                ended: false,
                trailers: None,
                failed: None,
                generation: 0,
            }))
        });
        Replay { shared }
    }

    /// Whether another attempt can still send the whole body.
    pub(crate) fn replayable(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| lock(s).replayable())
    }

    /// The body of the next attempt (an empty one for a request without a
    /// body), or `None` when the body can no longer be replayed. Abandons
    /// the previous attempt's body.
    pub(crate) fn attempt_body(&self) -> Option<RequestBody> {
        let Some(shared) = &self.shared else { return Some(crate::http::empty()) };
        let generation = {
            let mut s = lock(shared);
            if !s.replayable() {
                return None;
            }
            s.generation += 1;
            s.generation
        };
        let body = AttemptBody { shared: shared.clone(), generation, next: 0, trailers_sent: false };
        Some(body.boxed_unsync())
    }
}

impl Shared {
    fn replayable(&self) -> bool {
        !self.overflowed && self.failed.is_none()
    }

    /// Keeps `data` for later attempts, or drops the recording past the limit.
    fn record(&mut self, data: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.recorded + data.len() <= self.limit {
            self.recorded += data.len();
            self.chunks.push(data.clone());
        } else {
            self.overflowed = true;
            self.chunks = Vec::new();
            self.recorded = 0;
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One attempt's view of the body.
struct AttemptBody {
    shared: Arc<Mutex<Shared>>,
    generation: u64,
    /// Index of the next recorded chunk to yield.
    next: usize,
    trailers_sent: bool,
}

impl AttemptBody {
    fn poll_source(&mut self, s: &mut Shared, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(source) = s.source.as_mut() else {
            return Poll::Ready(s.failed.clone().map(|m| Err(m.into())));
        };
        match Pin::new(source).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    s.record(&data);
                    self.next = s.chunks.len();
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    s.trailers.clone_from(&trailers);
                    s.ended = true;
                    s.source = None;
                    self.trailers_sent = true;
                    Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                s.failed = Some(format!("request body: {e}"));
                s.source = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                s.ended = true;
                s.source = None;
                Poll::Ready(None)
            }
        }
    }
}

impl Body for AttemptBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let shared = this.shared.clone();
        let mut s = lock(&shared);
        if s.generation != this.generation {
            return Poll::Ready(Some(Err("request body: abandoned for a later attempt".into())));
        }
        if let Some(chunk) = s.chunks.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if s.ended {
            if this.trailers_sent {
                return Poll::Ready(None);
            }
            this.trailers_sent = true;
            return Poll::Ready(s.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        this.poll_source(&mut s, cx)
    }

    fn is_end_stream(&self) -> bool {
        let s = lock(&self.shared);
        if s.generation != self.generation || self.next < s.chunks.len() {
            return false;
        }
        match &s.source {
            Some(source) => source.is_end_stream(),
            None => s.failed.is_none() && (self.trailers_sent || s.trailers.is_none()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let s = lock(&self.shared);
        let replayed: u64 = s.chunks.iter().skip(self.next).map(|c| c.remaining() as u64).sum();
        let rest = s.source.as_ref().map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + replayed);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + replayed);
        }
        hint
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
