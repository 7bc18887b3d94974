//! The circuit breaker of an upstream: at most `max_requests` in flight, at
//! most `max_pending` waiting (first come, first served) for a free slot;
//! past both, a request is refused at once ([`Overloaded`]) so an overloaded
//! endpoint set sheds load instead of queueing without bound.
//!
//! A slot is a permit of a tokio [`Semaphore`] (fair, FIFO). A reload may
//! change the limits in place: raising `max_requests` adds permits; lowering
//! it forgets free permits and retires busy ones as they are released, so
//! waiters keep their place and the in-flight count converges to the new
//! limit without dropping anyone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::Circuit;

/// Refused by the breaker: `max_requests` in flight and `max_pending` waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overloaded {
    /// Requests in flight when refused.
    pub(crate) in_flight: usize,
    /// Requests waiting when refused.
    pub(crate) pending: usize,
}

/// An upstream's breaker (see the module docs).
pub(crate) struct Breaker {
    shared: Arc<Shared>,
}

struct Shared {
    slots: Arc<Semaphore>,
    max_requests: AtomicUsize,
    max_pending: AtomicUsize,
    /// Busy permits still to retire after `max_requests` was lowered.
    debt: AtomicUsize,
    in_flight: AtomicUsize,
    pending: AtomicUsize,
    overloaded: AtomicU64,
}

/// A slot in flight; released (or retired after a lowered limit) on drop.
pub(crate) struct BreakerPermit {
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerPermit").finish_non_exhaustive()
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        let Some(permit) = self.permit.take() else { return };
        let retire = self.shared.debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)).is_ok();
        if retire {
            permit.forget();
        }
    }
}

/// Decrements the pending count when a waiter gets its slot or gives up.
struct PendingGuard<'a>(&'a AtomicUsize);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn clamp(n: usize) -> usize {
    n.min(Semaphore::MAX_PERMITS)
}

impl Breaker {
    /// A breaker with `circuit`'s limits.
    pub(crate) fn new(circuit: &Circuit) -> Breaker {
        let max = clamp(circuit.max_requests);
        Breaker {
            shared: Arc::new(Shared {
                slots: Arc::new(Semaphore::new(max)),
                max_requests: AtomicUsize::new(max),
                max_pending: AtomicUsize::new(circuit.max_pending),
                debt: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                pending: AtomicUsize::new(0),
                overloaded: AtomicU64::new(0),
            }),
        }
    }

    /// A slot: at once when one is free, after a FIFO wait when fewer than
    /// `max_pending` wait, else `Overloaded` at once. The caller bounds the
    /// wait with its own deadline (dropping the future leaves the queue).
    pub(crate) async fn acquire(&self) -> Result<BreakerPermit, Overloaded> {
        let shared = &self.shared;
        if let Ok(permit) = shared.slots.clone().try_acquire_owned() {
            return Ok(self.permit(permit));
        }
        let max_pending = shared.max_pending.load(Ordering::Acquire);
        let admitted =
            shared.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| (p < max_pending).then_some(p + 1));
        if admitted.is_err() {
            shared.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(Overloaded { in_flight: self.in_flight(), pending: self.pending() });
        }
        let _pending = PendingGuard(&shared.pending);
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = shared.slots.clone().acquire_owned().await.map_err(|_| Overloaded { in_flight: 0, pending: 0 })?;
        Ok(self.permit(permit))
    }

    fn permit(&self, permit: OwnedSemaphorePermit) -> BreakerPermit {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        BreakerPermit { permit: Some(permit), shared: self.shared.clone() }
    }

    /// Applies changed limits (a reload); slots already taken stay valid.
    pub(crate) fn set_limits(&self, circuit: &Circuit) {
        let shared = &self.shared;
        shared.max_pending.store(circuit.max_pending, Ordering::Release);
        let new = clamp(circuit.max_requests);
        let old = shared.max_requests.swap(new, Ordering::AcqRel);
        if new > old {
            let mut add = new - old;
            // Cancel retirements still owed before adding fresh permits.
            while add > 0 {
                match shared.debt.fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1)) {
                    Ok(_) => add -= 1,
                    Err(_) => break,
                }
            }
            shared.slots.add_permits(add);
        } else if new < old {
            let cut = old - new;
            let forgotten = shared.slots.forget_permits(cut);
            shared.debt.fetch_add(cut - forgotten, Ordering::AcqRel);
        }
    }

    /// Requests holding a slot now.
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// Requests waiting for a slot now.
    pub(crate) fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Requests refused since the breaker was made.
    pub(crate) fn overloaded_total(&self) -> u64 {
        self.shared.overloaded.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
