//! What `on_request` leaves for `on_response` of the same request (the
//! plugin API passes only metadata text between them): a [`Pending`] kept
//! under a token the request's metadata carries. Requests that never reach
//! `on_response` (the client went away) are pruned by age, which also
//! releases their coalescing and refresh guards. And the in-process record of
//! URIs invalidated by unsafe methods.

use std::{
    collections::HashMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    coalesce::{Lead, Refresh},
    conditional::Conditions,
    store::Entry,
};

/// Why the request went to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Nothing stored under the key.
    UriMiss,
    /// The key is stored, not this variant.
    VaryMiss,
    /// The stored entry is stale (or must be revalidated).
    Stale,
    /// The client asked (`no-cache`).
    Request,
}

/// One forwarded request's state.
#[derive(Debug)]
pub struct Pending {
    /// When it was made.
    pub created: Instant,
    /// The primary key.
    pub primary: String,
    /// Why it was forwarded.
    pub fwd: Fwd,
    /// When it was sent on (Unix ms).
    pub request_time_ms: u64,
    /// The stored entry it may be answered with (304, stale-if-error).
    pub entry: Option<Entry>,
    /// Whether stale-if-error may serve `entry`.
    pub if_error: bool,
    /// The client's own conditions.
    pub conditions: Conditions,
    /// Whether the response may be stored (GET, no `no-store`, no `Range`).
    pub storable: bool,
    /// The rule's or config's `ttl`.
    pub ttl: Option<Duration>,
    /// The request carried `Authorization`.
    pub authorized: bool,
    /// The coalescing leader's guard.
    pub lead: Option<Lead>,
    /// The background refresh's slot (stale-while-revalidate).
    pub refresh: Option<Refresh>,
}

/// Pending states by token.
#[derive(Default)]
pub struct PendingMap {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Pending>>,
}

/// Beyond this many, states older than [`MAX_AGE`] are dropped.
const PRUNE_AT: usize = 4096;
/// How long a request may take between its phases before its state is pruned.
const MAX_AGE: Duration = Duration::from_secs(600);

impl PendingMap {
    /// Keeps `pending`; returns its token.
    pub fn put(&self, pending: Pending) -> u64 {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= PRUNE_AT {
            map.retain(|_, p| p.created.elapsed() < MAX_AGE);
        }
        map.insert(token, pending);
        token
    }

    /// Takes the state under `token`.
    pub fn take(&self, token: u64) -> Option<Pending> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(&token)
    }
}

/// Primary keys invalidated by a successful unsafe method, and when (Unix
/// ms): every variant stored at or before is a miss (RFC 9111 §4.4).
#[derive(Default)]
pub struct Invalidations {
    any: AtomicBool,
    map: Mutex<HashMap<String, u64>>,
}

/// Kept at most; older records go first (an entry outlives none of them by much).
const MAX_INVALIDATIONS: usize = 10_000;

impl Invalidations {
    /// Records that `primary` was invalidated at `now_ms`.
    pub fn record(&self, primary: &str, now_ms: u64) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_INVALIDATIONS {
            let day_ago = now_ms.saturating_sub(24 * 3600 * 1000);
            map.retain(|_, at| *at > day_ago);
            if map.len() >= MAX_INVALIDATIONS {
                // Still full: the older half goes.
                let mut times: Vec<u64> = map.values().copied().collect();
                let mid = times.len() / 2;
                let (_, median, _) = times.select_nth_unstable(mid);
                let median = *median;
                map.retain(|_, at| *at > median);
            }
        }
        map.insert(primary.to_string(), now_ms);
        self.any.store(true, Ordering::Release);
    }

    /// Whether an entry of `primary` stored at `stored_at_ms` was invalidated since.
    pub fn covers(&self, primary: &str, stored_at_ms: u64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(primary).is_some_and(|at| stored_at_ms <= *at)
    }
}
