//! Idle connections without hyper: an idle HTTP/1 keep-alive connection
//! costs little more than its socket (docs/io.md "Memory per connection").
//!
//! hyper keeps a connection's read buffer (8 KiB and up) and its own state
//! for as long as the connection lives, idle or not. So a connection holds
//! hyper only while it has something to do:
//!
//! - a new connection waits for its first byte before hyper (and the
//!   watchdog task) exist; the first bytes also name the protocol: HTTP/2's
//!   preface (`PRI * HTTP/2.0…`, 24 bytes) or HTTP/1 ([`first_bytes`]);
//! - an HTTP/1 connection idle for [`PARK_AFTER`] is **parked**: the
//!   watchdog says so ([`super::watchdog::Expiry::Park`]), the connection
//!   is closed in hyper's view without shutting the socket
//!   ([`super::watchdog::ConnState::try_park`]), hyper's connection is
//!   dropped (its buffers freed) and the task waits for the next byte with
//!   a one-byte read ([`next_byte`]); that byte, and any hyper had read but
//!   not parsed, are handed to a fresh hyper connection first
//!   ([`super::tracked_io::TrackedIo::replay`]).
//!
//! A parked connection still closes after `idle_timeout` (measured from its
//! last bytes, as before) and when the host shuts down, without lingering:
//! its peer is not sending. HTTP/2 connections are not parked (h2's state is
//! per stream and its flow-control windows must survive).

