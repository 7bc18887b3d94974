//! The process backend of the shared state, for multi-process mode
//! (`processes: N`): the supervisor owns one backend (a [`super::MemoryState`])
//! and serves it on a Unix socket with [`super::serve_state`]; each child host
//! process reaches it through a [`ProcessState`], so a counter or a rate
//! limit is one for the whole host, not one per child.
//!
//! A [`ProcessState`] multiplexes every operation of its process, from any
//! task or thread, on one connection: each request carries an id, the
//! caller waits on a oneshot kept in a map under that id, one task writes
//! the queued request frames and reads the replies (which may come in any
//! order) back to their callers. The wire format is in `process_wire.rs`.
//!
//! It connects lazily, on the first operation, so it can be built before the
//! supervisor listens. When the connection breaks, the operations in flight
//! fail with `Connect` and the next operation connects again (no backoff: a
//! Unix socket connect is refused at once while the server is gone). Every
//! operation, connecting included, is bounded by the constructor's timeout
//! and fails with `Timeout` past it.

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};

use super::process_wire::{self as wire, Answer, Op, Reply, Request};
use super::{SharedState, StateResult, Value};
use crate::ServiceError;

/// Request frames waiting for the writer.
const REQUEST_QUEUE: usize = 1024;

type Waiter = oneshot::Sender<Result<Answer, ServiceError>>;

