//! The supervisor's side of the process backend: [`serve_state`] answers
//! the [`super::ProcessState`] clients of the child host processes from one
//! backend (the supervisor's `MemoryState`), so every child sees the same
//! keys and counters.
//!
//! Each connection is served on its own task: a reader that takes request
//! frames, and a writer that sends the replies as they are ready. A request
//! whose operation completes on its first poll (every `MemoryState`
//! operation does) is answered inline; any other runs on a task of its own,
//! so one slow operation never holds up the others of its connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::process_wire::{self as wire, Answer, Op, Reply, Request, RequestId, WireError};
use super::{SharedState, Value};
use crate::ServiceError;

/// Replies waiting for the writer, per connection.
const REPLY_QUEUE: usize = 256;

/// Serves `backend` to [`super::ProcessState`] clients connecting to
/// `listener`, forever. Dropping (or aborting) this future closes every
/// connection it accepted, as the supervisor's exit would. Accept errors
/// (out of file descriptors) are logged and retried after a pause.
pub async fn serve_state(listener: UnixListener, backend: Arc<dyn SharedState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, backend.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "shared state server: accept failed; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One client connection: reads requests until the client closes it (or
/// sends a bad frame), then finishes the replies still in flight.
async fn serve_connection(stream: UnixStream, backend: Arc<dyn SharedState>) {
    let (read, write) = stream.into_split();
    let (replies, mut queue) = mpsc::channel(REPLY_QUEUE);
    let reading = read_requests(read, backend, replies);
    let writing = wire::write_frames(write, &mut queue);
    let (read_result, write_result) = tokio::join!(reading, writing);
    if let Err(e) = read_result {
        tracing::warn!(error = %e, "shared state server: closing a connection after a bad request frame");
    }
    if let Err(e) = write_result {
        tracing::debug!(error = %e, "shared state server: a client went away before its replies were sent");
    }
}

/// Reads request frames and answers each; ends at the end of the stream.
async fn read_requests(
    read: OwnedReadHalf,
    backend: Arc<dyn SharedState>,
    replies: mpsc::Sender<Vec<u8>>,
) -> io::Result<()> {
    let mut reader = BufReader::new(read);
    while let Some(frame) = wire::read_frame(&mut reader).await? {
        let mut answer = Box::pin(answer_frame(backend.clone(), frame));
        match poll_once(answer.as_mut()).await {
            Poll::Ready(reply) => send(&replies, reply).await,
            Poll::Pending => {
                let replies = replies.clone();
                tokio::spawn(async move { send(&replies, answer.await).await });
            }
        }
    }
    Ok(())
}

/// Polls `future` once (with this task's waker; a task that takes it over polls it again).
async fn poll_once<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

async fn send(replies: &mpsc::Sender<Vec<u8>>, reply: Vec<u8>) {
    // An error means the writer is gone (the client left): nobody to answer.
    let _ = replies.send(reply).await;
}

/// The encoded reply to one request frame.
async fn answer_frame(backend: Arc<dyn SharedState>, frame: Vec<u8>) -> Vec<u8> {
    let reply = match serde_json::from_slice::<Request>(&frame) {
        Ok(request) => {
            Reply { id: request.id, result: run(backend.as_ref(), request.op).await.map_err(WireError::from) }
        }
        Err(e) => unreadable(&frame, &e),
    };
    wire::encode(&reply).unwrap_or_else(|e| {
        let error = Reply { id: reply.id, result: Err(WireError::from(e)) };
        wire::encode(&error).expect("an error reply fits in a frame")
    })
}

/// The reply to a request whose operation this server cannot read: a
/// `Backend` error when its id can be read, else one for id 0 (which the
/// client never uses, so nothing waits for it; the op times out).
fn unreadable(frame: &[u8], error: &serde_json::Error) -> Reply {
    let id = serde_json::from_slice::<RequestId>(frame).map_or(0, |r| r.id);
    let message = format!("the shared state server cannot read this request: {error}");
    Reply { id, result: Err(WireError::Backend(message)) }
}

/// Runs `op` on `backend`.
async fn run(backend: &dyn SharedState, op: Op) -> Result<Answer, ServiceError> {
    Ok(match op {
        Op::Get { ns, key } => Answer::Value(backend.get(&ns, &key).await?),
        Op::Set { ns, key, value, ttl } => {
            backend.set(&ns, &key, value, ttl).await?;
            Answer::Done
        }
        Op::Incr { ns, key, delta, ttl } => Answer::Int(backend.incr(&ns, &key, delta, ttl).await?),
        Op::Cas { ns, key, expected, new, ttl } => {
            Answer::Bool(backend.compare_and_set(&ns, &key, expected.as_deref(), new, ttl).await?)
        }
        Op::Delete { ns, key } => Answer::Bool(backend.delete(&ns, &key).await?),
        Op::Eval { ns, script, keys, args } => {
            let value: Value = backend.eval(&ns, &script, &keys, &args).await?;
            Answer::Script(value.into())
        }
    })
}