use std::{
    sync::atomic::{AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::watch,
    time::Instant,
};

use super::{tracked_io::TrackedIo, watchdog::ConnState};

/// How long an idle HTTP/1 connection keeps hyper before it is parked: long
/// enough that a client sending its next request within it (any load
/// generator, a browser's burst) never pays for a new hyper connection,
/// short enough that an idle fleet of keep-alive connections holds no buffers.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long closing a parked connection (TLS `close_notify`, FIN) may take.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// TCP connections (HTTP/1.1, HTTP/2) open, and those of them waiting for
/// bytes without hyper (before their first bytes, or parked): the
/// `covet_connections_open` / `covet_connections_parked` gauges.
static OPEN: AtomicUsize = AtomicUsize::new(0);
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// `(open, parked)` TCP connections, host-wide.
pub fn connections() -> (usize, usize) {
    (OPEN.load(Relaxed), PARKED.load(Relaxed))
}

/// Counts a connection in one of the gauges while it lives.
pub struct Counted(&'static AtomicUsize);

impl Counted {
    /// Counts an open connection until the value drops.
    pub fn open() -> Counted {
        OPEN.fetch_add(1, Relaxed);
        Counted(&OPEN)
    }

    fn parked() -> Counted {
        PARKED.fetch_add(1, Relaxed);
        Counted(&PARKED)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Waits for the connection's next byte holding no buffer but one byte,
/// until `idle` after its last bytes or the host's shutdown (then the
/// connection is closed, without lingering). `None`: the connection is
/// over (closed by the peer, an error, idle, shutdown).
pub async fn next_byte<S>(io: &mut TrackedIo<S>, state: &ConnState, idle: Duration, stop: &mut watch::Receiver<bool>) -> Option<u8>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let left = state.idle_deadline_ms(idle).saturating_sub(state.now_ms());
    let deadline = Instant::now() + Duration::from_millis(left);
    let mut byte = [0u8; 1];
    let _parked = Counted::parked();
    tokio::select! {
        read = io.inner_mut().read(&mut byte) => return match read {
            Ok(1) => Some(byte[0]),
            _ => None,
        },
        () = tokio::time::sleep_until(deadline) => {}
        () = super::stopped(stop) => {}
    }
    state.skip_linger();
    let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
    None
}

/// How long after a connection parks its thread hands freed memory back
/// to the system: a burst of connections going idle is collected once.
const RELEASE_AFTER: Duration = Duration::from_millis(500);

/// Hands the memory connections freed when they parked back to the system,
/// [`RELEASE_AFTER`] from now, at most once per thread in that time.
/// mimalloc keeps freed pages for reuse (and purges them only on its next
/// allocations, which an idle thread does not make), so without this an
/// idle fleet's RSS stays at its busy size. A collection takes 1–2 ms at
/// 10,000 connections on a thread (measured, docs/io.md).
pub fn release_memory_soon() {
    thread_local!(static PENDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if PENDING.replace(true) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(RELEASE_AFTER).await;
        PENDING.set(false);
        // SAFETY: mi_collect only walks and trims mimalloc's heap of the
        // calling thread (and abandoned ones); it is a no-op where mimalloc
        // is not the allocator (unit tests).
        unsafe { libmimalloc_sys::mi_collect(true) };
    });
}

/// Reads on from a connection's `first` byte until its protocol is known
/// (within `within`, the header-read timeout), sets it in `state` and hands
/// the bytes read to hyper. `Some(true)`: HTTP/2; `None`: the peer went
/// away or stalled mid-preface.
pub async fn first_bytes<S>(io: &mut TrackedIo<S>, state: &ConnState, first: u8, within: Duration) -> Option<bool>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut read = [0u8; H2_PREFACE.len()];
    read[0] = first;
    let mut len = 1;
    let sniff = async {
        while len < read.len() && read[..len] == H2_PREFACE[..len] {
            match io.inner_mut().read(&mut read[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
    };
    tokio::time::timeout(within, sniff).await.ok()?;
    let h2 = read[..len] == H2_PREFACE[..];
    state.set_h2(h2);
    io.replay(Bytes::copy_from_slice(&read[..len]), false);
    Some(h2)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;

    use super::*;

    fn tracked(stream: tokio::io::DuplexStream) -> (TrackedIo<tokio::io::DuplexStream>, Arc<ConnState>) {
        let state = Arc::new(ConnState::default());
        (TrackedIo::new(stream, state.clone(), 8192), state)
    }

    async fn sniffed(sent: &[u8]) -> (Option<bool>, Vec<u8>, bool) {
        let (ours, mut peer) = tokio::io::duplex(1024);
        let (mut io, state) = tracked(ours);
        peer.write_all(sent).await.unwrap();
        drop(peer);
        let (_tx, mut stop) = watch::channel(false);
        let first = next_byte(&mut io, &state, Duration::from_secs(5), &mut stop).await.unwrap();
        let h2 = first_bytes(&mut io, &state, first, Duration::from_secs(5)).await;
        let mut replayed = Vec::new();
        io.read_to_end(&mut replayed).await.unwrap();
        (h2, replayed, state.is_h2())
    }

    #[tokio::test]
    async fn the_h2_preface_names_http2_and_every_byte_reaches_hyper() {
        let mut sent = H2_PREFACE.to_vec();
        sent.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let (h2, replayed, is_h2) = sniffed(&sent).await;
        assert_eq!(h2, Some(true));
        assert!(is_h2);
        assert_eq!(replayed, sent);
    }

    #[tokio::test]
    async fn a_request_starting_with_p_is_http1_and_kept_whole() {
        for sent in [&b"POST / HTTP/1.1\r\n\r\n"[..], b"PRI / HTTP/1.1\r\n\r\n", b"G", b"PR"] {
            let (h2, replayed, is_h2) = sniffed(sent).await;
            assert_eq!(h2, Some(false), "{sent:?}");
            assert!(!is_h2);
            assert_eq!(replayed, sent);
        }
    }

    #[tokio::test]
    async fn a_peer_that_closes_without_a_byte_ends_the_wait() {
        let (ours, peer) = tokio::io::duplex(64);
        let (mut io, state) = tracked(ours);
        drop(peer);
        let (_tx, mut stop) = watch::channel(false);
        assert_eq!(next_byte(&mut io, &state, Duration::from_secs(5), &mut stop).await, None);
    }

    #[tokio::test]
    async fn an_idle_wait_ends_at_the_idle_timeout_and_at_shutdown() {
        let (ours, _peer) = tokio::io::duplex(64);
        let (mut io, state) = tracked(ours);
        let (_tx, mut stop) = watch::channel(false);
        let started = std::time::Instant::now();
        assert_eq!(next_byte(&mut io, &state, Duration::from_millis(200), &mut stop).await, None);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());

        let (ours, _peer) = tokio::io::duplex(64);
        let (mut io, state) = tracked(ours);
        let (tx, mut stop) = watch::channel(false);
        let waiting = tokio::spawn(async move { next_byte(&mut io, &state, Duration::from_secs(60), &mut stop).await });
        tx.send(true).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("shutdown ends the wait");
        assert_eq!(ended.unwrap(), None);
    }

    #[tokio::test]
    async fn a_stalled_preface_gives_up_within_the_header_timeout() {
        let (ours, mut peer) = tokio::io::duplex(64);
        let (mut io, state) = tracked(ours);
        peer.write_all(b"PRI * HTT").await.unwrap();
        let (_tx, mut stop) = watch::channel(false);
        let first = next_byte(&mut io, &state, Duration::from_secs(5), &mut stop).await.unwrap();
        assert_eq!(first_bytes(&mut io, &state, first, Duration::from_millis(100)).await, None);
    }
}
