//! The store: where responses are kept, in two tiers, and how purges reach
//! them.
//!
//! - **L1**: in-process, bounded by bytes (`max_memory`), shared by every
//!   request of this instance; reads are synchronous ([`Store::get_local`]).
//! - **L2** (`shared: true`): the host's shared state (Redis in a fleet), so
//!   every host sharing it serves one version; read on an L1 miss
//!   ([`Store::get`]), which fills L1; written in the background on
//!   [`Store::put`].
//! - **Purges** are bans kept in the shared state's purge log (see
//!   `docs/cache.md`): the host's admin API appends one; every instance polls
//!   the log's sequence number every `purge_poll`, drops matching L1 entries
//!   at once, and checks L2 entries against the bans when it reads them.
//!
//! (Contract commit: this first version is L1 only, a plain map; the tiers,
//! the byte bound and the purge log replace it.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use covet_plugin_api::{Body, Headers, host::Host};
use serde::{Deserialize, Serialize};

use crate::policy::Policy;

/// One stored response: one variant of one resource. Cloning copies nothing.
#[derive(Clone, Debug)]
pub struct Entry {
    /// What the store and purges look at, and the core's freshness facts.
    pub meta: Arc<Meta>,
    /// The stored status.
    pub status: u16,
    /// The stored headers (end-to-end ones only), shared.
    pub headers: Headers,
    /// The stored body, shared.
    pub body: Body,
}

/// An entry's description, serialised with it in the shared tier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// The store key: the primary key, plus the variant's secondary key when
    /// the response varies (`Vary`).
    pub key: String,
    /// The primary cache key (what purge by key and `Cache-Status: key=` name).
    pub primary: String,
    /// The request's host (lower case, no port), for purges by prefix with a host.
    pub host: String,
    /// The request's path (no query), for purges by prefix.
    pub path: String,
    /// Surrogate keys (tags) the origin gave the response.
    pub tags: Vec<String>,
    /// When the response was received, Unix milliseconds (RFC 9111 `response_time`).
    pub stored_at_ms: u64,
    /// After this (Unix ms) the entry is of no use (freshness and every stale
    /// window over): the store may drop it, and gives it this TTL in L2.
    pub keep_until_ms: u64,
    /// The core's freshness facts.
    pub policy: Policy,
}

/// How the store is set up (from the plugin's config).
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// The L1 bound: the most bytes (bodies, headers and keys) held in process.
    pub max_memory: u64,
    /// Whether the shared L2 tier is on.
    pub shared: bool,
    /// The shared-state namespace (the purge log, and L2 entries).
    pub namespace: String,
    /// How often the purge log's sequence number is read.
    pub purge_poll: Duration,
    /// The most an L2 read may take before it counts as a miss.
    pub shared_timeout: Duration,
}

/// What a purge names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanKind {
    /// One primary key (all its variants).
    Key,
    /// Every path starting with `value` (on `host` when given).
    Prefix,
    /// Every response tagged `value`.
    Tag,
}

/// One purge, as the purge log keeps it: entries it matches that were
/// stored at or before `at_ms` are gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// Its sequence number (`purge.seq` when it was appended).
    pub seq: u64,
    /// What `value` names.
    pub kind: BanKind,
    /// The key, path prefix or tag.
    pub value: String,
    /// For a prefix: only this host (lower case, no port).
    #[serde(default)]
    pub host: Option<String>,
    /// When it was made, Unix milliseconds.
    pub at_ms: u64,
}

impl Ban {
    /// Whether this ban removes `meta`.
    pub fn matches(&self, meta: &Meta) -> bool {
        if meta.stored_at_ms > self.at_ms {
            return false;
        }
        match self.kind {
            BanKind::Key => meta.primary == self.value,
            BanKind::Prefix => {
                meta.path.starts_with(&self.value) && self.host.as_ref().is_none_or(|h| h.eq_ignore_ascii_case(&meta.host))
            }
            BanKind::Tag => meta.tags.iter().any(|t| t == &self.value),
        }
    }
}

/// Counts for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries in L1.
    pub entries: u64,
    /// Bytes in L1 (as weighed).
    pub bytes: u64,
}

/// The two tiers and the purge follower.
pub struct Store {
    l1: Mutex<HashMap<String, Entry>>,
}

impl Store {
    /// A store as `settings` say; `host` runs the purge follower and the L2
    /// calls (`None` outside a host: L1 only, no purges).
    pub fn new(settings: &StoreSettings, host: Option<Host>) -> Result<Store, String> {
        let _ = (settings, host);
        Ok(Store { l1: Mutex::new(HashMap::new()) })
    }

    /// The L1 entry under `key`, if any (no I/O).
    pub fn get_local(&self, key: &str) -> Option<Entry> {
        self.l1.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// The entry under `key`: L1, else L2 (which fills L1); `None` on a miss,
    /// an L2 error or timeout, or an L2 entry a ban removed.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        self.get_local(key)
    }

    /// Stores `entry` under `entry.meta.key` (L1 now, L2 in the background).
    pub fn put(&self, entry: Entry) {
        let key = entry.meta.key.clone();
        self.l1.lock().unwrap_or_else(PoisonError::into_inner).insert(key, entry);
    }

    /// Removes `key` from both tiers.
    pub fn remove(&self, key: &str) {
        self.l1.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// L1's size.
    pub fn stats(&self) -> StoreStats {
        let l1 = self.l1.lock().unwrap_or_else(PoisonError::into_inner);
        StoreStats { entries: l1.len() as u64, bytes: l1.values().map(|e| e.body.len() as u64).sum() }
    }

    /// Stops the purge follower (the instance is retired).
    pub fn shutdown(&self) {}
}
