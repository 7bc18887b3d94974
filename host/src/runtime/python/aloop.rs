//! The asyncio event loop, driven by a tokio runtime instead of its own
//! `run_forever`, so that it can run on an I/O worker thread: a request
//! served there reaches Python and comes back without changing threads.
//!
//! The loop is an `asyncio.SelectorEventLoop` whose selector never blocks
//! (bridge `_HostSelector`). A *driver* task runs it in turns: each turn
//! runs the host's queued jobs, then one `_run_once` of the loop (what is
//! ready runs once), then waits in tokio for the next reason to turn — a
//! job, the selector's epoll descriptor becoming readable (Python's own
//! sockets, `call_soon_threadsafe`), or the loop's next timer. While Python
//! has more ready work the driver only yields, so the thread's connections
//! go on between turns.
//!
//! The loop starts on a thread of its own (`covet-py-loop`, for `covet
//! check` and until the server runs); the first I/O worker then takes it
//! over ([`host`]): the thread leaves the loop between two turns and the
//! worker drives it from there on. A request on another worker reaches it
//! through the job queue, which wakes the driver across threads. Turns
//! never hold the worker for more than [`YIELD_EVERY_NS`] at a time: its
//! own connections run between them however fast other workers queue jobs.
//!
//! A blocking wait for the loop ([`EventLoop::call`], at load and retire
//! time) on the thread that drives it would wait for itself: there it runs
//! turns in place until the answer comes.

