//! Request coalescing: concurrent misses on one key make one origin request.
//! The first registers a [`Flight`] and goes to the origin (the leader); the
//! others wait on it, at most `lock_timeout`, and then look again. The
//! leader's [`Lead`] guard ends the flight when it is dropped: when the
//! response is stored, found not storable, or abandoned (a broken stream,
//! a client gone). A flight older than `lock_timeout` counts as abandoned,
//! so a lost guard never blocks a key for long. Waiting needs no runtime:
//! an `event-listener` notification raced against the host's timer.
//!
//! [`Refreshes`] keeps "one background refresh per key" the same way.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use covet_plugin_api::host::{Host, ServiceErrorKind};
use event_listener::Event;
use futures_util::future::{Either, select};

/// One origin request others wait on.
pub struct Flight {
    started: Instant,
    done: AtomicBool,
    event: Event,
}

type Map = Arc<Mutex<HashMap<String, Arc<Flight>>>>;

/// The flights in progress, by store key.
#[derive(Default, Clone)]
pub struct Flights {
    map: Map,
}

/// What a miss is to do.
pub enum Role {
    /// Go to the origin and end the flight when done.
    Lead(Lead),
    /// Wait for this flight.
    Wait(Arc<Flight>),
}

/// The leader's guard: ends the flight (waking the waiters) when dropped.
pub struct Lead {
    key: String,
    flight: Arc<Flight>,
    map: Map,
}

impl Flights {
    /// Leads a new flight for `key`, or waits for the one in progress (one
    /// older than `timeout` is taken over).
    pub fn join(&self, key: &str, timeout: Duration) -> Role {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get(key)
            && flight.started.elapsed() < timeout
            && !flight.done.load(Ordering::Acquire)
        {
            return Role::Wait(flight.clone());
        }
        let flight = Arc::new(Flight { started: Instant::now(), done: AtomicBool::new(false), event: Event::new() });
        map.insert(key.to_string(), flight.clone());
        Role::Lead(Lead { key: key.to_string(), flight, map: self.map.clone() })
    }

    /// Whether a flight for `key` is in progress (not timed out).
    pub fn in_flight(&self, key: &str, timeout: Duration) -> bool {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key).is_some_and(|f| f.started.elapsed() < timeout && !f.done.load(Ordering::Acquire))
    }

    /// Flights in progress (for tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether none is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
            map.remove(&self.key);
        }
        drop(map);
        self.flight.done.store(true, Ordering::Release);
        self.flight.event.notify(usize::MAX);
    }
}

impl std::fmt::Debug for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lead({:?})", self.key)
    }
}

/// Waits until `flight` ends or `timeout` has passed since it started (the
/// host's timer; without a host, until it ends).
pub async fn wait(flight: &Flight, timeout: Duration, host: Option<&Host>) {
    let listener = flight.event.listen();
    if flight.done.load(Ordering::Acquire) {
        return;
    }
    let left = timeout.saturating_sub(flight.started.elapsed());
    if left.is_zero() {
        return;
    }
    let timer = async move {
        match host {
            Some(host) => match host.sleep(left).await {
                Err(e) if e.kind == ServiceErrorKind::Unsupported => std::future::pending().await,
                _ => {}
            },
            None => std::future::pending().await,
        }
    };
    let listener = std::pin::pin!(listener);
    let timer = std::pin::pin!(timer);
    match select(listener, timer).await {
        Either::Left(_) | Either::Right(_) => {}
    }
}

/// The keys being refreshed in the background (stale-while-revalidate).
#[derive(Default, Clone)]
pub struct Refreshes {
    map: RefreshMap,
}

/// Each held slot: when it was taken, and which taking it is.
type RefreshMap = Arc<Mutex<HashMap<String, (Instant, u64)>>>;

/// Tells the takings of one key's slot apart.
static TAKINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Holds a key's refresh slot until dropped.
pub struct Refresh {
    key: String,
    taking: u64,
    map: RefreshMap,
}

impl Refreshes {
    /// The refresh slot of `key`, unless one is held (and younger than `timeout`).
    pub fn start(&self, key: &str, timeout: Duration) -> Option<Refresh> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|(t, _)| t.elapsed() < timeout) {
            return None;
        }
        let taking = TAKINGS.fetch_add(1, Ordering::Relaxed);
        map.insert(key.to_string(), (Instant::now(), taking));
        Some(Refresh { key: key.to_string(), taking, map: self.map.clone() })
    }

    /// Whether `key`'s slot is held.
    #[cfg(test)]
    pub fn held(&self, key: &str) -> bool {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).contains_key(key)
    }
}

impl Drop for Refresh {
    /// Frees the slot, unless a later refresh took it over after this one's
    /// timeout (that one's slot is not this one's to free).
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&self.key).is_some_and(|(_, taking)| *taking == self.taking) {
            map.remove(&self.key);
        }
    }
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Refresh({:?})", self.key)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Refreshes;

    #[test]
    fn a_refresh_taken_over_after_its_timeout_does_not_free_its_successors_slot() {
        let refreshes = Refreshes::default();
        let first = refreshes.start("k", Duration::ZERO).expect("a free slot");
        assert!(refreshes.start("k", Duration::from_secs(60)).is_none(), "one refresh per key");
        let second = refreshes.start("k", Duration::ZERO).expect("the first timed out: taken over");
        drop(first);
        assert!(refreshes.held("k"), "the late first refresh left the second one's slot alone");
        assert!(refreshes.start("k", Duration::from_secs(60)).is_none(), "still one refresh per key");
        drop(second);
        assert!(!refreshes.held("k"), "the second one freed its own slot");
    }
}
