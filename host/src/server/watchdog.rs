//! Per-connection timeouts that hyper does not give us in the shape we want:
//! a **header-read timeout** (a request head must arrive within N seconds of
//! its first byte: slowloris) and an **idle timeout** (a keep-alive
//! connection with no request in flight and no bytes moving is closed).
//!
//! It also applies a **send timeout**, as nginx's `send_timeout`: a write
//! the socket does not take (the client stopped reading) must go through
//! within `limits.send_timeout`; and while a chunk of a response body waits
//! on the client ([`crate::service::Body`]) the client must take response
//! bytes within it (on HTTP/2 only DATA counts, [`super::h2frames`]: a peer
//! that never opens its window). Past it the connection is closed (GOAWAY on
//! HTTP/2).
//!
//! On HTTP/2 it also closes (GOAWAY) a peer that floods SETTINGS or PING
//! frames ([`super::h2frames::ControlFlood`]).
//!
//! [`super::tracked_io::TrackedIo`] notes reads and writes in a shared [`ConnState`]; the service
//! marks requests in flight; [`watch`] sleeps until the next deadline.

use std::{
    sync::{
        Arc,
        Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};


const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What [`watch`] saw expire.
#[derive(Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A request head took too long: drop the connection.
    HeaderRead,
    /// Nothing happened for too long: close gracefully.
    Idle,
    /// A response waited on the client too long: close (GOAWAY on HTTP/2),
    /// then drop.
    SendStall,
    /// An HTTP/2 peer flooded SETTINGS or PING frames: GOAWAY, then drop.
    Flood,
    /// An HTTP/1 connection has been idle [`Timeouts::park`]: put hyper
    /// away and wait for its next bytes holding no buffers
    /// ([`super::park`]).
    Park,
}

/// The connection's timeouts, from `limits:`.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// `header_read_timeout`.
    pub header_read: Duration,
    /// `idle_timeout`.
    pub idle: Duration,
    /// `send_timeout`; zero: off.
    pub send: Duration,
    /// How long an idle HTTP/1 connection keeps hyper (and its buffers)
    /// before it is parked; `None`: never (HTTP/2).
    pub park: Option<Duration>,
}

/// Milliseconds on the coarse monotonic clock (a few ms resolution, a few ns
/// to read): this runs on every read and write, and the timeouts it feeds are
/// seconds long.
fn coarse_now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000 + 1
}

/// How long after the last bytes moved an HTTP/1 end of stream is still held
/// back ([`ConnState::hold_eof_until`]).
const RECENT_MS: u64 = 50;

