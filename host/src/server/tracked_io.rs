//! [`TrackedIo`]: the connection's byte stream as hyper sees it, noting
//! reads and writes in the connection's [`ConnState`] (for the watchdog's
//! timeouts), scanning HTTP/1 heads ([`super::headscan`]) and HTTP/2 frames
//! ([`super::h2frames`]) on the way.
//!
//! A close the server makes after an answer **lingers**, as nginx's
//! `lingering_close`: the write side is shut (FIN after the last response
//! bytes) and the peer's input is read and thrown away until the peer
//! closes, for at most [`LINGER_TIME`]. Closes of idle connections (the
//! idle timeout, host shutdown) do not linger: the peer is not sending
//! ([`ConnState::skip_linger`]); nor do upgraded ones (tunnels). Closing a socket with unread input sends a reset, and a
//! reset throws away whatever of the answer the kernel had not yet sent; a
//! client still writing (a body over `max_body`, a head over
//! `max_header_bytes`) gets "broken pipe" instead of its 413 or 431. A
//! client that has read its answer closes at once, ending the linger. An
//! upgraded connection (a tunnel) closes without lingering: its input is
//! the tunnel's.
//!
//! An HTTP/1 client's end of stream read while its request is answered is
//! held back from hyper for up to [`HALF_CLOSE_GRACE`]: the client may only
//! have shut its write side and still wait for the answer.
//!
//! Once an HTTP/2 peer floods control frames, its input is read and thrown
//! away rather than handed to h2: the connection does no more work for it
//! (no more SETTINGS or PING acknowledgements), the GOAWAY the watchdog
//! asks for goes out right behind the few acknowledgements already queued,
//! and the peer's writes do not back up.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::watchdog::ConnState;

/// How long an HTTP/1 request may still take after its client shut its
/// side of the connection before hyper is told (and drops the request as
/// the client gone): [`TrackedIo::hold_eof`].
pub const HALF_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads a discarding or lingering connection takes in one poll before it
/// yields to other tasks.
const DRAIN_READS_PER_POLL: usize = 16;

/// The longest a close lingers for the peer to close (nginx's
/// `lingering_time` is 30 s; the drain of a loopback or LAN client that is
/// still sending a body takes milliseconds).
pub const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// An I/O stream that reports its activity to a [`ConnState`].
pub struct TrackedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    scan: super::headscan::HeadScan,
    frames: super::h2frames::DataFrames,
    control: super::h2frames::ControlFlood,
    /// Whether the write side has been shut down (a lingering close then
    /// only drains).
    write_shut: bool,
    /// When a lingering close gives up on the peer (set when it starts).
    linger_until: Option<Pin<Box<tokio::time::Sleep>>>,
    /// [`LINGER_TIME`] (shorter in tests).
    linger_time: std::time::Duration,
    /// When the peer's end of stream was first read (coarse ms).
    eof_seen_ms: Option<u64>,
    /// Wakes hyper when an end of stream held back is due.
    eof_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes read before hyper was (re)started, handed to it first.
    replay: Option<Replay>,
}

/// Bytes [`TrackedIo`] hands out before reading its stream again.
struct Replay {
    bytes: bytes::Bytes,
    /// Whether they were tracked when first read (bytes a parked hyper
    /// had read but not parsed) or are tracked as they are handed out
    /// (read past the tracking: the sniff, the park's first byte).
    tracked: bool,
}

impl<T> TrackedIo<T> {
    /// Wraps `inner`; request targets over `max_target` bytes are cut
    /// (see [`super::headscan::HeadScan::squeeze_target`]).
    pub fn new(inner: T, state: Arc<ConnState>, max_target: usize) -> Self {
        TrackedIo { inner, state, scan: super::headscan::HeadScan::new(max_target), frames: Default::default(), control: Default::default(), write_shut: false, linger_until: None, linger_time: LINGER_TIME, eof_seen_ms: None, eof_timer: None, replay: None }
    }

    /// The stream under the tracking: what is read from it here is not
    /// tracked until [`TrackedIo::replay`] hands it to hyper.
    pub(super) fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Hands `bytes` to the next reads before the stream's own; `tracked`:
    /// they were noted when first read (not noted again).
    pub(super) fn replay(&mut self, bytes: bytes::Bytes, tracked: bool) {
        if !bytes.is_empty() {
            self.replay = Some(Replay { bytes, tracked });
        }
    }

    /// Moves replayed bytes into `buf`: `None` when there are none, else
    /// whether they were already tracked.
    fn take_replay(&mut self, buf: &mut ReadBuf<'_>) -> Option<bool> {
        let replay = self.replay.as_mut()?;
        let n = replay.bytes.len().min(buf.remaining());
        buf.put_slice(&replay.bytes.split_to(n));
        let tracked = replay.tracked;
        if replay.bytes.is_empty() {
            self.replay = None;
        }
        Some(tracked)
    }
}

