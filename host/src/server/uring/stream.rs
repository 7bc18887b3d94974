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
//!   second wake-up; a partial send is resubmitted with what it left.
//!
//! The operations are tokio-uring's own futures, kept in the stream (the
//! vendored crate's `TcpStream::recv` gives the receive a nameable type):
//! no allocation and no socket reference count per operation.
//!
//! A **one-byte read** is a wait for the peer's next request (a new
//! connection before its first bytes, a parked idle one: `server/park.rs`),
//! and such a wait holds no buffer: the `recv` hyper left posted is
//! cancelled by its user data (a `recv` that completed first keeps its
//! bytes), both owned buffers go back to the allocator, and the stream
//! waits with a poll (`TcpStream::readable`) before posting a `recv` again.
//! Both calls are covet's additions to tokio-uring
//! (vendor/tokio-uring/COVET.md).
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

/// A `recv` in flight. The operations are tokio-uring's own futures, kept
/// in place: a boxed `async` block per operation cost an allocation and a
/// socket reference count each.
type RecvOp = tokio_uring::InFlightOneshot<tokio_uring::RecvData<Vec<u8>>, tokio_uring::RecvTransform<Vec<u8>>>;

/// A `send` (tokio-uring's `write`) in flight.
type SendOp = tokio_uring::InFlightOneshot<tokio_uring::WriteData<Vec<u8>>, tokio_uring::WriteTransform<Vec<u8>>>;

/// A tokio-uring TCP stream with tokio's I/O traits. Not `Send`: it lives on
/// the io_uring runtime thread that accepted it.
pub struct UringStream {
    socket: Rc<TcpStream>,
    /// Received bytes not yet handed out are `read_buf[read_pos..]`.
    read_buf: Vec<u8>,
    read_pos: usize,
    reading: Option<RecvOp>,
    /// `reading` was asked to cancel (a one-byte wait began).
    cancelled: bool,
    /// `reading` was posted by a one-byte wait, once the socket was
    /// readable: the bytes it waits for, never cancelled.
    posted_by_wait: bool,
    /// A one-byte wait's poll for readability, lending no buffer.
    readable: Option<Pin<Box<dyn Future<Output = io::Result<()>>>>>,
    /// The spare write buffer (taken while a send is in flight).
    write_buf: Option<Vec<u8>>,
    writing: Option<SendOp>,
}