use std::{
    cell::Cell,
    os::fd::{AsRawFd, RawFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use pyo3::prelude::*;
use tokio::{io::unix::AsyncFd, sync::Notify};

use super::{interp, workers::Job};
use crate::{clock, runtime::Fault};

/// The loop's queue and the state its drivers share.
pub struct EventLoop {
    core: Arc<Core>,
}

struct Core {
    jobs: Mutex<Vec<Job>>,
    /// A job was queued (or the driver must move).
    wake: Notify,
    /// The selector's epoll descriptor (owned by the Python selector).
    epoll: RawFd,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    /// Set by [`host`]: the current driver must leave the loop.
    moving: AtomicBool,
    /// The previous driver left the loop.
    left: Notify,
    /// When the turn in progress began ([`clock::now_ns`]; 0: none is).
    turn_began: AtomicU64,
    /// Turns begun so far.
    turns: AtomicU64,
    /// The driving thread's Python thread id (for the watchdog).
    driver: AtomicU64,
}

/// One coroutine in flight; dropping it frees its place.
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

thread_local! {
    /// This thread drives the loop (between `enter_loop` and `leave_loop`).
    static DRIVING: Cell<bool> = const { Cell::new(false) };
    /// This thread is inside a turn (running Python for the loop).
    static IN_TURN: Cell<bool> = const { Cell::new(false) };
}

/// Signalled when the interpreter has started (see [`host`]).
pub(super) static STARTED: Notify = Notify::const_new();

impl EventLoop {
    /// Makes the loop and starts driving it on a thread of its own.
    pub fn start(limit: usize) -> Result<EventLoop, String> {
        let epoll = Python::attach(|py| -> PyResult<RawFd> { interp::bridge(py)?.getattr("make_loop")?.call0()?.extract() })
            .map_err(|e| e.to_string())?;
        let core = Arc::new(Core {
            jobs: Mutex::new(Vec::new()),
            wake: Notify::new(),
            epoll,
            in_flight: Arc::new(AtomicUsize::new(0)),
            limit,
            moving: AtomicBool::new(false),
            left: Notify::new(),
            turn_began: AtomicU64::new(0),
            turns: AtomicU64::new(0),
            driver: AtomicU64::new(0),
        });
        let watched = core.clone();
        std::thread::Builder::new().name("covet-py-watch".into()).spawn(move || watchdog(&watched)).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let driven = core.clone();
        std::thread::Builder::new()
            .name("covet-py-loop".into())
            .spawn(move || runtime.block_on(drive(driven)))
            .map_err(|e| e.to_string())?;
        Ok(EventLoop { core })
    }

    /// A place for one more coroutine, or [`Fault::Overloaded`].
    pub fn permit(&self) -> Result<Permit, Fault> {
        let core = &self.core;
        if core.in_flight.fetch_add(1, Ordering::AcqRel) >= core.limit {
            core.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Fault::Overloaded("the Python event loop has python.queue coroutines in flight".into()));
        }
        Ok(Permit(core.in_flight.clone()))
    }

    /// Runs `job` on the loop's thread at its next turn.
    pub fn submit(&self, job: Job) {
        let first = match self.core.jobs.lock() {
            Ok(mut jobs) => {
                jobs.push(job);
                jobs.len() == 1
            }
            Err(_) => false,
        };
        if first {
            self.core.wake.notify_one();
        }
    }

    /// Runs `f` on the loop and waits for what it sends (load and retire
    /// time, never on the request path). Call without the GIL.
    pub fn call<T: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(Python<'_>, mpsc::Sender<T>) + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = mpsc::channel();
        self.submit(Box::new(move |py| f(py, tx)));
        if !DRIVING.get() {
            return rx.recv_timeout(wait).map_err(|_| format!("no answer from the event loop within {wait:?}"));
        }
        if IN_TURN.get() {
            return Err("a blocking call into the event loop from inside it".into());
        }
        self.turn_until(&rx, Instant::now() + wait).ok_or_else(|| format!("no answer from the event loop within {wait:?}"))
    }

    /// On the driving thread: runs turns in place until `rx` answers.
    fn turn_until<T>(&self, rx: &mpsc::Receiver<T>, deadline: Instant) -> Option<T> {
        loop {
            let next = turn(&self.core, true);
            if let Ok(answer) = rx.try_recv() {
                return Some(answer);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let pause = next.map_or(Duration::from_millis(1), |s| Duration::from_secs_f64(s).min(Duration::from_millis(1)));
            std::thread::sleep(pause.min(deadline - now));
        }
    }
}

/// Takes the loop over on this thread (an I/O worker's runtime) once the
/// interpreter has started, and drives it from then on.
pub async fn host() {
    let interp = loop {
        let started = STARTED.notified();
        let mut started = std::pin::pin!(started);
        started.as_mut().enable();
        if let Some(interp) = interp::started() {
            break interp;
        }
        started.await;
    };
    let core = interp.aloop.core.clone();
    let left = core.left.notified();
    core.moving.store(true, Ordering::Release);
    core.wake.notify_one();
    left.await;
    core.moving.store(false, Ordering::Release);
    drive(core).await;
}

/// The selector's epoll descriptor, watched by the driving runtime (not closed on drop).
struct Epoll(RawFd);

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Drives the loop on this thread until another driver takes it over.
async fn drive(core: Arc<Core>) {
    // SAFETY: the selector's epoll descriptor stays open and the same for the
    // life of the process (the loop is never closed).
    let epoll = match unsafe { AsyncFd::register_with_interest(Epoll(core.epoll), tokio::io::Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(target: "covet::python", "the event loop cannot watch its selector: {}; Python coroutines will not run", e.into_parts().1);
            return;
        }
    };
    // The running loop and the async generator hooks live in this thread's
    // Python thread state: it must outlive each turn's hold of the GIL.
    let _state = ThreadState::keep();
    if let Err(e) = Python::attach(|py| interp::bridge(py)?.getattr("enter_loop")?.call0().map(drop)) {
        tracing::error!(target: "covet::python", "the event loop cannot start on this thread: {e}");
        return;
    }
    DRIVING.set(true);
    // SAFETY: a plain query of the calling thread's id.
    core.driver.store(unsafe { pyo3::ffi::PyThread_get_thread_ident() }, Ordering::Release);
    let mut look = true;
    let mut since_yield = clock::now_ns();
    loop {
        look |= readable_now(&epoll);
        let next = turn(&core, look);
        look = false;
        if core.moving.load(Ordering::Acquire) {
            break;
        }
        // A job queued from another worker during the turn makes the wait
        // below ready at once: without a yield now and then, back-to-back
        // turns would starve this thread's own connections (their answers,
        // their next requests) for as long as other workers keep feeding it.
        let ready_now = matches!(next, Some(s) if s <= 0.0);
        if ready_now || clock::now_ns().saturating_sub(since_yield) >= YIELD_EVERY_NS {
            tokio::task::yield_now().await;
            since_yield = clock::now_ns();
            if ready_now {
                continue;
            }
        }
        let (readable, suspended) = wait_for_work(&core, &epoll, next).await;
        look = readable;
        if suspended {
            since_yield = clock::now_ns();
        }
    }
    DRIVING.set(false);
    if let Err(e) = Python::attach(|py| interp::bridge(py)?.getattr("leave_loop")?.call0().map(drop)) {
        tracing::error!(target: "covet::python", "the event loop could not leave its thread: {e}");
    }
    core.left.notify_one();
}

/// The longest the driver runs turns back to back without letting the
/// other tasks of its thread run.
const YIELD_EVERY_NS: u64 = 500_000;

/// Waits for the next reason to turn: a job, the selector's descriptor
/// (returns `true` as the first value), or the loop's next timer (`next`
/// seconds). The second value says whether the wait suspended (the
/// thread's other tasks could run meanwhile).
async fn wait_for_work(core: &Core, epoll: &AsyncFd<Epoll>, next: Option<f64>) -> (bool, bool) {
    let timer = async {
        match next {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.min(86_400.0))).await,
            None => std::future::pending().await,
        }
    };
    let woken = async {
        tokio::select! {
            biased;
            () = core.wake.notified() => false,
            ready = epoll.readable() => {
                if let Ok(mut ready) = ready {
                    ready.clear_ready();
                }
                true
            }
            () = timer => false,
        }
    };
    let mut woken = std::pin::pin!(woken);
    let mut suspended = false;
    let readable = std::future::poll_fn(|cx| {
        let polled = woken.as_mut().poll(cx);
        suspended |= polled.is_pending();
        polled
    })
    .await;
    (readable, suspended)
}

