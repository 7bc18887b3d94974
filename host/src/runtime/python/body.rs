//! A streamed request body (`request_body: stream`) for an ASGI app's
//! `receive()`.
//!
//! The app pulls: each `receive()` hands a future to [`BodySource::want`],
//! and only then does the pump task read the next chunk from the client, so
//! at most one chunk is in flight (hyper's own buffer aside). The future is
//! resolved on the loop thread with `(chunk, more)`, or with `None` when the
//! body is cut off — past `limits.max_body`, unreadable, or the response is
//! already complete — which the bridge turns into `http.disconnect`. A cut-off
//! is also sent to the request's channel ([`AsgiMsg::BodyFailed`]) so that,
//! when the app has not started its response yet, the client gets 413 (or 400).

use bytes::Bytes;
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper::body::Body as _;
use pyo3::{prelude::*, types::PyBytes};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{
    hostmod::{AsgiMsg, BodyFailure},
    interp::Interp,
};
use crate::exchange::{BodyError, RequestBody};

/// What `receive()` is told: a chunk and whether more follows, or `None` (cut off).
type Delivery = Option<(Bytes, bool)>;

/// The Python end of a streamed body: `want(future)` asks for the next chunk.
#[pyclass]
pub struct BodySource {
    wants: UnboundedSender<Py<PyAny>>,
}

#[pymethods]
impl BodySource {
    /// Asks for the next chunk; false when the body is over (resolve nothing, say disconnect).
    fn want(&self, future: Py<PyAny>) -> bool {
        self.wants.send(future).is_ok()
    }
}

/// Starts the pump of `body` for one request; `events` is the request's
/// channel (its closing — the response is complete or the client left — ends the pump).
pub fn start(interp: &'static Interp, body: RequestBody, events: UnboundedSender<AsgiMsg>) -> BodySource {
    let (wants, rx) = unbounded_channel();
    tokio::spawn(pump(interp, body, rx, events));
    BodySource { wants }
}

async fn pump(interp: &'static Interp, body: RequestBody, mut wants: UnboundedReceiver<Py<PyAny>>, events: UnboundedSender<AsgiMsg>) {
    let (mut body, max) = body.into_parts();
    let mut seen = 0u64;
    loop {
        let future = tokio::select! {
            future = wants.recv() => match future {
                Some(future) => future,
                None => return,
            },
            () = events.closed() => break,
        };
        let delivery = tokio::select! {
            read = next_chunk(&mut body) => judge(read, &mut seen, max, body.is_end_stream(), &events),
            () = events.closed() => None,
        };
        let last = delivery.as_ref().is_none_or(|(_, more)| !more);
        resolve(interp, future, delivery);
        if last {
            break;
        }
    }
    // Wants still queued (concurrent receive() calls) are told the body is over.
    wants.close();
    while let Ok(future) = wants.try_recv() {
        resolve(interp, future, None);
    }
}

/// The next non-empty data chunk (trailers are skipped); `None` at the end.
async fn next_chunk(body: &mut UnsyncBoxBody<Bytes, BodyError>) -> Result<Option<Bytes>, String> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// What a read means for the app: a chunk, the end, or a cut-off (reported on `events`).
fn judge(read: Result<Option<Bytes>, String>, seen: &mut u64, max: u64, ended: bool, events: &UnboundedSender<AsgiMsg>) -> Delivery {
    match read {
        Ok(Some(chunk)) => {
            *seen += chunk.len() as u64;
            if *seen > max {
                let _ = events.send(AsgiMsg::BodyFailed(BodyFailure::TooLarge(max)));
                return None;
            }
            Some((chunk, !ended))
        }
        Ok(None) => Some((Bytes::new(), false)),
        Err(reason) => {
            let _ = events.send(AsgiMsg::BodyFailed(BodyFailure::Unreadable(reason)));
            None
        }
    }
}

/// Resolves `future` (unless cancelled) on the loop thread.
fn resolve(interp: &'static Interp, future: Py<PyAny>, delivery: Delivery) {
    interp.aloop.submit(Box::new(move |py| {
        let future = future.bind(py);
        if future.call_method0("done").and_then(|d| d.is_truthy()).unwrap_or(true) {
            return;
        }
        let value = match delivery {
            Some((chunk, more)) => (PyBytes::new(py, &chunk), more).into_pyobject(py).map(|t| t.into_any()),
            None => Ok(py.None().into_bound(py)),
        };
        if let Err(e) = value.and_then(|v| future.call_method1("set_result", (v,))) {
            tracing::error!(target: "covet::python", "resolving receive(): {e}");
        }
    }));
}