impl UringStream {
    /// Wraps an accepted stream.
    pub fn new(socket: TcpStream) -> Self {
        UringStream {
            socket: Rc::new(socket),
            read_buf: Vec::new(),
            read_pos: 0,
            reading: None,
            cancelled: false,
            posted_by_wait: false,
            readable: None,
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

    fn start_read(&mut self) {
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.clear();
        buf.reserve(READ_BUF);
        self.read_pos = 0;
        self.reading = Some(self.socket.recv(buf).submit());
    }

    /// Waits for the send in flight, if any, sending what a partial send
    /// left; yields its error.
    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(op) = self.writing.as_mut() {
            let (result, mut buf) = ready!(Pin::new(op).poll(cx));
            self.writing = None;
            match result {
                Ok(n) if n > 0 && n < buf.len() => {
                    buf.drain(..n);
                    self.writing = Some(self.socket.write(buf).submit());
                }
                Ok(0) if !buf.is_empty() => {
                    self.write_buf = Some(buf);
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                result => {
                    self.write_buf = Some(buf);
                    return Poll::Ready(result.map(drop));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Queues a send of `data` (submitted with the ring's next batch); its
    /// result is read by the next [`UringStream::poll_sent`].
    fn start_write(&mut self, data: &[u8]) {
        let mut buf = self.write_buf.take().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.writing = Some(self.socket.write(buf).submit());
    }

    /// A one-byte wait with a `recv` in flight: cancels it (once).
    fn cancel_posted_read(&mut self) {
        if let Some(op) = self.reading.as_ref().filter(|_| !self.cancelled && !self.posted_by_wait) {
            op.cancel();
            self.cancelled = true;
        }
    }

    /// Waits until the socket is readable, holding no buffer meanwhile.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.readable.is_none() {
            (self.read_buf, self.read_pos) = (Vec::new(), 0);
            if let Some(spare) = self.write_buf.as_mut() {
                *spare = Vec::new();
            }
            let socket = self.socket.clone();
            self.readable = Some(Box::pin(async move { socket.readable().await }));
        }
        let ready = ready!(self.readable.as_mut().expect("set above").as_mut().poll(cx));
        self.readable = None;
        Poll::Ready(ready)
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        if self.reading.is_some() || self.readable.is_some() {
            let _ = self.socket.shutdown(std::net::Shutdown::Read);
        }
    }
}

impl AsyncRead for UringStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let waiting = out.remaining() == 1;
        loop {
            if this.drain_into(out) {
                return Poll::Ready(Ok(()));
            }
            if waiting {
                this.cancel_posted_read();
            }
            if let Some(op) = this.reading.as_mut() {
                let (result, buf) = ready!(Pin::new(op).poll(cx));
                (this.reading, this.read_buf, this.posted_by_wait) = (None, buf, false);
                match result {
                    // Cancelled for a one-byte wait: nothing was read.
                    Err(e) if std::mem::take(&mut this.cancelled) && e.raw_os_error() == Some(libc::ECANCELED) => continue,
                    // On EOF (`Ok(0)`) nothing is copied: an empty read is tokio's EOF.
                    result => {
                        this.cancelled = false;
                        return Poll::Ready(result.map(|_| {
                            this.drain_into(out);
                        }));
                    }
                }
            }
            if waiting {
                ready!(this.poll_readable(cx))?;
            }
            this.start_read();
            this.posted_by_wait = waiting;
        }
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_sent(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.start_write(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The bytes are queued for the kernel: flushed, as far as this stream
        // can flush. Waiting for the send here would cost every response a
        // second wake-up; so would leaving the caller's waker with it (the
        // send's completion would wake the connection's task for nothing),
        // hence the no-op waker. An error still surfaces on the next call.
        match self.poll_sent(&mut Context::from_waker(std::task::Waker::noop())) {
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

#[cfg(test)]
mod tests {
    use std::{io::Write, time::Duration};

    use tokio::io::AsyncReadExt;

    use super::*;

    /// A connected pair: the accepted side as a [`UringStream`], the
    /// client's as a blocking std stream.
    fn pair() -> (UringStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        (UringStream::new(TcpStream::from_std(accepted)), client)
    }

    /// Lets the ring complete what it can.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Whether the stream holds a receive buffer (owned, or lent to a `recv`).
    fn holds_buffer(stream: &UringStream) -> bool {
        stream.reading.is_some() || stream.read_buf.capacity() > 0
    }

    /// A one-byte wait on `stream`, run as a task: the byte read.
    fn wait_for_byte(mut stream: UringStream) -> tokio::task::JoinHandle<(UringStream, u8)> {
        tokio_uring::spawn(async move {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
            (stream, byte[0])
        })
    }

    async fn read_some(stream: &mut UringStream) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn a_new_connection_waits_for_its_first_byte_without_a_buffer() {
        tokio_uring::start(async {
            let (mut stream, mut client) = pair();
            let mut byte = [0u8; 1];
            let waited = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await;
            assert!(waited.is_err(), "nothing was sent");
            assert!(!holds_buffer(&stream) && stream.readable.is_some(), "a poll, not a recv");
            client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            let (mut stream, first) = wait_for_byte(stream).await.unwrap();
            assert_eq!(first, b'G');
            assert_eq!(read_some(&mut stream).await, b"ET / HTTP/1.1\r\n", "the rest is read at once");
        });
    }

    /// A stream after one request, with hyper's read for the next one
    /// posted and left waiting (as when the connection parks).
    async fn after_one_request() -> (UringStream, std::net::TcpStream) {
        let (mut stream, mut client) = pair();
        client.write_all(b"first").unwrap();
        assert_eq!(read_some(&mut stream).await, b"first");
        let mut buf = [0u8; 256];
        assert!(tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await.is_err());
        assert!(stream.reading.is_some(), "a recv is posted");
        (stream, client)
    }

    #[test]
    fn a_parked_wait_cancels_the_posted_recv_and_loses_no_byte() {
        tokio_uring::start(async {
            let (stream, mut client) = after_one_request().await;
            // Parked: a one-byte wait takes the recv's place.
            let waiting = wait_for_byte(stream);
            settle().await;
            client.write_all(b"second").unwrap();
            let (mut stream, first) = waiting.await.unwrap();
            assert_eq!(first, b's');
            assert_eq!(read_some(&mut stream).await, b"econd");
        });
    }

    #[test]
    fn an_idle_parked_stream_holds_no_buffer() {
        tokio_uring::start(async {
            let (mut stream, _client) = after_one_request().await;
            let mut byte = [0u8; 1];
            assert!(tokio::time::timeout(Duration::from_millis(100), stream.read(&mut byte)).await.is_err());
            assert!(!holds_buffer(&stream), "the posted recv was cancelled and its buffer freed");
            assert_eq!(stream.write_buf.as_ref().map(Vec::capacity), Some(0));
            assert!(stream.readable.is_some());
        });
    }

    #[test]
    fn a_write_larger_than_the_socket_buffers_arrives_whole() {
        tokio_uring::start(async {
            use tokio::io::AsyncWriteExt;
            let (mut stream, client) = pair();
            let body: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut &client, &mut got).unwrap();
                got
            });
            // Partial sends are resubmitted until every byte is out.
            stream.write_all(&body).await.unwrap();
            stream.write_all(b"end").await.unwrap();
            stream.shutdown().await.unwrap();
            let got = reader.join().unwrap();
            assert_eq!(got.len(), body.len() + 3);
            assert!(got[..body.len()] == body[..] && got.ends_with(b"end"));
        });
    }

    #[test]
    fn bytes_that_beat_the_cancellation_are_kept() {
        tokio_uring::start(async {
            let (mut stream, mut client) = pair();
            let mut buf = [0u8; 256];
            assert!(tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await.is_err());
            // The bytes reach the posted recv before the wait cancels it.
            client.write_all(b"raced").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let (mut stream, first) = wait_for_byte(stream).await.unwrap();
            assert_eq!(first, b'r');
            assert_eq!(read_some(&mut stream).await, b"aced");
        });
    }
}