/// Activity of one connection, shared by its I/O, its service and its watchdog.
pub struct ConnState {
    last_activity: AtomicU64,
    head_started: AtomicU64,
    in_flight: AtomicUsize,
    is_h2: AtomicBool,
    sniffed: AtomicBool,
    /// The request line of the last head seen with both `Content-Length`
    /// and `Transfer-Encoding` ([`super::headscan`]).
    conflicting_framing: Mutex<Option<Vec<u8>>>,
    /// Set while `bad_version` holds something: the service checks this
    /// flag, not the lock, on every request.
    has_bad_version: AtomicBool,
    /// The request line (as rewritten to 1.1) and the version it named, of
    /// the last head whose version was not 1.0 / 1.1 ([`super::headscan`]).
    bad_version: Mutex<Option<(Vec<u8>, [u8; 8])>>,
    /// The true length of the last request target the scan cut.
    long_target: AtomicUsize,
    /// Response body chunks waiting on the client ([`crate::service::Body`]).
    sending: AtomicUsize,
    /// When the client last took response bytes (or a wait began).
    send_progress: AtomicU64,
    /// Since when the socket has refused a write (0: it has not).
    write_blocked: AtomicU64,
    /// Set (and `alarm` notified) when the peer floods control frames.
    flooded: AtomicBool,
    /// Set when hyper handed the connection's I/O to a tunnel (an HTTP/1.1
    /// upgrade): its close is the tunnel's, not a lingering one.
    upgraded: AtomicBool,
    /// Set when the connection is closed idle: its close does not linger.
    no_linger: AtomicBool,
    /// Set while an idle HTTP/1 connection is being parked: hyper's close
    /// then leaves the socket open ([`super::park`]).
    parking: AtomicBool,
    /// Responses whose bodies hyper still holds ([`crate::service::Body`]).
    responding: AtomicUsize,
    /// Wakes the watchdog before its nap ends.
    alarm: tokio::sync::Notify,
    /// hyper's read, while it waits on an end of stream held back until
    /// the answers are done ([`super::tracked_io`]): woken when the last
    /// request or response body of the connection ends.
    eof_waiter: futures_util::task::AtomicWaker,
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState {
            last_activity: AtomicU64::new(coarse_now_ms()),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            is_h2: AtomicBool::new(false),
            sniffed: AtomicBool::new(false),
            conflicting_framing: Mutex::new(None),
            has_bad_version: AtomicBool::new(false),
            bad_version: Mutex::new(None),
            long_target: AtomicUsize::new(0),
            sending: AtomicUsize::new(0),
            send_progress: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            flooded: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            no_linger: AtomicBool::new(false),
            parking: AtomicBool::new(false),
            responding: AtomicUsize::new(0),
            alarm: tokio::sync::Notify::new(),
            eof_waiter: futures_util::task::AtomicWaker::new(),
        }
    }
}

impl ConnState {
    pub(super) fn now_ms(&self) -> u64 {
        coarse_now_ms()
    }

    /// Notes bytes read; `true` when they start an HTTP/1 request head.
    pub(super) fn on_read(&self, bytes: &[u8]) -> bool {
        let now = self.now_ms();
        self.last_activity.store(now, Relaxed);
        if !self.sniffed.swap(true, Relaxed) {
            self.is_h2.store(bytes.starts_with(H2_PREFACE), Relaxed);
        }
        if self.in_flight.load(Relaxed) == 0 && self.head_started.load(Relaxed) == 0 {
            self.head_started.store(now, Relaxed);
            return !self.is_h2.load(Relaxed);
        }
        false
    }

    pub(super) fn framing_conflict(&self, request_line: Vec<u8>) {
        *self.conflicting_framing.lock().unwrap_or_else(|e| e.into_inner()) = Some(request_line);
    }

    /// Whether the head of this request (method and target) carried both
    /// `Content-Length` and `Transfer-Encoding`. Consumes the record.
    pub fn take_framing_conflict(&self, method: &str, target: &str) -> bool {
        let line = self.conflicting_framing.lock().unwrap_or_else(|e| e.into_inner()).take();
        line.is_some_and(|line| super::headscan::matches(&line, method, target))
    }

    pub(super) fn note_bad_version(&self, request_line: Vec<u8>, version: [u8; 8]) {
        *self.bad_version.lock().unwrap_or_else(|e| e.into_inner()) = Some((request_line, version));
        self.has_bad_version.store(true, Relaxed);
    }

    /// The version this request's head named (method and target match),
    /// when it was not HTTP/1.0 or HTTP/1.1. Consumes the record.
    pub fn take_bad_version(&self, method: &str, target: &http::Uri) -> Option<String> {
        // A load, not a swap, on the common path: no write to a shared line.
        if !self.has_bad_version.load(Relaxed) {
            return None;
        }
        self.has_bad_version.store(false, Relaxed);
        let (line, version) = self.bad_version.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        super::headscan::matches(&line, method, &target.to_string()).then(|| String::from_utf8_lossy(&version).into_owned())
    }

    /// The length the client sent of a request target that the scan cut
    /// (the service sees it one byte over the limit). Consumes the record.
    pub fn take_long_target(&self) -> Option<usize> {
        Some(self.long_target.swap(0, Relaxed)).filter(|&len| len > 0)
    }

