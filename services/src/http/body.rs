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
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use super::{BoxError, OutboundMetrics};
use crate::ServiceError;

/// A response body that streams from the server. Use
/// `http_body_util::BodyExt` (`frame()`, `collect()`) to read it.
pub struct ResponseBody {
    inner: Inner,
    idle: Duration,
    /// Armed on the first `Pending` only: a body that is already buffered
    /// (the common small response) never touches the timer wheel.
    timer: Option<Pin<Box<Sleep>>>,
    /// Named in errors; shared (an upstream endpoint makes it once, not per request).
    target: Arc<str>,
    metrics: Arc<OutboundMetrics>,
    /// Whatever must live as long as the body (an upstream's in-flight
    /// count and circuit-breaker slot), dropped with it.
    guard: Option<Box<dyn Send>>,
}

/// Where the bytes come from.
enum Inner {
    /// A response read by hyper.
    Incoming(Incoming),
    /// Any other stream, e.g. the endpoint's side of an upgraded connection
    /// (no idle limit: a tunnel may be quiet for long).
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl Inner {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Inner::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Inner::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").field("from", &self.target).finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(crate) fn new(
        inner: Incoming,
        idle: Duration,
        target: impl Into<Arc<str>>,
        metrics: Arc<OutboundMetrics>,
    ) -> ResponseBody {
        ResponseBody { inner: Inner::Incoming(inner), idle, timer: None, target: target.into(), metrics, guard: None }
    }

    /// A body streaming from `inner` without an idle limit, errors mapped
    /// to [`ServiceError::Http`] naming `target` (an upgraded connection).
    pub(crate) fn from_upgraded(inner: UnsyncBoxBody<Bytes, BoxError>, target: impl Into<Arc<str>>) -> ResponseBody {
        let idle = Duration::ZERO;
        let target = target.into();
        ResponseBody { inner: Inner::Stream(inner), idle, timer: None, target, metrics: Arc::default(), guard: None }
    }

    /// The same body keeping `guard` alive until it is dropped.
    pub(crate) fn hold(mut self, guard: Box<dyn Send>) -> ResponseBody {
        self.guard = Some(guard);
        self
    }

    fn fail(&mut self, error: ServiceError) -> Poll<Option<Result<Frame<Bytes>, ServiceError>>> {
        self.guard = None;
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ServiceError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ServiceError>>> {
        let this = &mut *self;
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = this.timer.as_mut() {
                    timer.as_mut().reset(Instant::now() + this.idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = ServiceError::Http(format!("response body from {}: {e}", this.target));
                this.fail(error)
            }
            Poll::Ready(None) => {
                this.guard = None;
                Poll::Ready(None)
            }
            Poll::Pending if matches!(this.inner, Inner::Stream(_)) => Poll::Pending,
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                timer.as_mut().reset(Instant::now() + idle);
                let what = format!("response body from {} (waiting for the next chunk)", this.target);
                this.fail(ServiceError::Timeout { what, after: idle })
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Incoming(b) => b.is_end_stream(),
            Inner::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Incoming(b) => b.size_hint(),
            Inner::Stream(b) => b.size_hint(),
        }
    }
}
