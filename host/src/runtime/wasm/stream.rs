//! A wasi:http component's response body, sent to the client as the guest
//! writes it.
//!
//! Once the guest has set the response outparam, [`respond`] returns the head
//! at once. Unless the guest already returned with its whole body written,
//! a task ([`pump`]) then owns the instance: it keeps running the guest's
//! `handle` call and forwards each chunk the guest writes to the client
//! through a [`BodyStream`], until the body ends.
//!
//! - **Back-pressure**: at most [`IN_FLIGHT`] bytes are between the guest and
//!   the socket. Each chunk holds permits of a semaphore until hyper has
//!   written and dropped it; without permits the pump stops reading the
//!   guest's body, whose own small channel then fills and the guest's write
//!   waits. A 50 MB download never sits in host memory.
//! - **Time**: the plugin's `timeout` bounds the wait for the head (as for any
//!   call) and then *each* wait for the guest's next chunk; it does not bound
//!   the stream as a whole, and it is suspended while the client is slow to
//!   read (the guest is then waiting on the client, not the reverse). A guest
//!   that stops writing for longer than `timeout` is stopped and the
//!   response cut off (the client sees an incomplete body); one spinning the
//!   CPU between writes is stopped by the same limit through the store's
//!   epoch deadline.
//! - **Client gone**: when hyper drops the body (the client went away, or a
//!   `HEAD` request), the pump drops the instance and everything it holds.
//! - **Faults** after the head cannot change the status any more: a trap or
//!   a time limit is logged and breaks off the body.
//!
//! The instance goes back to the idle pool (with `instances: reused`) only
//! after its body ended and its call returned cleanly.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use http::header;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::sync::{Semaphore, mpsc};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::{
    proxy::{Live, Shared},
    sandbox::Deadline,
};
use crate::{
    exchange::{BodyStream, Chunk, HostResponse, held_chunk},
    runtime::Fault,
};

/// Most body bytes on their way from the guest to the client at once.
pub const IN_FLIGHT: usize = 256 << 10;

/// The guest's `handle` call, owning its instance; gives the instance back.
pub type Call = Pin<Box<dyn Future<Output = (Live, wasmtime::Result<()>)> + Send>>;

/// The guest after it sent the head.
pub enum Guest {
    /// Still in `handle` (writing its body, or about to).
    Running(Call),
    /// Returned cleanly.
    Done(Live),
}

impl Guest {
    /// Waits for the call to return (under the deadline already armed).
    pub async fn finish(self, shared: &Shared) -> Result<Live, Fault> {
        match self {
            Guest::Done(live) => Ok(live),
            Guest::Running(call) => match call.await {
                (live, Ok(())) => Ok(live),
                (live, Err(e)) => Err(shared.fault(e, &live)),
            },
        }
    }
}

/// The response for head `response`: its whole body when the guest already
/// wrote and ended it, else a stream fed by a [`pump`] task.
pub fn respond(shared: &Arc<Shared>, response: hyper::Response<HyperOutgoingBody>, guest: Guest, clock: Deadline) -> HostResponse {
    let (parts, mut body) = response.into_parts();
    let mut headers = parts.headers;
    // The host frames the body it sends.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    let mut resp = HostResponse { status: parts.status, headers, body: Bytes::new(), stream: None };
    if let Guest::Done(live) = guest {
        let (prefix, ended) = ready_part(&mut body);
        resp.body = prefix;
        match ended {
            true => shared.check_in(live),
            false => resp.stream = Some(spawn(shared, body, Guest::Done(live), clock)),
        }
        return resp;
    }
    resp.stream = Some(spawn(shared, body, guest, clock));
    resp
}

/// The body's data that is ready now, and whether the body ended cleanly.
fn ready_part(body: &mut HyperOutgoingBody) -> (Bytes, bool) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut prefix = BytesMut::new();
    loop {
        match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    prefix.extend_from_slice(&data);
                }
                if prefix.len() >= IN_FLIGHT {
                    return (prefix.freeze(), false);
                }
            }
            Poll::Ready(None) => return (prefix.freeze(), true),
            Poll::Ready(Some(Err(_))) | Poll::Pending => return (prefix.freeze(), false),
        }
    }
}

