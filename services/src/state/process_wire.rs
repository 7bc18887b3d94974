//! The wire format between [`super::ProcessState`] (a child host process)
//! and [`super::serve_state`] (the supervisor): length-prefixed frames, a
//! big-endian `u32` byte count then that many bytes of JSON, at most
//! [`MAX_FRAME`] bytes. A request is `{"id":N,"op":{…}}` ([`Request`]), its
//! reply `{"id":N,"result":{…}}` ([`Reply`]) with the same id; replies may
//! come in any order. Errors travel as [`WireError`], which mirrors every
//! [`ServiceError`] variant, so the client rebuilds the very variant (and
//! message) the backend returned: `Unsupported` stays `Unsupported`.

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Value;
use crate::ServiceError;

/// The largest frame either side sends or accepts (16 MiB of JSON).
pub(super) const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One operation of [`super::SharedState`], as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Op {
    Get { ns: String, key: String },
    Set { ns: String, key: String, value: Vec<u8>, ttl: Option<Duration> },
    Incr { ns: String, key: String, delta: i64, ttl: Option<Duration> },
    Cas { ns: String, key: String, expected: Option<Vec<u8>>, new: Option<Vec<u8>>, ttl: Option<Duration> },
    Delete { ns: String, key: String },
    Eval { ns: String, script: String, keys: Vec<String>, args: Vec<String> },
}

impl Op {
    /// The operation's name in timeouts and errors (`GET`, `INCR`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Get { .. } => "GET",
            Op::Set { .. } => "SET",
            Op::Incr { .. } => "INCR",
            Op::Cas { .. } => "compare-and-set",
            Op::Delete { .. } => "DELETE",
            Op::Eval { .. } => "EVAL",
        }
    }
}

/// A request frame's content.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Request {
    pub id: u64,
    pub op: Op,
}

/// Only the id of a request whose operation could not be read (a newer
/// client's operation, say), so that the server can still answer it.
#[derive(Debug, Deserialize)]
pub(super) struct RequestId {
    pub id: u64,
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Answer {
    /// `get`.
    Value(Option<Vec<u8>>),
    /// `set`.
    Done,
    /// `incr`.
    Int(i64),
    /// `compare_and_set`, `delete`.
    Bool(bool),
    /// `eval`.
    Script(WireValue),
}

/// A reply frame's content.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Reply {
    pub id: u64,
    pub result: Result<Answer, WireError>,
}

/// [`Value`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum WireValue {
    Nil,
    Int(i64),
    Bytes(Vec<u8>),
    Array(Vec<WireValue>),
}

impl From<Value> for WireValue {
    fn from(value: Value) -> WireValue {
        match value {
            Value::Nil => WireValue::Nil,
            Value::Int(i) => WireValue::Int(i),
            Value::Bytes(b) => WireValue::Bytes(b),
            Value::Array(items) => WireValue::Array(items.into_iter().map(WireValue::from).collect()),
        }
    }
}

impl From<WireValue> for Value {
    fn from(value: WireValue) -> Value {
        match value {
            WireValue::Nil => Value::Nil,
            WireValue::Int(i) => Value::Int(i),
            WireValue::Bytes(b) => Value::Bytes(b),
            WireValue::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
        }
    }
}

/// [`ServiceError`] on the wire: one variant per variant, same fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum WireError {
    Denied { plugin: String, what: String, grant: String },
    Timeout { what: String, after: Duration },
    Connect { target: String, reason: String },
    Tls(String),
    Http(String),
    Unsupported(String),
    Backend(String),
    Config(String),
    ShutDown,
    Unavailable { upstream: String, reason: String },
    Overloaded { upstream: String, retry_after: Duration },
}

