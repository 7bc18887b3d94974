//! Where sync Python code runs: a bounded pool of threads for sync handlers
//! and filters (coroutines run on the event loop, see [`super::aloop`]).
//!
//! A request becomes a [`Job`] (Rust data only) that a pool thread turns
//! into Python objects, runs, and converts back before completing a
//! oneshot. The pool's queue is a bounded channel (`python.queue`): when it
//! is full the request is refused at once ([`Fault::Overloaded`], a 503).

use std::sync::{Arc, Mutex, mpsc};

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
                let _state = super::aloop::ThreadState::keep();
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

/// Runs the bridge's `spawn(fn, args, done, instance)` on the loop thread:
/// `fn(*args)` becomes a task (in the plugin instance's context, which tells
/// host service calls whose grants apply) whose result `done` receives
/// there. Returns the task, or None when it already finished (an eager
/// task, Python 3.12+, that never suspended).
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
