//! Back-pressure for an ASGI app's streamed response: at most [`IN_FLIGHT`]
//! bytes between the app's `send` and the client.
//!
//! Each chunk takes permits of a semaphore, which it holds until hyper has
//! written and dropped it ([`held_chunk`]). While permits are free, `send`
//! returns at once. When they are not, the chunk goes to the forwarding
//! task marked *wait*: the task takes the permits as the client reads, sends
//! the chunk on, and only then releases the app's `send`, which awaits a
//! future meanwhile ([`Waiter`]). A slow client thus slows the app's
//! generator down instead of letting its chunks pile up in the host (as
//! uvicorn's flow control does).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::prelude::*;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::interp::Interp;
use crate::exchange::held_chunk;

/// Most bytes of one streamed response on their way to the client at once.
pub const IN_FLIGHT: usize = 256 << 10;

/// One response's budget and the app's `send` waiting on it.
pub struct Window {
    budget: Arc<Semaphore>,
    waiter: Mutex<Waiter>,
}

/// Where the app's waiting `send` stands.
#[derive(Default)]
enum Waiter {
    /// No `send` is waiting, and none was released early.
    #[default]
    Idle,
    /// `send` awaits this asyncio future.
    Waiting(Py<PyAny>),
    /// Released before `send` registered its future: it need not wait.
    Released,
}

impl Default for Window {
    fn default() -> Window {
        Window { budget: Arc::new(Semaphore::new(IN_FLIGHT)), waiter: Mutex::new(Waiter::Idle) }
    }
}

impl Window {
    /// `body` holding its permits when there are enough free; else `Err(body)`.
    pub fn try_hold(&self, body: Bytes) -> Result<Bytes, Bytes> {
        match self.budget.clone().try_acquire_many_owned(permits(&body)) {
            Ok(permit) => Ok(held_chunk(body, permit)),
            Err(_) => Err(body),
        }
    }

    /// Waits until `body`'s permits are free, then gives it back holding them
    /// (`None`: the semaphore is closed, which it never is).
    pub async fn hold(&self, body: Bytes) -> Option<Bytes> {
        let permit: OwnedSemaphorePermit = self.budget.clone().acquire_many_owned(permits(&body)).await.ok()?;
        Some(held_chunk(body, permit))
    }

    /// `send`'s future: resolved at once if the chunk was already released.
    pub fn wait(&self, py: Python<'_>, future: Py<PyAny>) -> PyResult<()> {
        let mut waiter = self.waiter.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::take(&mut *waiter) {
            Waiter::Released => resolve(py, &future),
            _ => {
                *waiter = Waiter::Waiting(future);
                Ok(())
            }
        }
    }

    /// Lets the app's `send` go on (on the loop thread, when it waits).
    pub fn release(&self, interp: &'static Interp) {
        let mut waiter = self.waiter.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *waiter, Waiter::Released) {
            Waiter::Waiting(future) => {
                *waiter = Waiter::Idle;
                interp.aloop.submit(Box::new(move |py| {
                    if let Err(e) = resolve(py, &future) {
                        tracing::warn!(target: "covet::python", "could not resume an ASGI send: {e}");
                    }
                }));
            }
            Waiter::Idle | Waiter::Released => {}
        }
    }
}

fn permits(body: &Bytes) -> u32 {
    body.len().min(IN_FLIGHT) as u32
}

/// Completes an asyncio future (unless it was cancelled meanwhile).
fn resolve(py: Python<'_>, future: &Py<PyAny>) -> PyResult<()> {
    let future = future.bind(py);
    if !future.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        future.call_method1(pyo3::intern!(py, "set_result"), (py.None(),))?;
    }
    Ok(())
}