/// Keeps the calling thread's Python thread state alive (without holding
/// the GIL) until dropped. Otherwise each `Python::attach` on a thread
/// without one makes a fresh state and destroys it after: what the thread
/// set in it (the running loop) would not last, and each attach would pay
/// for the making.
pub(super) struct ThreadState {
    gil: pyo3::ffi::PyGILState_STATE,
    saved: *mut pyo3::ffi::PyThreadState,
}

impl ThreadState {
    /// Makes (or joins) this thread's state and releases the GIL.
    pub(super) fn keep() -> ThreadState {
        // SAFETY: the interpreter is initialised (the loop exists); Ensure
        // then SaveThread leaves this thread's state counted once and the
        // GIL released, as PyGILState_Ensure's documentation allows.
        unsafe {
            let gil = pyo3::ffi::PyGILState_Ensure();
            let saved = pyo3::ffi::PyEval_SaveThread();
            ThreadState { gil, saved }
        }
    }
}

// SAFETY: a ThreadState lives in the driver, which runs only on
// current-thread runtimes (an I/O worker's, the loop thread's): it is made,
// used and dropped on one thread. `Send` is only what `tokio::spawn` asks.
unsafe impl Send for ThreadState {}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // SAFETY: the reverse of `keep`, on the same thread (see the Send impl).
        unsafe {
            pyo3::ffi::PyEval_RestoreThread(self.saved);
            pyo3::ffi::PyGILState_Release(self.gil);
        }
    }
}

/// Whether the selector's descriptor became readable since the last look
/// (checked without waiting; clears the readiness it reports).
fn readable_now(epoll: &AsyncFd<Epoll>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match epoll.poll_read_ready(&mut cx) {
        std::task::Poll::Ready(Ok(mut ready)) => {
            ready.clear_ready();
            true
        }
        _ => false,
    }
}

/// One turn: the queued jobs, then one pass of the loop (`look`: the
/// selector's descriptor may have events). Returns the seconds until the
/// loop has work again (0: ready now), or None (only a job or an event will
/// give it work).
fn turn(core: &Core, look: bool) -> Option<f64> {
    IN_TURN.set(true);
    core.turns.fetch_add(1, Ordering::AcqRel);
    core.turn_began.store(clock::now_ns(), Ordering::Release);
    let next = Python::attach(|py| {
        let jobs = core.jobs.lock().map(|mut jobs| std::mem::take(&mut *jobs)).unwrap_or_default();
        for job in jobs {
            job(py);
        }
        let bridge = interp::bridge(py)?;
        bridge.getattr(pyo3::intern!(py, "turn"))?.call1((look,))?.extract::<Option<f64>>()
    });
    core.turn_began.store(0, Ordering::Release);
    IN_TURN.set(false);
    next.unwrap_or_else(|e| {
        tracing::error!(target: "covet::python", "the event loop failed a turn: {e}");
        Some(0.001)
    })
}

/// How often the watchdog looks at the turn in progress.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// Stops a coroutine that holds the loop (it runs without awaiting) past
/// its plugin's time limit: the bridge's `stalled` names it, and it gets a
/// `CancelledError` at its next bytecode. Without this, such a coroutine
/// would hold the loop, and the I/O worker driving it, for good.
fn watchdog(core: &Core) {
    loop {
        std::thread::sleep(WATCH_EVERY);
        let began = core.turn_began.load(Ordering::Acquire);
        if began == 0 || clock::now_ns().saturating_sub(began) < WATCH_EVERY.as_nanos() as u64 {
            continue;
        }
        let (turn, driver) = (core.turns.load(Ordering::Acquire), core.driver.load(Ordering::Acquire));
        // Taking the GIL waits for the running code's next switch interval (5 ms).
        let stopped = Python::attach(|py| -> PyResult<bool> {
            let bridge = interp::bridge(py)?;
            if !bridge.getattr(pyo3::intern!(py, "stalled"))?.call1((turn,))?.is_truthy()? {
                return Ok(false);
            }
            let cancelled = py.import("asyncio")?.getattr("CancelledError")?;
            // SAFETY: with the GIL held; `driver` is a live thread's id (or
            // none matches, and nothing happens).
            let found = unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(driver as std::ffi::c_long, cancelled.as_ptr()) };
            Ok(found == 1)
        });
        match stopped {
            Ok(true) => tracing::warn!(target: "covet::python", "a coroutine or inline sync endpoint held the event loop past its plugin's time limit; it was cancelled"),
            Ok(false) => {}
            Err(e) => tracing::error!(target: "covet::python", "the event loop's watchdog failed: {e}"),
        }
    }
}
