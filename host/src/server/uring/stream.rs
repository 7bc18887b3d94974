//! [`UringStream`]: a tokio-uring TCP stream behind tokio's `AsyncRead` /
//! `AsyncWrite`, so hyper (through `TokioIo`), the connection watchdog's
//! `TrackedIo` and tokio-rustls can run on it unchanged.
//!
//! io_uring needs buffers it owns for the whole operation, while tokio's
//! traits lend a buffer for one poll. So each stream keeps one read buffer
//! and one write buffer:
//!
//! - **reads** fill the owned buffer with one `recv` and copy out of it; what
//!   the caller's buffer cannot take stays for the next `poll_read`;
//! - **writes** are write-behind: `poll_write` copies the bytes into the owned
//!   buffer, submits a `send` of all of them and reports them written; the
//!   next write or `poll_shutdown` waits for that send (and returns its
//!   error, if any); `poll_flush` reports a send still in flight as flushed
//!   (the bytes are queued for the kernel), which saves every response a
//!   second wake-up.
//!
//! A dropped stream drops its in-flight operations; tokio-uring keeps their
//! buffers, and the socket, alive until the kernel completes them. A `recv`
//! that may never complete (a silent peer, e.g. a slowloris client cut off by
//! the watchdog) would keep the socket open forever, so dropping a stream
//! with a read in flight shuts its read side down, which completes the read.

use std::{
    future::Future,
    io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_uring::net::TcpStream;

/// Size of the owned read buffer (one `recv` at most).
const READ_BUF: usize = 16 * 1024;

/// An operation in flight: its result and the buffer handed back.
type Op<T> = Pin<Box<dyn Future<Output = (io::Result<T>, Vec<u8>)>>>;

/// A tokio-uring TCP stream with tokio's I/O traits. Not `Send`: it lives on
/// the io_uring runtime thread that accepted it.
pub struct UringStream {
    socket: Rc<TcpStream>,
    /// Received bytes not yet handed out are `read_buf[read_pos..]`.
    read_buf: Vec<u8>,
    read_pos: usize,
    reading: Option<Op<usize>>,
    /// The spare write buffer (taken while a send is in flight).
    write_buf: Option<Vec<u8>>,
    writing: Option<Op<()>>,
}

impl UringStream {
    /// Wraps an accepted stream.
    pub fn new(socket: TcpStream) -> Self {
        UringStream {
            socket: Rc::new(socket),
            read_buf: Vec::new(),
            read_pos: 0,
            reading: None,
            write_buf: Some(Vec::new()),
            writing: None,
        }
    }

    /// Copies buffered bytes into `out`; `false` when none are buffered.
    fn drain_into(&mut self, out: &mut ReadBuf<'_>) -> bool {
        let buffered = &self.read_buf[self.read_pos..];
        if buffered.is_empty() {
            return false;
        }
        let n = buffered.len().min(out.remaining());
        out.put_slice(&buffered[..n]);
        self.read_pos += n;
        true
    }

    fn start_read(&mut self) -> &mut Op<usize> {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.clear();
        buf.reserve(READ_BUF);
        self.read_pos = 0;
        let socket = self.socket.clone();
        self.reading.insert(Box::pin(async move { socket.read(buf).await }))
    }

    /// Waits for the send in flight, if any; yields its error.
    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = self.writing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let (result, buf) = ready!(op.as_mut().poll(cx));
        self.writing = None;
        self.write_buf = Some(buf);
        Poll::Ready(result)
    }

    /// Submits a send of `data`; an error only when it failed at once.
    fn start_write(&mut self, data: &[u8], cx: &mut Context<'_>) -> io::Result<()> {
        let mut buf = self.write_buf.take().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        let socket = self.socket.clone();
        let op: Op<()> = Box::pin(async move { socket.write_all(buf).await });
        self.writing = Some(op);
        // Poll once so the send is queued for submission now.
        match self.poll_sent(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        if self.reading.is_some() {
            let _ = self.socket.shutdown(std::net::Shutdown::Read);
        }
    }
}

impl AsyncRead for UringStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.drain_into(out) {
            return Poll::Ready(Ok(()));
        }
        let op = match this.reading.as_mut() {
            Some(op) => op,
            None => this.start_read(),
        };
        let (result, buf) = ready!(op.as_mut().poll(cx));
        this.reading = None;
        this.read_buf = buf;
        // On EOF (`Ok(0)`) nothing is copied: an empty read is tokio's EOF.
        Poll::Ready(result.map(|_| {
            this.drain_into(out);
        }))
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_sent(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Poll::Ready(self.start_write(data, cx).map(|()| data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The bytes are queued for the kernel: flushed, as far as this stream
        // can flush. Waiting for the send here would cost every response a
        // second wake-up; an error still surfaces on the next call.
        match self.poll_sent(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_sent(cx))?;
        Poll::Ready(self.socket.shutdown(std::net::Shutdown::Write).or_else(|e| {
            // The peer may already be gone; that is a finished shutdown.
            if e.kind() == io::ErrorKind::NotConnected { Ok(()) } else { Err(e) }
        }))
    }
}
