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
//! Files: [`l1`] (moka, bounded by bytes), [`shared`] (L2 reads and
//! background writes), [`frame`] (L2's value format), [`bans`] (the bans
//! known, indexed), [`follower`] (the purge log poller).

mod bans;
mod follower;
mod frame;
mod l1;
mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covet_plugin_api::host::{Host, ServiceError, ServiceErrorKind};
use covet_plugin_api::{Body, Headers};
use serde::{Deserialize, Serialize};

use self::bans::BanSet;
use self::follower::Follower;
use self::l1::L1;
use self::shared::Shared;
use crate::policy::Policy;

pub use self::frame::{decode as decode_frame, encode as encode_frame};
pub use self::shared::MAX_WRITES_IN_FLIGHT;

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
                meta.path.starts_with(&self.value)
                    && self
                        .host
                        .as_ref()
                        .is_none_or(|h| h.eq_ignore_ascii_case(&meta.host))
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

/// What the shared tier has done since the store started (all zero when it is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedStats {
    /// L2 reads that found a usable entry (and filled L1).
    pub hits: u64,
    /// L2 reads that found nothing (or an entry already past use).
    pub misses: u64,
    /// L2 reads slower than `shared_timeout` (served as misses).
    pub timeouts: u64,
    /// L2 reads that failed, or found a frame this build cannot read.
    pub errors: u64,
    /// L2 entries a ban removed when read (deleted, served as misses).
    pub banned: u64,
    /// Background writes done.
    pub writes: u64,
    /// Writes skipped because [`MAX_WRITES_IN_FLIGHT`] were in flight.
    pub writes_skipped: u64,
    /// Background writes that failed.
    pub write_errors: u64,
    /// Background writes in flight now.
    pub writes_in_flight: u64,
}

/// The two tiers and the purge follower.
pub struct Store {
    l1: L1,
    shared: Option<Shared>,
    bans: Arc<RwLock<BanSet>>,
    /// The purge follower's stop flag (`None`: no follower, outside a host).
    stop: Option<Arc<AtomicBool>>,
}

impl Store {
    /// A store as `settings` say; `host` runs the purge follower and the L2
    /// calls (`None` outside a host: L1 only, no purges).
    ///
    /// With a host, the namespace must be granted (`capabilities: { state:
    /// [cache] }`): init reads the purge log once (bans made before this
    /// instance apply to L2 entries stored before them) and fails when the
    /// host denies it. A host without services (unit tests) is L1 only.
    pub fn new(settings: &StoreSettings, host: Option<Host>) -> Result<Store, String> {
        let l1 = L1::new(settings.max_memory);
        let bans = Arc::new(RwLock::new(BanSet::default()));
        let mut store = Store {
            l1,
            shared: None,
            bans,
            stop: None,
        };
        let Some(host) = host else { return Ok(store) };
        let state = host.state(&settings.namespace);
        let shared = settings
            .shared
            .then(|| Shared::new(host.clone(), state.clone(), settings.shared_timeout));
        let poll = settings.purge_poll.max(Duration::from_millis(10));
        let mut follower = Follower::new(
            host.clone(),
            state,
            poll,
            store.l1.clone(),
            Arc::clone(&store.bans),
            shared.clone(),
        );
        let first = host.block_on(async move {
            let outcome = follower.poll_once().await;
            (follower, outcome)
        });
        let (mut follower, outcome) = match first {
            Ok(done) => done,
            Err(error) if error.kind == ServiceErrorKind::Unsupported => return Ok(store),
            Err(error) => return Err(format!("cache: reading the purge log at start: {error}")),
        };
        if let Err(error) = &outcome
            && error.kind == ServiceErrorKind::Denied
        {
            return Err(not_granted(&settings.namespace, error));
        }
        follower.report(outcome);
        store.stop = Some(Arc::clone(&follower.stop));
        host.spawn(follower.run())
            .map_err(|e| format!("cache: starting the purge follower: {e}"))?;
        store.shared = shared;
        Ok(store)
    }

    /// The L1 entry under `key`, if any (no I/O).
    pub fn get_local(&self, key: &str) -> Option<Entry> {
        self.l1.get(key)
    }

    /// The entry under `key`: L1, else L2 (which fills L1); `None` on a miss,
    /// an L2 error or timeout, or an L2 entry a ban removed.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        if let Some(entry) = self.l1.get(key) {
            return Some(entry);
        }
        let shared = self.shared.as_ref()?;
        let entry = shared.read(key).await?;
        if self.banned(&entry.meta) {
            shared.banned();
            shared.delete(key);
            return None;
        }
        shared.hit();
        self.l1.insert(entry.clone());
        Some(entry)
    }

    /// Stores `entry` under `entry.meta.key` (L1 now, L2 in the background).
    /// An entry a known ban removes (received before the purge, stored
    /// after it) is not stored.
    pub fn put(&self, entry: Entry) {
        if self.banned(&entry.meta) {
            return;
        }
        if let Some(shared) = &self.shared {
            shared.write(entry.clone());
        }
        self.l1.insert(entry);
    }

    /// Removes `key` from both tiers.
    pub fn remove(&self, key: &str) {
        self.l1.remove(key);
        if let Some(shared) = &self.shared {
            shared.delete(key);
        }
    }

    /// L1's size.
    pub fn stats(&self) -> StoreStats {
        self.l1.stats()
    }

    /// What the shared tier has done.
    pub fn shared_stats(&self) -> SharedStats {
        self.shared.as_ref().map(Shared::stats).unwrap_or_default()
    }

    /// How many bans are kept for checking (the purge log's last 24 h, as
    /// far as the follower has read it).
    pub fn bans_known(&self) -> usize {
        self.bans
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Stops the purge follower (the instance is retired).
    pub fn shutdown(&self) {
        if let Some(stop) = &self.stop {
            stop.store(true, Ordering::Release);
        }
    }

    fn banned(&self, meta: &Meta) -> bool {
        self.bans
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .removes(meta)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The init error for a namespace the manifest does not grant.
fn not_granted(namespace: &str, error: &ServiceError) -> String {
    format!(
        "cache: shared state namespace '{namespace}' is not granted: add `capabilities: {{ state: [{namespace}] }}` to this plugin; purges and the shared tier use it ({error})"
    )
}

/// Now, Unix milliseconds (the clock of `stored_at_ms`, `keep_until_ms` and bans).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