    pub(super) fn on_write(&self) {
        self.last_activity.store(self.now_ms(), Relaxed);
        if self.write_blocked.load(Relaxed) != 0 {
            self.write_blocked.store(0, Relaxed);
        }
    }

    /// Notes a write the socket did not take.
    pub(super) fn on_write_blocked(&self) {
        if self.write_blocked.load(Relaxed) == 0 {
            self.write_blocked.store(self.now_ms(), Relaxed);
        }
    }

    /// Notes response bytes the client took.
    pub(super) fn on_send_progress(&self) {
        self.send_progress.store(self.now_ms(), Relaxed);
    }

    /// Notes that the peer floods control frames, and wakes the watchdog.
    pub(super) fn on_flood(&self) {
        if !self.flooded.swap(true, Relaxed) {
            self.alarm.notify_one();
        }
    }

    /// Whether the peer flooded control frames: its input is discarded
    /// from then on, and the close lingers ([`super::tracked_io`]).
    pub(super) fn is_flooded(&self) -> bool {
        self.flooded.load(Relaxed)
    }

    /// Notes that the connection's I/O now belongs to a tunnel.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Relaxed);
    }

    /// Until when (coarse ms) an end of stream read now from an HTTP/1
    /// client is held back from hyper ([`super::tracked_io`]): while a
    /// request is read or answered (from its first bytes until its response
    /// body is dropped) with no bound here, and for [`RECENT_MS`] after the
    /// last bytes moved (hyper may still hold pipelined requests it has read
    /// but not yet started). `None`: an idle connection, or HTTP/2, or a tunnel.
    pub(super) fn hold_eof_until(&self, now: u64) -> Option<u64> {
        if self.is_h2() || self.upgraded.load(Relaxed) {
            return None;
        }
        let answering = self.head_started.load(Relaxed) != 0 || self.in_flight.load(Relaxed) > 0 || self.responding.load(Relaxed) > 0;
        if answering {
            return Some(u64::MAX);
        }
        let until = self.last_activity.load(Relaxed) + RECENT_MS;
        (now < until).then_some(until)
    }

    /// A response body was handed to hyper.
    pub fn response_begins(&self) {
        self.responding.fetch_add(1, Relaxed);
    }

    /// hyper dropped a response body (sent, or the connection ended).
    pub fn response_ends(&self) {
        if self.responding.fetch_sub(1, Relaxed) == 1 {
            self.eof_waiter.wake();
        }
    }

    /// Wakes `waker` when the connection's answers may be done (the last
    /// request or response body ends): an end of stream held back until
    /// then is due ([`Self::hold_eof_until`]).
    pub(super) fn wake_when_answered(&self, waker: &std::task::Waker) {
        self.eof_waiter.register(waker);
    }

    /// Marks a close of an idle connection (idle timeout, host shutdown):
    /// the peer is not sending, so the close does not linger
    /// ([`super::tracked_io`]).
    pub fn skip_linger(&self) {
        self.no_linger.store(true, Relaxed);
    }

    /// Marks the connection parking when it is idle: no request read,
    /// in flight or answered, no response byte waiting on the client, and no
    /// bytes moved for `after`. `false` (and nothing marked) otherwise.
    pub(super) fn try_park(&self, after: Duration) -> bool {
        let quiet = self.last_activity.load(Relaxed) + after.as_millis() as u64 <= self.now_ms();
        let park = !self.busy() && quiet;
        self.parking.store(park, Relaxed);
        park
    }

    /// Whether hyper has work on the connection (it cannot be parked): a
    /// request read, in flight or answered, a response byte waiting on the
    /// client, a tunnel, HTTP/2.
    fn busy(&self) -> bool {
        self.in_flight.load(Relaxed) > 0
            || self.head_started.load(Relaxed) != 0
            || self.responding.load(Relaxed) > 0
            || self.sending.load(Relaxed) > 0
            || self.write_blocked.load(Relaxed) != 0
            || self.upgraded.load(Relaxed)
            || self.is_h2()
    }

    /// Whether the connection is being parked (hyper's close must not
    /// shut the socket).
    pub(super) fn is_parking(&self) -> bool {
        self.parking.load(Relaxed)
    }

    /// The connection is parked (or woken): its closes are real again.
    pub(super) fn parked(&self) {
        self.parking.store(false, Relaxed);
    }

    /// Sets the protocol the connection's first bytes named (the sniff in
    /// [`super::park`]), before hyper reads them.
    pub(super) fn set_h2(&self, h2: bool) {
        self.sniffed.store(true, Relaxed);
        self.is_h2.store(h2, Relaxed);
    }

    /// When, in coarse ms, an idle connection's `idle` timeout expires.
    pub(super) fn idle_deadline_ms(&self, idle: Duration) -> u64 {
        self.last_activity.load(Relaxed) + idle.as_millis() as u64
    }

    /// Whether the close lingers neither for a tunnel nor for an idle close.
    pub(super) fn skips_linger(&self) -> bool {
        self.upgraded.load(Relaxed) || self.no_linger.load(Relaxed)
    }

    /// Notes the true length of a request target the scan cut.
    pub(super) fn note_long_target(&self, len: usize) {
        self.long_target.store(len, Relaxed);
    }

    /// Whether writes are HTTP/2 frames.
    pub(super) fn is_h2(&self) -> bool {
        self.is_h2.load(Relaxed)
    }

    /// A response body chunk now waits on the client.
    pub fn send_waiting(&self) {
        if self.sending.fetch_add(1, Relaxed) == 0 {
            self.on_send_progress();
        }
    }

    /// A chunk that waited on the client was taken (or dropped).
    pub fn send_done(&self) {
        self.sending.fetch_sub(1, Relaxed);
        self.on_send_progress();
    }

    /// Marks a request in flight until the guard drops.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_started.store(0, Relaxed);
        InFlight(self.clone())
    }

    /// When a stalled send times out: a blocked write, or a chunk waiting
    /// on the client, with no progress since.
    fn send_deadline(&self, send: Duration) -> Option<u64> {
        if send.is_zero() {
            return None;
        }
        let waiting = (self.sending.load(Relaxed) > 0).then(|| self.send_progress.load(Relaxed));
        let blocked = Some(self.write_blocked.load(Relaxed)).filter(|&at| at != 0);
        let since = match (waiting, blocked) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(since + send.as_millis() as u64)
    }

    fn next_deadline(&self, t: &Timeouts) -> Option<(u64, Expiry)> {
        let (header_read, idle) = (t.header_read, t.idle);
        if let Some(at) = self.send_deadline(t.send) {
            return Some((at, Expiry::SendStall));
        }
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        let head = self.head_started.load(Relaxed);
        if head != 0 && !self.is_h2.load(Relaxed) {
            return Some((head + header_read.as_millis() as u64, Expiry::HeaderRead));
        }
        let idle_at = self.idle_deadline_ms(idle);
        // Only a connection hyper has nothing to do on parks (a response
        // body still streaming keeps it; the watchdog would wake for nothing).
        let park = t.park.filter(|_| !self.busy());
        match park.map(|park| self.last_activity.load(Relaxed) + park.as_millis() as u64) {
            Some(park_at) if park_at < idle_at => Some((park_at, Expiry::Park)),
            _ => Some((idle_at, Expiry::Idle)),
        }
    }
}