impl From<ServiceError> for WireError {
    fn from(error: ServiceError) -> WireError {
        match error {
            ServiceError::Denied { plugin, what, grant } => WireError::Denied { plugin, what, grant: grant.into() },
            ServiceError::Timeout { what, after } => WireError::Timeout { what, after },
            ServiceError::Connect { target, reason } => WireError::Connect { target, reason },
            ServiceError::Tls(m) => WireError::Tls(m),
            ServiceError::Http(m) => WireError::Http(m),
            ServiceError::Unsupported(m) => WireError::Unsupported(m),
            ServiceError::Backend(m) => WireError::Backend(m),
            ServiceError::Config(m) => WireError::Config(m),
            ServiceError::ShutDown => WireError::ShutDown,
            ServiceError::Unavailable { upstream, reason } => WireError::Unavailable { upstream, reason },
            ServiceError::Overloaded { upstream, retry_after } => WireError::Overloaded { upstream, retry_after },
        }
    }
}

impl From<WireError> for ServiceError {
    fn from(error: WireError) -> ServiceError {
        match error {
            WireError::Denied { plugin, what, grant } => {
                ServiceError::Denied { plugin, what, grant: static_grant(&grant) }
            }
            WireError::Timeout { what, after } => ServiceError::Timeout { what, after },
            WireError::Connect { target, reason } => ServiceError::Connect { target, reason },
            WireError::Tls(m) => ServiceError::Tls(m),
            WireError::Http(m) => ServiceError::Http(m),
            WireError::Unsupported(m) => ServiceError::Unsupported(m),
            WireError::Backend(m) => ServiceError::Backend(m),
            WireError::Config(m) => ServiceError::Config(m),
            WireError::ShutDown => ServiceError::ShutDown,
            WireError::Unavailable { upstream, reason } => ServiceError::Unavailable { upstream, reason },
            WireError::Overloaded { upstream, retry_after } => ServiceError::Overloaded { upstream, retry_after },
        }
    }
}

/// `Denied`'s grant is a `&'static str` naming a manifest key: the known
/// keys map to themselves; anything else (a newer server's) reads `state`,
/// the only grant a state operation can be denied for.
fn static_grant(grant: &str) -> &'static str {
    match grant {
        "outbound_http" => "outbound_http",
        "upstreams" => "upstreams",
        _ => "state",
    }
}

/// `value` as one frame: length prefix and JSON; a `Backend` error when it
/// would exceed [`MAX_FRAME`] (nothing is sent then).
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ServiceError> {
    let mut frame = vec![0; 4];
    serde_json::to_writer(&mut frame, value)
        .map_err(|e| ServiceError::Backend(format!("cannot encode a state frame: {e}")))?;
    let len = frame.len() - 4;
    if len > MAX_FRAME {
        return Err(too_large(len));
    }
    let prefix = u32::try_from(len).map_err(|_| too_large(len))?.to_be_bytes();
    frame[..4].copy_from_slice(&prefix);
    Ok(frame)
}

fn too_large(len: usize) -> ServiceError {
    ServiceError::Backend(format!(
        "a state frame of {len} bytes exceeds the limit of {MAX_FRAME} bytes (16 MiB): store smaller values"
    ))
}

/// The next frame's bytes; `Ok(None)` at a clean end of stream (between
/// frames). A length above [`MAX_FRAME`] is an `InvalidData` error, read no further.
pub(super) async fn read_frame<R: AsyncReadExt + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        let why = format!("a state frame announces {len} bytes, above the limit of {MAX_FRAME} bytes (16 MiB)");
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    let mut frame = vec![0; len];
    reader.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

/// Writes the frames `next` yields (already encoded) until it yields `None`,
/// flushing whenever no further frame is ready, so that a burst of replies
/// goes out in few writes.
pub(super) async fn write_frames<W: AsyncWrite + Unpin>(
    writer: W,
    frames: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut writer = tokio::io::BufWriter::new(writer);
    while let Some(frame) = frames.recv().await {
        writer.write_all(&frame).await?;
        while let Ok(frame) = frames.try_recv() {
            writer.write_all(&frame).await?;
        }
        writer.flush().await?;
    }
    writer.shutdown().await
}
