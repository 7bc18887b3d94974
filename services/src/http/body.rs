//! The streaming response body handed to plugins: hyper's `Incoming` with a
//! limit on how long the next chunk may take, errors mapped to
//! [`ServiceError`] and counted.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::OutboundMetrics;
use crate::ServiceError;

/// A response body that streams from the server. Use
/// `http_body_util::BodyExt` (`frame()`, `collect()`) to read it.
pub struct ResponseBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    target: String,
    metrics: Arc<OutboundMetrics>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("from", &self.target).finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(super) fn new(inner: Incoming, idle: Duration, target: String, metrics: Arc<OutboundMetrics>) -> ResponseBody {
        ResponseBody { inner, idle, timer: Box::pin(tokio::time::sleep(idle)), target, metrics }
    }

    fn fail(&self, error: ServiceError) -> Poll<Option<Result<Frame<Bytes>, ServiceError>>> {
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ServiceError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ServiceError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer.as_mut().reset(Instant::now() + this.idle);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = ServiceError::Http(format!("response body from {}: {e}", this.target));
                this.fail(error)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                let what = format!("response body from {} (waiting for the next chunk)", this.target);
                let error = ServiceError::Timeout { what, after: this.idle };
                this.timer.as_mut().reset(Instant::now() + this.idle);
                this.fail(error)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