fn spawn(shared: &Arc<Shared>, body: HyperOutgoingBody, guest: Guest, clock: Deadline) -> BodyStream {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = pump(shared.clone(), body, guest, tx, clock);
    tokio::spawn(task);
    BodyStream::new(rx, Arc::new(()))
}

/// Why a stream stopped early.
enum Stop {
    /// The client went away (nothing to tell it).
    Gone,
    /// The guest or its body failed (logged; the body is cut off).
    Failed(String),
}

/// Forwards the guest's body to `tx` while running the guest, then gives the
/// instance back.
async fn pump(shared: Arc<Shared>, mut body: HyperOutgoingBody, mut guest: Guest, tx: mpsc::UnboundedSender<Chunk>, clock: Deadline) {
    let idle = shared.sandbox.limits().timeout;
    let ended = forward(&shared, &mut body, &mut guest, &tx, &clock, idle).await;
    let reason = match ended {
        Ok(()) => {
            drop(tx);
            return finish(&shared, guest, &clock, idle).await;
        }
        Err(Stop::Gone) => {
            tracing::debug!(plugin = %shared.plugin, "the client went away; the component's instance is dropped");
            return;
        }
        Err(Stop::Failed(reason)) => reason,
    };
    tracing::error!(plugin = %shared.plugin, "the response body was cut off: {reason}");
    let _ = tx.send(Err(reason));
}

/// Sends the body chunk by chunk until it ends.
async fn forward(
    shared: &Shared,
    body: &mut HyperOutgoingBody,
    guest: &mut Guest,
    tx: &mpsc::UnboundedSender<Chunk>,
    clock: &Deadline,
    idle: Duration,
) -> Result<(), Stop> {
    let budget = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        clock.set(Instant::now() + idle);
        let next = alongside(shared, guest, tx, tokio::time::timeout(idle, body.frame())).await?;
        let data = match next {
            Err(_) => return Err(Stop::Failed(format!("the component wrote nothing for {} ms (its time limit)", idle.as_millis()))),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(Stop::Failed(format!("the component's body failed: {e}"))),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        // Waiting for room is waiting on the client: no limit meanwhile.
        clock.lift();
        let permits = data.len().min(IN_FLIGHT) as u32;
        let permit = alongside(shared, guest, tx, budget.clone().acquire_many_owned(permits)).await?;
        let permit = permit.map_err(|_| Stop::Gone)?;
        tx.send(Ok(held_chunk(data, permit))).map_err(|_| Stop::Gone)?;
    }
}

/// Waits for `work` while running the guest, and stops when the client goes
/// away or the guest fails.
async fn alongside<F: Future>(shared: &Shared, guest: &mut Guest, tx: &mpsc::UnboundedSender<Chunk>, work: F) -> Result<F::Output, Stop> {
    let mut work = std::pin::pin!(work);
    loop {
        let Guest::Running(call) = guest else {
            return tokio::select! {
                biased;
                () = tx.closed() => Err(Stop::Gone),
                out = &mut work => Ok(out),
            };
        };
        let (live, result) = tokio::select! {
            biased;
            () = tx.closed() => return Err(Stop::Gone),
            out = &mut work => return Ok(out),
            done = call => done,
        };
        match result {
            Ok(()) => *guest = Guest::Done(live),
            Err(e) => return Err(Stop::Failed(shared.fault(e, &live).message().to_owned())),
        }
    }
}

/// After the body: lets the call return (within the time limit) and keeps
/// the instance for reuse when it returned cleanly.
async fn finish(shared: &Shared, guest: Guest, clock: &Deadline, idle: Duration) {
    clock.set(Instant::now() + idle);
    match tokio::time::timeout(idle, guest.finish(shared)).await {
        Ok(Ok(live)) => shared.check_in(live),
        Ok(Err(fault)) => tracing::error!(plugin = %shared.plugin, "after its response body: {}", fault.message()),
        Err(_) => tracing::error!(plugin = %shared.plugin, "did not return within its time limit after its response body"),
    }
}