impl<T> TrackedIo<T> {
    /// The peer's end of stream, read while hyper reads or answers an
    /// HTTP/1 request: hyper (without `half_close`) would take it as the
    /// client gone and drop the answer, but a client may shut its write side
    /// once its request is sent (`nc -N`, `shutdown(SHUT_WR)`) and wait. So
    /// the end of stream is held back (`Pending`) until the answers are done
    /// ([`ConnState::hold_eof_until`]) or [`HALF_CLOSE_GRACE`] passes,
    /// whichever is first; hyper then sees it and closes, or drops the
    /// request's work (a client that closed entirely looks the same on the
    /// wire, so its work goes on at most that long). On an idle connection,
    /// HTTP/2 or a tunnel it passes at once.
    fn hold_eof(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let now = self.state.now_ms();
        let first = *self.eof_seen_ms.get_or_insert(now);
        let Some(mut until) = self.state.hold_eof_until(now) else { return Poll::Ready(Ok(())) };
        if until == u64::MAX {
            // hyper may not read again once the answer is written: the end
            // of the answers wakes this read to look again. Registered
            // before looking once more, so an end in between is not missed.
            self.state.wake_when_answered(cx.waker());
            let Some(now_until) = self.state.hold_eof_until(now) else { return Poll::Ready(Ok(())) };
            until = now_until;
        }
        let until = until.min(first + HALF_CLOSE_GRACE.as_millis() as u64);
        if now >= until {
            return Poll::Ready(Ok(()));
        }
        // The grace's timer (or the recent-activity window's) wakes it otherwise.
        let at = tokio::time::Instant::now() + std::time::Duration::from_millis(until - now);
        let timer = self.eof_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        timer.as_mut().reset(at);
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.state.is_flooded() {
            return discard(&mut self.inner, cx, buf);
        }
        // Loops only when a whole read was request-target bytes cut by the
        // scan: handing hyper an empty read would mean end of stream.
        loop {
            let before = buf.filled().len();
            let polled = match self.take_replay(buf) {
                Some(true) => return Poll::Ready(Ok(())),
                Some(false) => {
                    // What the stream has now joins the replayed bytes: hyper
                    // then reads a whole head at once, where a head of one
                    // byte made it grow its fresh 8 KiB buffer to 16.
                    if buf.remaining() > 0 {
                        let _ = Pin::new(&mut self.inner).poll_read(cx, buf);
                    }
                    Poll::Ready(Ok(()))
                }
                None => Pin::new(&mut self.inner).poll_read(cx, buf),
            };
            if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
                return self.hold_eof(cx);
            }
            if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                let this = &mut *self;
                let read = &mut buf.filled_mut()[before..];
                if this.state.on_read(read) {
                    this.scan.start();
                }
                if this.state.is_h2() && this.control.feed(read, this.state.now_ms()) {
                    this.state.on_flood();
                }
                if this.scan.active() {
                    let kept = scan_read(&mut this.scan, &this.state, read);
                    buf.set_filled(before + kept);
                    if kept == 0 {
                        continue;
                    }
                }
            }
            return polled;
        }
    }
}

