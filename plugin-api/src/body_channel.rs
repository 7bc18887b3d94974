//! [`BodySender`]: a bounded channel that produces a [`BodyStream`] from a
//! task or thread of the plugin's. `send` waits while `capacity` chunks are
//! unread, so a producer never runs ahead of the client by more than that.
//! [`BodySender::send_trailers`] ends the body with trailers.

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard},
    task::{Poll, Waker},
};

use abi_stable::std_types::{RErr, RNone, ROk, ROption, RResult, RSome, RString, RVec};
use async_ffi::{FfiContext, FfiPoll};

use crate::{
    BodyStream, Chunk,
    body::{Trailers, trailers_to_ffi},
    ffi::BodyStreamOps,
    host::ffi::FfiHeader,
};

struct State {
    queue: VecDeque<Chunk>,
    capacity: usize,
    error: Option<String>,
    trailers: Option<Trailers>,
    sender_gone: bool,
    reader_gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writing end of a body made with [`BodyStream::channel`]. Dropping it
/// ends the body; [`BodySender::abort`] breaks it off with an error.
pub struct BodySender(Arc<Shared>);

impl BodyStream {
    /// A body fed through the returned sender, holding at most `capacity`
    /// unread chunks (at least 1).
    pub fn channel(capacity: usize) -> (BodySender, BodyStream) {
        let state = State {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            error: None,
            trailers: None,
            sender_gone: false,
            reader_gone: false,
            reader: None,
            writer: None,
        };
        let shared = Arc::new(Shared(Mutex::new(state)));
        (BodySender(shared.clone()), BodyStream::from_ops(Receiver(shared)))
    }
}

impl BodySender {
    /// Sends a chunk, waiting while the channel is full. `Err` gives the
    /// chunk back when the body's reader went away (the client disconnected).
    pub async fn send(&self, chunk: impl Into<Chunk>) -> Result<(), Chunk> {
        let mut chunk = Some(chunk.into());
        poll_fn(|cx| {
            let mut state = self.0.lock();
            if state.reader_gone {
                return Poll::Ready(Err(chunk.take().expect("polled after completion")));
            }
            if state.queue.len() >= state.capacity {
                state.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            state.queue.push_back(chunk.take().expect("polled after completion"));
            if let Some(reader) = state.reader.take() {
                reader.wake();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Whether the reader went away (sending is pointless).
    pub fn is_closed(&self) -> bool {
        self.0.lock().reader_gone
    }

    /// Ends the body after the chunks already sent, with `trailers` (HTTP/2
    /// or chunked HTTP/1.1 trailers, e.g. gRPC's `grpc-status`).
    pub fn send_trailers(self, trailers: Trailers) {
        self.0.lock().trailers = Some(trailers);
    }

    /// Ends the body with an error after the chunks already sent: the client
    /// sees the response broken off.
    pub fn abort(self, reason: impl Into<String>) {
        self.0.lock().error = Some(reason.into());
    }
}

impl Drop for BodySender {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.sender_gone = true;
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }
}

struct Receiver(Arc<Shared>);

impl BodyStreamOps for Receiver {
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> FfiPoll<ROption<RResult<Chunk, RString>>> {
        let mut state = self.0.lock();
        if let Some(chunk) = state.queue.pop_front() {
            if let Some(writer) = state.writer.take() {
                writer.wake();
            }
            return FfiPoll::Ready(RSome(ROk(chunk)));
        }
        if let Some(error) = state.error.take() {
            return FfiPoll::Ready(RSome(RErr(error.into())));
        }
        if state.sender_gone {
            return FfiPoll::Ready(RNone);
        }
        state.reader = Some(cx.with_context(|cx| cx.waker().clone()));
        FfiPoll::Pending
    }

    fn size_hint(&self) -> ROption<u64> {
        RNone
    }

    fn trailers(&mut self) -> ROption<RVec<FfiHeader>> {
        self.0.lock().trailers.take().map(trailers_to_ffi).into()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.reader_gone = true;
        state.queue.clear();
        if let Some(writer) = state.writer.take() {
            writer.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_channel_holds_the_sender_back_and_a_dropped_reader_stops_it() {
        let (tx, mut rx) = BodyStream::channel(1);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut first = std::pin::pin!(tx.send(b"a".to_vec()));
        assert!(first.as_mut().poll(&mut cx).is_ready());
        let mut second = std::pin::pin!(tx.send(b"b".to_vec()));
        assert!(second.as_mut().poll(&mut cx).is_pending(), "capacity 1: the second send waits");
        let Poll::Ready(Some(Ok(chunk))) = rx.poll_chunk(&mut cx) else { panic!("a chunk") };
        assert_eq!(&*chunk, b"a");
        assert!(second.as_mut().poll(&mut cx).is_ready());
        drop(rx);
        let mut third = std::pin::pin!(tx.send(b"c".to_vec()));
        assert!(matches!(third.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    }

    #[test]
    fn trailers_sent_end_the_body_after_its_chunks() {
        let (tx, mut rx) = BodyStream::channel(2);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::pin!(tx.send(b"a".to_vec())).poll(&mut cx).is_ready());
        tx.send_trailers(vec![("grpc-status".into(), b"0".to_vec())]);
        assert!(matches!(rx.poll_chunk(&mut cx), Poll::Ready(Some(Ok(c))) if &*c == b"a"));
        assert!(matches!(rx.poll_chunk(&mut cx), Poll::Ready(None)));
        assert_eq!(rx.trailers(), Some(vec![("grpc-status".to_string(), b"0".to_vec())]));
    }
}
