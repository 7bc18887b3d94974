//! The request-body wrapper for slow clients, put on every HTTP/1 and
//! HTTP/2 exchange by [`super::conn`]:
//!
//! - [`ReadTimed`] cuts a request body the client sends too slowly: no
//!   data for `limits.body_read_timeout`, or (a trickle that never pauses
//!   that long) less than `limits.body_min_rate` bytes per second once
//!   `body_read_timeout` of grace is spent, as Apache's `mod_reqtimeout`
//!   does. Only time spent waiting on the client counts: a plugin that reads
//!   the body late is not the client's fault. The error is a
//!   [`BodyTimedOut`], which the service answers with 408 and a close.
//!
//! The response side (a chunk waiting on the client, for the watchdog's
//! `send_timeout`) is tracked by the response body itself,
//! [`crate::service::Body`].

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::exchange::BodyError;

/// A request body arrived too slowly (`limits.body_read_timeout` /
/// `limits.body_min_rate`).
#[derive(Debug, thiserror::Error)]
#[error("request body too slow: {0}")]
pub struct BodyTimedOut(String);

/// A request body that fails with [`BodyTimedOut`] when the client sends it
/// too slowly.
pub struct ReadTimed<B> {
    inner: B,
    timeout: Duration,
    min_rate: u64,
    received: u64,
    /// Time spent waiting on the client, before the wait now in progress.
    waited: Duration,
    /// When the wait now in progress began.
    waiting_since: Option<Instant>,
    alarm: Option<Pin<Box<Sleep>>>,
}

impl<B> ReadTimed<B> {
    /// Wraps `inner`; a zero `timeout` turns both checks off.
    pub fn new(inner: B, timeout: Duration, min_rate: u64) -> Self {
        ReadTimed { inner, timeout, min_rate, received: 0, waited: Duration::ZERO, waiting_since: None, alarm: None }
    }

    /// Waiting time the client is allowed in all, for the bytes it sent.
    fn allowed(&self) -> Duration {
        match self.min_rate {
            0 => Duration::MAX,
            rate => self.timeout.saturating_add(Duration::from_secs_f64(self.received as f64 / rate as f64)),
        }
    }

    /// When the wait that began at `since` runs out.
    fn deadline(&self, since: Instant) -> Instant {
        let gap = since + self.timeout;
        match self.allowed().checked_sub(self.waited) {
            Some(left) => gap.min(since.checked_add(left).unwrap_or(gap)),
            None => since,
        }
    }

    fn too_slow(&self) -> BodyError {
        let reason = if self.min_rate > 0 && self.waited >= self.allowed() {
            format!("{} bytes in {:.1} s of waiting, under {} bytes/s", self.received, self.waited.as_secs_f64(), self.min_rate)
        } else {
            format!("no data for {:?} (after {} bytes)", self.timeout, self.received)
        };
        Box::new(BodyTimedOut(reason))
    }
}

impl<B> Body for ReadTimed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.timeout.is_zero() {
            return Pin::new(&mut this.inner).poll_frame(cx).map_err(Into::into);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(since) = this.waiting_since.take() {
                this.waited += since.elapsed();
            }
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                this.received += data.map_or(0, |d| d.len() as u64);
            }
            if this.waited > this.allowed() {
                return Poll::Ready(Some(Err(this.too_slow())));
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let since = *this.waiting_since.get_or_insert_with(Instant::now);
        let deadline = this.deadline(since);
        let alarm = this.alarm.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if alarm.deadline() != deadline {
            alarm.as_mut().reset(deadline);
        }
        ready!(alarm.as_mut().poll(cx));
        this.waited += since.elapsed();
        this.waiting_since = None;
        Poll::Ready(Some(Err(this.too_slow())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_is_allowed_the_grace_plus_its_bytes_at_the_minimum_rate() {
        let mut body = ReadTimed::new(http_body_util::Empty::<Bytes>::new(), Duration::from_secs(10), 100);
        body.received = 500;
        assert_eq!(body.allowed(), Duration::from_secs(15));
        body.waited = Duration::from_secs(14);
        let now = Instant::now();
        assert_eq!(body.deadline(now), now + Duration::from_secs(1), "the rate runs out before the gap");
        body.min_rate = 0;
        assert_eq!(body.deadline(now), now + Duration::from_secs(10), "no minimum: only the gap");
    }
}