/// Runs the head scan over `read` and notes what it found in `state`;
/// returns how many of its bytes hyper gets.
fn scan_read(scan: &mut super::headscan::HeadScan, state: &ConnState, read: &mut [u8]) -> usize {
    let kept = scan.squeeze_target(read);
    let read = &mut read[..kept];
    if let Some(request_line) = scan.feed(read) {
        state.framing_conflict(request_line);
    }
    if let Some((request_line, version)) = scan.take_bad_version() {
        state.note_bad_version(request_line, version);
    }
    if let Some(len) = scan.take_long_target() {
        state.note_long_target(len);
    }
    kept
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if polled.is_pending() {
            self.state.on_write_blocked();
        }
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.state.on_write();
            if !self.state.is_h2() || self.frames.feed(&data[..n]) {
                self.state.on_send_progress();
            }
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if polled.is_pending() {
            self.state.on_write_blocked();
        }
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.state.on_write();
            if !self.state.is_h2() || self.frames.feed_slices(bufs, n) {
                self.state.on_send_progress();
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper closing an idle connection that is being parked: the
        // socket stays open for the connection's next request.
        if self.state.is_parking() {
            return Poll::Ready(Ok(()));
        }
        if !self.write_shut {
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.write_shut = true;
        }
        let this = &mut *self;
        if this.state.skips_linger() {
            return Poll::Ready(Ok(()));
        }
        let deadline = this.linger_until.get_or_insert_with(|| Box::pin(tokio::time::sleep(this.linger_time)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        linger(&mut this.inner, cx)
    }
}


/// Reads and throws away what `inner` has (into `buf`'s free space, then
/// unfilled again); `Pending` while the peer is still connected, `Ready`
/// with nothing read at its end of stream.
fn discard<T: AsyncRead + Unpin>(inner: &mut T, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    if buf.remaining() == 0 {
        return Poll::Pending;
    }
    for _ in 0..DRAIN_READS_PER_POLL {
        ready!(Pin::new(&mut *inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        buf.set_filled(before);
        if read == 0 {
            return Poll::Ready(Ok(()));
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Drains `inner` until the peer's end of stream (or an error): the tail
/// of a lingering close.
fn linger<T: AsyncRead + Unpin>(inner: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let mut scratch = [0u8; 4096];
    let mut buf = ReadBuf::new(&mut scratch);
    match discard(inner, cx, &mut buf) {
        Poll::Ready(_) => Poll::Ready(Ok(())),
        Poll::Pending => Poll::Pending,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A flooded connection: hyper reads nothing more, its writes still go
    /// out, and its shutdown waits for the peer's end of stream.
    #[tokio::test]
    async fn after_a_flood_input_is_discarded_and_the_close_lingers_until_the_peer_closes() {
        let (ours, mut peer) = tokio::io::duplex(64 * 1024);
        let state = Arc::new(ConnState::default());
        let mut io = TrackedIo::new(ours, state.clone(), 8192);
        state.on_flood();
        peer.write_all(&[0u8; 50_000]).await.unwrap();
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_millis(50), io.read(&mut buf)).await;
        assert!(read.is_err(), "a flooded connection hands hyper nothing: {read:?}");
        io.write_all(b"goaway").await.unwrap();
        let shutdown = tokio::spawn(async move { io.shutdown().await });
        let mut got = [0u8; 6];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"goaway");
        peer.write_all(&[1u8; 100_000]).await.expect("the peer's writes are drained, not backed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!shutdown.is_finished(), "the close lingers while the peer is connected");
        drop(peer);
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("the close ends at the peer's EOF").unwrap().unwrap();
    }

    /// An answer written before the close reaches a peer still writing,
    /// and the close ends at the peer's end of stream.
    #[tokio::test]
    async fn a_close_lingers_while_the_peer_writes_then_ends_at_its_eof() {
        let (ours, mut peer) = tokio::io::duplex(64 * 1024);
        let mut io = TrackedIo::new(ours, Arc::new(ConnState::default()), 8192);
        io.write_all(b"HTTP/1.1 413").await.unwrap();
        peer.write_all(b"the body hyper did not read").await.unwrap();
        let shutdown = tokio::spawn(async move { io.shutdown().await });
        peer.write_all(&[b'x'; 1 << 20]).await.expect("the rest of the body is drained");
        let mut answer = Vec::new();
        peer.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 413");
        drop(peer);
        tokio::time::timeout(Duration::from_secs(5), shutdown).await.expect("the close ends at the peer's EOF").unwrap().unwrap();
    }

    /// A replayed first byte reaches hyper with what the stream already
    /// holds, in one read, and is tracked as a read (a head has begun).
    #[tokio::test]
    async fn a_replayed_byte_comes_with_the_rest_of_the_head_and_is_tracked() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        let state = Arc::new(ConnState::default());
        let mut io = TrackedIo::new(ours, state.clone(), 8192);
        io.replay(bytes::Bytes::from_static(b"G"), false);
        peer.write_all(b"ET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
        assert!(!state.try_park(Duration::ZERO), "a head was read: the connection is busy");
    }

    /// Bytes hyper had read (tracked then) come back untouched and alone.
    #[tokio::test]
    async fn tracked_replayed_bytes_are_handed_out_alone() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        let state = Arc::new(ConnState::default());
        let mut io = TrackedIo::new(ours, state.clone(), 8192);
        io.replay(bytes::Bytes::from_static(b"GET / HT"), true);
        peer.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HT");
        assert!(state.try_park(Duration::ZERO), "replayed bytes were not noted again");
        state.parked();
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"TP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn an_idle_close_does_not_linger() {
        let (ours, _peer) = tokio::io::duplex(1024);
        let state = Arc::new(ConnState::default());
        state.skip_linger();
        let mut io = TrackedIo::new(ours, state, 8192);
        tokio::time::timeout(Duration::from_secs(2), io.shutdown()).await.expect("no linger").unwrap();
    }

    #[tokio::test]
    async fn a_peer_that_never_closes_is_let_go_after_the_linger_time() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        peer.write_all(b"more body").await.unwrap();
        let mut io = TrackedIo::new(ours, Arc::new(ConnState::default()), 8192);
        io.linger_time = Duration::from_millis(200);
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), io.shutdown()).await.expect("let go").unwrap();
        assert!(started.elapsed() >= io.linger_time, "it lingered {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn an_upgraded_connection_closes_without_lingering() {
        let (ours, mut peer) = tokio::io::duplex(1024);
        peer.write_all(b"tunnel bytes").await.unwrap();
        let state = Arc::new(ConnState::default());
        state.mark_upgraded();
        let mut io = TrackedIo::new(ours, state, 8192);
        tokio::time::timeout(Duration::from_secs(2), io.shutdown()).await.expect("no linger").unwrap();
    }
}
