//! The response body every covet response has, and its part in the
//! connection's send tracking.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;

use crate::{exchange::StreamSource, server::watchdog::ConnState};

/// The response body of every covet response: one buffer (with its exact
/// length, so hyper writes `content-length`), or a buffer followed by the
/// chunks of a [`crate::exchange::BodyStream`], flushed as they arrive.
///
/// On HTTP/1 and HTTP/2 it also tells the connection's [`ConnState`] while
/// a chunk it handed to hyper waits on the client (from handing it over
/// until hyper asks for the next one): the watchdog's `send_timeout`
/// (docs/hardening.md); and while the response is being sent at all (an
/// HTTP/1 client's half-close is held back from hyper until then,
/// [`crate::server::tracked_io`]). The watch lives in the body rather than in a
/// wrapper around the service's future, which cost a copy of that large
/// future per request.
pub struct Body {
    kind: BodyKind,
    watch: Option<SendWatch>,
}

/// A body's side of the connection's send tracking.
struct SendWatch {
    state: Arc<ConnState>,
    /// A chunk was handed over and hyper has not asked for the next one.
    waiting: bool,
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(watch) = self.watch.as_ref() {
            if watch.waiting {
                watch.state.send_done();
            }
            watch.state.response_ends();
        }
    }
}

enum BodyKind {
    Full(Full<Bytes>),
    Stream {
        first: Option<Bytes>,
        rx: tokio::sync::mpsc::UnboundedReceiver<crate::exchange::Chunk>,
        _guard: Arc<dyn Send + Sync>,
    },
    Plugin {
        first: Option<Bytes>,
        body: crate::runtime::native::body::FfiBody,
    },
}

impl Body {
    /// A body of one buffer.
    pub fn full(bytes: Bytes) -> Body {
        Body::of(BodyKind::Full(Full::new(bytes)))
    }

    fn of(kind: BodyKind) -> Body {
        Body { kind, watch: None }
    }

    /// This body, reporting to `state` while a chunk waits on the client.
    pub fn watched(mut self, state: Arc<ConnState>) -> Body {
        state.response_begins();
        self.watch = Some(SendWatch { state, waiting: false });
        self
    }

    /// `first`, then the chunks of `stream` (when there is one).
    pub fn streaming(first: Bytes, stream: Option<StreamSource>) -> Body {
        match stream {
            Some(StreamSource::Channel(rx, guard)) => Body::of(BodyKind::Stream { first: Some(first), rx, _guard: guard }),
            Some(StreamSource::Plugin(stream)) => Body::of(BodyKind::Plugin { first: Some(first), body: stream }),
            None => Body::full(first),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(watch) = this.watch.as_mut().filter(|w| w.waiting) {
            watch.waiting = false;
            watch.state.send_done();
        }
        let polled = this.kind.poll_frame(cx);
        if let (Some(watch), std::task::Poll::Ready(Some(Ok(_)))) = (this.watch.as_mut(), &polled) {
            watch.waiting = true;
            watch.state.send_waiting();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.kind.size_hint()
    }
}

impl BodyKind {
    fn poll_frame(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>> {
        use hyper::body::Body as _;
        use std::task::Poll;
        match self {
            BodyKind::Full(full) => std::pin::Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            BodyKind::Stream { first, rx, .. } => {
                if let Some(bytes) = first.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes))));
                }
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes)))),
                    Poll::Ready(Some(Err(reason))) => Poll::Ready(Some(Err(reason.into()))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }
            BodyKind::Plugin { first, body } => {
                if let Some(bytes) = first.take().filter(|b| !b.is_empty()) {
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes))));
                }
                std::pin::Pin::new(body).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        use hyper::body::Body as _;
        match self {
            BodyKind::Full(full) => full.is_end_stream(),
            BodyKind::Stream { .. } | BodyKind::Plugin { .. } => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        use hyper::body::Body as _;
        match self {
            BodyKind::Full(full) => full.size_hint(),
            BodyKind::Stream { .. } => hyper::body::SizeHint::default(),
            BodyKind::Plugin { first, body } => {
                let first = first.as_ref().map_or(0, |b| b.len() as u64);
                body.size_hint().exact().map_or_else(Default::default, |n| hyper::body::SizeHint::with_exact(n + first))
            }
        }
    }
}