/// A request in flight on its connection.
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.0.eof_waiter.wake();
        }
        self.0.on_write();
    }
}

/// Resolves when the connection has been idle, or reading a head, too long.
pub async fn watch(state: &ConnState, t: Timeouts) -> Expiry {
    let (header_read, idle) = (t.header_read, t.idle);
    loop {
        if state.flooded.load(Relaxed) {
            return Expiry::Flood;
        }
        let now = state.now_ms();
        // Never nap longer than header_read: a head that starts during the
        // nap is then seen, and its exact deadline set, in time. (Waking the
        // watchdog from the read path instead cost an extra task poll per request.)
        // Nor longer than send_timeout, for a send that stalls during it.
        // Nor longer than the park delay: a connection whose request ends
        // during the nap parks about that long after its answer.
        let longest = if t.send.is_zero() { header_read } else { header_read.min(t.send) };
        let longest = longest.min(t.park.unwrap_or(Duration::MAX));
        let nap = match state.next_deadline(&t) {
            Some((at, expiry)) if at <= now => return expiry,
            Some((at, _)) => Duration::from_millis(at - now).min(longest),
            None => idle.min(longest),
        };
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            () = state.alarm.notified() => {}
        }
    }
}

/// Runs the watchdog of one connection as its own task, so the connection's
/// hot loop polls only a oneshot receiver, not timers and the shutdown watch,
/// on every wake-up. The receiver yields why the connection must close:
/// `None` means the host is shutting down (close gracefully).
pub fn spawn(
    state: Arc<ConnState>,
    timeouts: Timeouts,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> (tokio::sync::oneshot::Receiver<Option<Expiry>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let verdict = tokio::select! {
            expiry = watch(&state, timeouts) => Some(expiry),
            _ = super::stopped(&mut shutdown) => None,
        };
        let _ = tx.send(verdict);
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { header_read: Duration::from_secs(1), idle: Duration::from_secs(60), send: Duration::from_secs(5), park: None };

    #[test]
    fn a_chunk_waiting_on_the_client_has_a_send_deadline_until_taken() {
        let state = Arc::new(ConnState::default());
        state.on_read(b"GET / HTTP/1.1\r\n\r\n");
        let guard = state.begin_request();
        drop(guard);
        state.send_waiting();
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::SendStall);
        state.send_done();
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::Idle);
        state.on_write_blocked();
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::SendStall, "a write the socket refused");
        state.on_write();
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::Idle, "the write went through");
    }

    #[test]
    fn a_head_in_progress_has_a_header_deadline() {
        let state = Arc::new(ConnState::default());
        state.on_read(b"GET / HTTP/1.1\r\n");
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::HeaderRead);
    }

    #[test]
    fn a_request_in_flight_has_no_deadline_and_then_idles() {
        let state = Arc::new(ConnState::default());
        state.on_read(b"GET / HTTP/1.1\r\n\r\n");
        let guard = state.begin_request();
        assert!(state.next_deadline(&T).is_none());
        drop(guard);
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::Idle);
    }

    #[test]
    fn an_idle_http1_connection_parks_before_it_idles_out_and_only_when_quiet() {
        let t = Timeouts { park: Some(Duration::from_millis(0)), ..T };
        let state = Arc::new(ConnState::default());
        state.on_read(b"GET / HTTP/1.1\r\n\r\n");
        let guard = state.begin_request();
        assert!(!state.try_park(Duration::ZERO), "a request in flight");
        drop(guard);
        let (_, expiry) = state.next_deadline(&t).unwrap();
        assert_eq!(expiry, Expiry::Park);
        state.response_begins();
        assert!(!state.try_park(Duration::ZERO), "a response hyper still holds");
        let (_, expiry) = state.next_deadline(&t).unwrap();
        assert_eq!(expiry, Expiry::Idle, "a streaming response idles out, it does not park");
        state.response_ends();
        assert!(!state.try_park(Duration::from_secs(60)), "bytes moved within the park delay");
        assert!(state.try_park(Duration::ZERO));
        assert!(state.is_parking());
        state.parked();
        assert!(!state.is_parking());
        state.on_read(b"GE");
        assert!(!state.try_park(Duration::ZERO), "a head being read");
    }

    #[test]
    fn h2_connections_only_idle() {
        let state = Arc::new(ConnState::default());
        state.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let (_, expiry) = state.next_deadline(&T).unwrap();
        assert_eq!(expiry, Expiry::Idle);
    }
}
