//! Where Python code runs: a bounded pool of threads for sync handlers and
//! filters, and one thread running the asyncio event loop for coroutines.
//!
//! Tokio's workers never take the GIL: a request becomes a [`Job`] (Rust
//! data only) that a Python thread turns into Python objects, runs, and
//! converts back before completing a oneshot. The pool's queue is a bounded
//! channel (`python.queue`): when it is full the request is refused at once
//! ([`Fault::Overloaded`], a 503). Jobs for the event loop go into a
//! vector; the first job after the loop drained wakes it through an
//! eventfd watched with `loop.add_reader`, so one wake-up runs every job
//! queued meanwhile. Coroutines in flight are capped at `python.queue` too.

use std::{
    os::fd::RawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use pyo3::prelude::*;

use super::{hostmod, interp};
use crate::runtime::Fault;

/// Work for a Python thread.
pub type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// The sync thread pool.
pub struct Pool {
    tx: mpsc::SyncSender<Job>,
}

impl Pool {
    /// Starts `threads` threads sharing a queue of `queue` waiting jobs.
    pub fn start(threads: usize, queue: usize) -> Pool {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("covet-py-{i}")).spawn(move || {
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => Python::attach(job),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(target: "covet::python", "cannot start a Python thread: {e}");
            }
        }
        Pool { tx }
    }

    /// Queues `job`, or refuses it when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), Fault> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Fault::Overloaded("the Python thread pool and its queue are full".into()),
            mpsc::TrySendError::Disconnected(_) => Fault::Error("the Python thread pool has stopped".into()),
        })
    }
}

/// The event-loop thread's queue.
pub struct EventLoop {
    jobs: Mutex<Vec<Job>>,
    efd: RawFd,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

/// One coroutine in flight; dropping it frees its place.
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EventLoop {
    /// Starts the loop thread.
    pub fn start(limit: usize) -> std::io::Result<EventLoop> {
        // SAFETY: plain syscall; the descriptor is owned by this EventLoop for the life of the process.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        std::thread::Builder::new().name("covet-py-loop".into()).spawn(move || {
            Python::attach(|py| {
                let run = interp::bridge(py).and_then(|bridge| {
                    let runner = Py::new(py, hostmod::Runner)?;
                    bridge.getattr("run_loop")?.call1((efd, runner))
                });
                if let Err(e) = run {
                    tracing::error!(target: "covet::python", "the event loop stopped: {e}");
                }
            })
        })?;
        Ok(EventLoop { jobs: Mutex::new(Vec::new()), efd, in_flight: Arc::new(AtomicUsize::new(0)), limit })
    }

    /// A place for one more coroutine, or [`Fault::Overloaded`].
    pub fn permit(&self) -> Result<Permit, Fault> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Fault::Overloaded("the Python event loop has python.queue coroutines in flight".into()));
        }
        Ok(Permit(self.in_flight.clone()))
    }

    /// Runs `job` on the loop thread soon.
    pub fn submit(&self, job: Job) {
        let wake = match self.jobs.lock() {
            Ok(mut jobs) => {
                jobs.push(job);
                jobs.len() == 1
            }
            Err(_) => false,
        };
        if wake {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            unsafe { libc::write(self.efd, (&one as *const u64).cast(), 8) };
        }
    }

    /// Runs `f` on the loop thread and waits for what it sends (for load
    /// and retire time, never on the request path). Call without the GIL.
    pub fn call<T: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(Python<'_>, mpsc::Sender<T>) + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = mpsc::channel();
        self.submit(Box::new(move |py| f(py, tx)));
        rx.recv_timeout(wait).map_err(|_| format!("no answer from the event loop within {wait:?}"))
    }
}

/// The loop's wake-up: clears the eventfd and runs every queued job.
pub fn drain(py: Python<'_>) {
    let Some(interp) = interp::started() else { return };
    let aloop = &interp.aloop;
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
    unsafe { libc::read(aloop.efd, (&mut count as *mut u64).cast(), 8) };
    let jobs = aloop.jobs.lock().map(|mut jobs| std::mem::take(&mut *jobs)).unwrap_or_default();
    for job in jobs {
        job(py);
    }
}

/// Runs the bridge's `spawn(fn, args, done, instance)` on the loop thread:
/// `fn(*args)` becomes a task (in the plugin instance's context, which tells
/// host service calls whose grants apply) whose result `done` receives
/// there. Returns the task.
pub fn spawn_in<'py>(
    py: Python<'py>,
    instance: Option<&Bound<'py, PyAny>>,
    func: &Bound<'py, PyAny>,
    args: Bound<'py, pyo3::types::PyTuple>,
    done: impl FnOnce(&Bound<'_, PyAny>) + Send + 'static,
) -> PyResult<Bound<'py, PyAny>> {
    let bridge = interp::bridge(py)?;
    let done = Py::new(py, hostmod::Done::new(done))?;
    bridge.getattr(pyo3::intern!(py, "spawn"))?.call1((func, args, done, instance))
}
