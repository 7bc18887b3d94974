//! Tunnels after an HTTP/1.1 upgrade (WebSocket and the like): once an
//! endpoint answers `101 Switching Protocols`, the connection carries raw
//! bytes both ways. [`tunnel`] turns it into two body streams: a task pumps
//! the client's bytes (the request body stream) into the endpoint, and the
//! returned response's body yields what the endpoint writes, read only when
//! polled (so a slow client slows the endpoint down, not memory up).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::oneshot;

use crate::http::{BoxError, RequestBody, ResponseBody};

/// Largest chunk the endpoint-to-client stream yields.
const CHUNK: usize = 16 * 1024;

type Io = TokioIo<Upgraded>;
type Reader = oneshot::Receiver<Result<ReadHalf<Io>, String>>;

/// The 101 `response` as a tunnel: its body is the endpoint's bytes, and
/// `client_bytes` (data frames; trailers are ignored) are written to the
/// endpoint, its write side shut down when they end. Call inside a tokio
/// runtime, on the response to a request that asked for an upgrade.
pub(crate) fn tunnel(
    mut response: http::Response<Incoming>,
    client_bytes: Option<RequestBody>,
) -> http::Response<ResponseBody> {
    let on_upgrade = hyper::upgrade::on(&mut response);
    let (reader_tx, reader_rx) = oneshot::channel();
    tokio::spawn(pump(on_upgrade, client_bytes, reader_tx));
    let body = UpgradedBody { state: State::Waiting(reader_rx), buf: Vec::new() };
    response.map(|_| ResponseBody::from_upgraded(body.boxed_unsync(), "upgraded connection".to_owned()))
}

/// Waits for the upgraded connection, hands its read half to the response
/// body, then copies the client's bytes into the write half.
async fn pump(
    on_upgrade: OnUpgrade,
    client_bytes: Option<RequestBody>,
    reader: oneshot::Sender<Result<ReadHalf<Io>, String>>,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            let _ = reader.send(Err(format!("the endpoint's connection could not be upgraded: {e}")));
            return;
        }
    };
    let (read, mut write) = tokio::io::split(TokioIo::new(upgraded));
    if reader.send(Ok(read)).is_err() {
        // The response body is gone: nobody reads the tunnel; closing it.
        return;
    }
    if let Some(body) = client_bytes {
        copy_client_bytes(body, &mut write).await;
    }
    let _ = write.shutdown().await;
}

async fn copy_client_bytes(mut body: RequestBody, write: &mut WriteHalf<Io>) {
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => {
                tracing::debug!(error = %e, "tunnel: the client's byte stream failed; closing the endpoint's side");
                return;
            }
        };
        if let Err(e) = async {
            write.write_all(&data).await?;
            write.flush().await
        }
        .await
        {
            tracing::debug!(error = %e, "tunnel: writing to the endpoint failed");
            return;
        }
    }
}

/// The endpoint's bytes, once the upgrade completed.
struct UpgradedBody {
    state: State,
    /// Read buffer (allocated on the first read).
    buf: Vec<u8>,
}

enum State {
    Waiting(Reader),
    Reading(ReadHalf<Io>),
    Done,
}

impl Body for UpgradedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Waiting(rx) => {
                    let outcome = ready!(Pin::new(rx).poll(cx));
                    match outcome {
                        Ok(Ok(read)) => this.state = State::Reading(read),
                        Ok(Err(message)) => {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(message.into())));
                        }
                        Err(_) => {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err("the tunnel's upgrade task ended".into())));
                        }
                    }
                }
                State::Reading(read) => {
                    if this.buf.is_empty() {
                        this.buf = vec![0; CHUNK];
                    }
                    let mut buf = ReadBuf::new(&mut this.buf);
                    let result = ready!(Pin::new(read).poll_read(cx, &mut buf));
                    let filled = buf.filled();
                    return match result {
                        Err(e) => {
                            this.state = State::Done;
                            Poll::Ready(Some(Err(e.into())))
                        }
                        Ok(()) if filled.is_empty() => {
                            this.state = State::Done;
                            Poll::Ready(None)
                        }
                        Ok(()) => Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(filled))))),
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
