//! L2: entries in the host's shared state (Redis in a fleet), under
//! `e:{key}` with a TTL to `keep_until_ms`, as [`frame`](super::frame)s.
//!
//! Reads race the host timer (`shared_timeout`): a slow, failed or
//! undecodable read is a miss, never an error to the client. Writes and
//! deletes run in the background ([`Host::spawn`]); at most
//! [`MAX_WRITES_IN_FLIGHT`] writes at a time, more are skipped and counted
//! (L1 still has the entry; a busy or unreachable backend must not pile up
//! tasks holding bodies).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use covet_plugin_api::host::{Host, ServiceError, ServiceErrorKind, State};

use super::{Entry, SharedStats, frame, now_ms};

/// The most background writes to the shared tier at a time.
pub const MAX_WRITES_IN_FLIGHT: usize = 64;

/// The shared tier's handle. Cloning shares the counters.
#[derive(Clone)]
pub(crate) struct Shared {
    host: Host,
    state: State,
    timeout: Duration,
    writes_in_flight: Arc<AtomicUsize>,
    counts: Arc<Counts>,
}

/// What the shared tier has done, for [`SharedStats`].
#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    timeouts: AtomicU64,
    errors: AtomicU64,
    banned: AtomicU64,
    writes: AtomicU64,
    writes_skipped: AtomicU64,
    write_errors: AtomicU64,
}

fn count(counter: &AtomicU64) -> Option<Entry> {
    counter.fetch_add(1, Ordering::Relaxed);
    None
}

/// The shared-state key of an entry.
pub(crate) fn entry_key(key: &str) -> String {
    format!("e:{key}")
}

impl Shared {
    /// The tier in `state`, reads bounded by `timeout`.
    pub(crate) fn new(host: Host, state: State, timeout: Duration) -> Shared {
        Shared {
            host,
            state,
            timeout,
            writes_in_flight: Arc::default(),
            counts: Arc::default(),
        }
    }

    /// The entry under `key`; `None` on a miss, a timeout, an error or a bad
    /// frame. The caller counts what it makes of an entry ([`Shared::hit`],
    /// [`Shared::banned`]).
    pub(crate) async fn read(&self, key: &str) -> Option<Entry> {
        let bytes = match bounded(&self.host, self.timeout, self.state.get(&entry_key(key))).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return count(&self.counts.misses),
            Err(error) if error.kind == ServiceErrorKind::Timeout => {
                return count(&self.counts.timeouts);
            }
            Err(_) => return count(&self.counts.errors),
        };
        match frame::decode(&bytes) {
            Ok(entry) if entry.meta.key == key && entry.meta.keep_until_ms > now_ms() => {
                Some(entry)
            }
            Ok(_) => count(&self.counts.misses),
            Err(_) => {
                self.delete(key);
                count(&self.counts.errors)
            }
        }
    }

    /// Counts an L2 entry served.
    pub(crate) fn hit(&self) {
        self.counts.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an L2 entry a ban removed (the caller deletes it).
    pub(crate) fn banned(&self) {
        self.counts.banned.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes `entry` in the background, unless too many writes are in flight.
    pub(crate) fn write(&self, entry: Entry) {
        let left = entry.meta.keep_until_ms.saturating_sub(now_ms());
        if left == 0 {
            return;
        }
        let Some(slot) = Slot::take(&self.writes_in_flight) else {
            self.counts.writes_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (state, counts) = (self.state.clone(), Arc::clone(&self.counts));
        let task = async move {
            let _slot = slot;
            let frame = frame::encode(&entry);
            match state
                .set(
                    &entry_key(&entry.meta.key),
                    frame,
                    Some(Duration::from_millis(left)),
                )
                .await
            {
                Ok(()) => counts.writes.fetch_add(1, Ordering::Relaxed),
                Err(_) => counts.write_errors.fetch_add(1, Ordering::Relaxed),
            };
        };
        if self.host.spawn(task).is_err() {
            self.counts.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Deletes `key`'s entry in the background.
    pub(crate) fn delete(&self, key: &str) {
        let (state, name) = (self.state.clone(), entry_key(key));
        let _ = self.host.spawn(async move {
            let _ = state.delete(&name).await;
        });
    }

    /// Deletes `key`'s entry now (the purge follower, which runs in the background already).
    pub(crate) async fn delete_now(&self, key: &str) -> Result<bool, ServiceError> {
        self.state.delete(&entry_key(key)).await
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> SharedStats {
        let c = &self.counts;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SharedStats {
            hits: n(&c.hits),
            misses: n(&c.misses),
            timeouts: n(&c.timeouts),
            errors: n(&c.errors),
            banned: n(&c.banned),
            writes: n(&c.writes),
            writes_skipped: n(&c.writes_skipped),
            write_errors: n(&c.write_errors),
            writes_in_flight: self.writes_in_flight.load(Ordering::Relaxed) as u64,
        }
    }
}

/// One of the [`MAX_WRITES_IN_FLIGHT`] write slots, given back on drop (the
/// write finished, failed, or its task was dropped at shutdown).
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot, unless all are taken.
    pub(crate) fn take(in_flight: &Arc<AtomicUsize>) -> Option<Slot> {
        let taken = in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_WRITES_IN_FLIGHT).then_some(n + 1)
        });
        taken.ok().map(|_| Slot(Arc::clone(in_flight)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A shared-state call bounded by the host timer: its result, or a
/// `Timeout` error once `limit` has passed.
pub(crate) async fn bounded<T>(
    host: &Host,
    limit: Duration,
    call: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let call = pin!(call);
    let timer = pin!(host.sleep(limit));
    match first(call, timer).await {
        First::Left(result) => result,
        First::Right(_) => Err(ServiceError::new(
            ServiceErrorKind::Timeout,
            format!("no answer within {limit:?}"),
        )),
    }
}

/// Which of two futures finished first.
pub(crate) enum First<A, B> {
    /// The first one.
    Left(A),
    /// The second one.
    Right(B),
}

/// Polls both futures until one finishes; the other is dropped (cancelled).
pub(crate) fn first<A: Future + Unpin, B: Future + Unpin>(
    mut a: A,
    mut b: B,
) -> impl Future<Output = First<A::Output, B::Output>> {
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if let Poll::Ready(value) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(First::Left(value));
        }
        if let Poll::Ready(value) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(First::Right(value));
        }
        Poll::Pending
    })
}
