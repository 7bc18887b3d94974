//! The in-process shared state: a sharded map (dashmap) of `ns:key` to a
//! value and an optional expiry. Expired entries are invisible at once and
//! removed by a periodic sweep (and when next touched). Per-key atomicity
//! comes from the map's entry lock.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use tokio::time::Instant;

use super::{SharedState, StateResult, Value};
use crate::ServiceError;

/// How often [`MemoryState::new_with_sweeper`]'s sweep removes expired entries.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

struct Stored {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Stored {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// The in-process backend (the default): state lives in this host only.
#[derive(Default)]
pub struct MemoryState {
    map: DashMap<String, Stored>,
}

impl MemoryState {
    /// An empty store, no sweep (expired entries are removed when touched or by [`MemoryState::sweep`]).
    pub fn new() -> MemoryState {
        MemoryState::default()
    }

    /// An empty store with a sweep task on the current tokio runtime (or none
    /// outside one) that ends when the store is dropped.
    pub fn new_with_sweeper() -> Arc<MemoryState> {
        let state = Arc::new(MemoryState::new());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweeper(Arc::downgrade(&state)));
        }
        state
    }

    /// Removes expired entries; returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let before = self.map.len();
        self.map.retain(|_, stored| stored.live(now));
        before.saturating_sub(self.map.len())
    }

    /// Entries stored, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn get_now(&self, key: String) -> Option<Vec<u8>> {
        let now = Instant::now();
        match self.map.entry(key) {
            MapEntry::Occupied(e) if e.get().live(now) => Some(e.get().value.clone()),
            MapEntry::Occupied(e) => {
                e.remove();
                None
            }
            MapEntry::Vacant(_) => None,
        }
    }

    fn incr_now(&self, key: String, delta: i64, ttl: Option<Duration>) -> Result<i64, ServiceError> {
        let now = Instant::now();
        let new = |value: i64| Stored { value: value.to_string().into_bytes(), expires: ttl.map(|t| now + t) };
        match self.map.entry(key) {
            MapEntry::Occupied(mut e) if e.get().live(now) => {
                let current = parse_int(&e.get().value)?;
                let next = current.checked_add(delta).ok_or_else(|| ServiceError::Backend("increment overflows i64".into()))?;
                e.get_mut().value = next.to_string().into_bytes();
                Ok(next)
            }
            MapEntry::Occupied(mut e) => {
                e.insert(new(delta));
                Ok(delta)
            }
            MapEntry::Vacant(e) => {
                e.insert(new(delta));
                Ok(delta)
            }
        }
    }

    fn cas_now(&self, key: String, expected: Option<&[u8]>, new: Option<Vec<u8>>, ttl: Option<Duration>) -> bool {
        let now = Instant::now();
        let stored = new.map(|value| Stored { value, expires: ttl.map(|t| now + t) });
        match (self.map.entry(key), expected) {
            (MapEntry::Occupied(mut e), Some(expected)) if e.get().live(now) && e.get().value == expected => {
                match stored {
                    Some(s) => *e.get_mut() = s,
                    None => drop(e.remove()),
                }
                true
            }
            (MapEntry::Occupied(mut e), None) if !e.get().live(now) => {
                match stored {
                    Some(s) => *e.get_mut() = s,
                    None => drop(e.remove()),
                }
                true
            }
            (MapEntry::Vacant(e), None) => {
                if let Some(s) = stored {
                    e.insert(s);
                }
                true
            }
            _ => false,
        }
    }

    fn delete_now(&self, key: &str) -> bool {
        let now = Instant::now();
        self.map.remove(key).is_some_and(|(_, stored)| stored.live(now))
    }
}

fn parse_int(value: &[u8]) -> Result<i64, ServiceError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ServiceError::Backend("the value is not an integer, so it cannot be incremented".into()))
}

fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}:{key}")
}

async fn sweeper(state: Weak<MemoryState>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        state.sweep();
    }
}

impl SharedState for MemoryState {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, Option<Vec<u8>>> {
        let value = self.get_now(full_key(ns, key));
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StateResult<'a, ()> {
        let expires = ttl.map(|t| Instant::now() + t);
        self.map.insert(full_key(ns, key), Stored { value, expires });
        Box::pin(async { Ok(()) })
    }

    fn incr<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateResult<'a, i64> {
        let result = self.incr_now(full_key(ns, key), delta, ttl);
        Box::pin(async move { result })
    }

    fn compare_and_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StateResult<'a, bool> {
        let done = self.cas_now(full_key(ns, key), expected, new, ttl);
        Box::pin(async move { Ok(done) })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, bool> {
        let existed = self.delete_now(&full_key(ns, key));
        Box::pin(async move { Ok(existed) })
    }

    fn eval<'a>(&'a self, _: &'a str, _: &'a str, _: &'a [String], _: &'a [String]) -> StateResult<'a, Value> {
        Box::pin(async { Err(ServiceError::Unsupported("eval (Lua scripts)".into())) })
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