/// The client of a [`super::serve_state`] server: the shared state of a child process.
pub struct ProcessState {
    path: PathBuf,
    timeout: Duration,
    next_id: AtomicU64,
    current: Mutex<Option<Arc<Connection>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl ProcessState {
    /// The timeout [`ProcessState::with_default_timeout`] uses: 1 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A client of the server listening on `path`; each operation, connecting
    /// included, fails with `Timeout` after `timeout`. Connects lazily (on the
    /// first operation), so it needs no runtime and no server yet.
    pub fn new(path: PathBuf, timeout: Duration) -> Arc<ProcessState> {
        Arc::new(ProcessState {
            path,
            timeout,
            next_id: AtomicU64::new(1),
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// [`ProcessState::new`] with [`ProcessState::DEFAULT_TIMEOUT`] (1 s).
    pub fn with_default_timeout(path: PathBuf) -> Arc<ProcessState> {
        ProcessState::new(path, ProcessState::DEFAULT_TIMEOUT)
    }

    /// The server's socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `op` and waits for its answer, all within the timeout.
    async fn call(&self, op: Op) -> Result<Answer, ServiceError> {
        let what = op.name();
        match tokio::time::timeout(self.timeout, self.round_trip(op)).await {
            Ok(result) => result,
            Err(_) => Err(ServiceError::Timeout { what: format!("state server {what}"), after: self.timeout }),
        }
    }

    async fn round_trip(&self, op: Op) -> Result<Answer, ServiceError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(&Request { id, op })?;
        let connection = self.connection().await?;
        let (waiter, answer) = oneshot::channel();
        let _registered = connection.register(id, waiter).ok_or_else(|| self.closed())?;
        connection.requests.send(frame).await.map_err(|_| self.closed())?;
        answer.await.map_err(|_| self.closed())?
    }

    /// The open connection, or a new one when there is none or it broke.
    async fn connection(&self) -> Result<Arc<Connection>, ServiceError> {
        if let Some(open) = self.open_connection() {
            return Ok(open);
        }
        let _only_one_connects = self.connecting.lock().await;
        if let Some(open) = self.open_connection() {
            return Ok(open);
        }
        let stream = UnixStream::connect(&self.path).await.map_err(|e| self.connect_error(&e.to_string()))?;
        let connection = Connection::start(stream, self.path.display().to_string());
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    fn open_connection(&self) -> Option<Arc<Connection>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|c| c.is_open()).cloned()
    }

    fn connect_error(&self, reason: &str) -> ServiceError {
        ServiceError::Connect { target: self.path.display().to_string(), reason: reason.to_owned() }
    }

    fn closed(&self) -> ServiceError {
        self.connect_error(CLOSED)
    }
}

/// Why in-flight operations fail when their connection breaks.
const CLOSED: &str = "the connection to the shared state server closed (the next operation reconnects)";

/// One connection to the server: the request queue its task writes, and the
/// callers waiting for replies (`None` once it has closed).
struct Connection {
    requests: mpsc::Sender<Vec<u8>>,
    waiting: Arc<Waiting>,
}

/// The callers awaiting a reply, by request id; `None` once the connection closed.
struct Waiting {
    map: Mutex<Option<HashMap<u64, Waiter>>>,
    target: String,
}

impl Connection {
    /// Spawns the connection's task (on the current runtime) and returns its handle.
    fn start(stream: UnixStream, target: String) -> Arc<Connection> {
        let (requests, queue) = mpsc::channel(REQUEST_QUEUE);
        let waiting = Arc::new(Waiting { map: Mutex::new(Some(HashMap::new())), target });
        tokio::spawn(drive(stream, queue, waiting.clone()));
        Arc::new(Connection { requests, waiting })
    }

    fn is_open(&self) -> bool {
        self.waiting.lock().is_some() && !self.requests.is_closed()
    }

    /// Registers the caller of request `id`; `None` when the connection has
    /// closed. The returned guard unregisters it when dropped (a timed-out
    /// caller leaves no entry behind).
    fn register(&self, id: u64, waiter: Waiter) -> Option<Registered> {
        self.waiting.lock().as_mut()?.insert(id, waiter);
        Some(Registered { waiting: self.waiting.clone(), id })
    }
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, Waiter>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `reply` to its caller, if it is still waiting.
    fn deliver(&self, reply: Reply) {
        let waiter = self.lock().as_mut().and_then(|map| map.remove(&reply.id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(reply.result.map_err(ServiceError::from));
        }
    }

    /// Marks the connection closed and fails every waiting caller with `why`.
    fn close(&self, why: &str) {
        let waiters = self.lock().take().unwrap_or_default();
        for waiter in waiters.into_values() {
            let error = ServiceError::Connect { target: self.target.clone(), reason: why.to_owned() };
            let _ = waiter.send(Err(error));
        }
    }
}

/// Removes a caller's entry when its call ends, answered or not.
struct Registered {
    waiting: Arc<Waiting>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(map) = self.waiting.lock().as_mut() {
            map.remove(&self.id);
        }
    }
}

/// The connection's task: writes queued requests and reads replies until
/// either side fails, the server closes, or the client is dropped (the
/// queue's sender with it); then fails whatever still waits.
async fn drive(stream: UnixStream, mut queue: mpsc::Receiver<Vec<u8>>, waiting: Arc<Waiting>) {
    let (read, write) = stream.into_split();
    let why = tokio::select! {
        result = read_replies(read, &waiting) => match result {
            Ok(()) => CLOSED.to_owned(),
            Err(e) => format!("reading from the shared state server failed: {e} (the next operation reconnects)"),
        },
        result = wire::write_frames(write, &mut queue) => match result {
            Ok(()) => "the client was dropped".to_owned(),
            Err(e) => format!("writing to the shared state server failed: {e} (the next operation reconnects)"),
        },
    };
    waiting.close(&why);
}

/// Delivers each reply frame to its caller; ends when the server closes.
async fn read_replies(read: OwnedReadHalf, waiting: &Waiting) -> std::io::Result<()> {
    let mut reader = BufReader::new(read);
    while let Some(frame) = wire::read_frame(&mut reader).await? {
        let reply: Reply = serde_json::from_slice(&frame).map_err(std::io::Error::other)?;
        waiting.deliver(reply);
    }
    Ok(())
}

/// The answer `op` expects, or a `Backend` error naming what came instead.
fn unexpected(op: &str, answer: &Answer) -> ServiceError {
    ServiceError::Backend(format!("the shared state server answered {op} with {answer:?}"))
}

impl SharedState for ProcessState {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            match self.call(Op::Get { ns: ns.into(), key: key.into() }).await? {
                Answer::Value(value) => Ok(value),
                other => Err(unexpected("GET", &other)),
            }
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StateResult<'a, ()> {
        Box::pin(async move {
            match self.call(Op::Set { ns: ns.into(), key: key.into(), value, ttl }).await? {
                Answer::Done => Ok(()),
                other => Err(unexpected("SET", &other)),
            }
        })
    }

    fn incr<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateResult<'a, i64> {
        Box::pin(async move {
            match self.call(Op::Incr { ns: ns.into(), key: key.into(), delta, ttl }).await? {
                Answer::Int(value) => Ok(value),
                other => Err(unexpected("INCR", &other)),
            }
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StateResult<'a, bool> {
        let op = Op::Cas { ns: ns.into(), key: key.into(), expected: expected.map(<[u8]>::to_vec), new, ttl };
        Box::pin(async move {
            match self.call(op).await? {
                Answer::Bool(done) => Ok(done),
                other => Err(unexpected("compare-and-set", &other)),
            }
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, bool> {
        Box::pin(async move {
            match self.call(Op::Delete { ns: ns.into(), key: key.into() }).await? {
                Answer::Bool(existed) => Ok(existed),
                other => Err(unexpected("DELETE", &other)),
            }
        })
    }

    fn eval<'a>(
        &'a self,
        ns: &'a str,
        script: &'a str,
        keys: &'a [String],
        args: &'a [String],
    ) -> StateResult<'a, Value> {
        let op = Op::Eval { ns: ns.into(), script: script.into(), keys: keys.to_vec(), args: args.to_vec() };
        Box::pin(async move {
            match self.call(op).await? {
                Answer::Script(value) => Ok(value.into()),
                other => Err(unexpected("EVAL", &other)),
            }
        })
    }

    fn backend(&self) -> &'static str {
        "process"
    }
}
