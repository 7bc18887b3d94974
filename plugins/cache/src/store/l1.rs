//! L1: the in-process tier, a `moka` cache bounded by bytes.
//!
//! - **Weight**: each entry weighs its key, headers, body and meta (plus a
//!   fixed overhead for the map's own bookkeeping), capped to `u32`.
//! - **Eviction**: least recently used. A response just stored is always
//!   admitted (TinyLFU would turn a new page away until it is popular, which
//!   surprises an operator looking at one URL).
//! - **Bound**: moka applies writes and evictions in batches; a write that
//!   could take the tier past `max_memory` runs the pending evictions at
//!   once, so the bytes held exceed the bound by at most the entries being
//!   written at that instant.
//! - **Expiry**: per entry at `meta.keep_until_ms`.
//! - **Purges**: invalidation closures (a purge is one closure over a
//!   [`BanSet`]; moka checks it on reads until its scan has removed them).

use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::policy::{EvictionPolicy, Expiry};
use moka::sync::Cache;

use super::bans::BanSet;
use super::{Entry, StoreStats, now_ms};

/// Bytes charged per entry for moka's node, the key's `Arc` and the entry's handles.
const ENTRY_OVERHEAD: usize = 160;
/// Bytes charged per header beyond its name and value.
const HEADER_OVERHEAD: usize = size_of::<covet_plugin_api::Header>();

/// The in-process tier. Cloning shares it.
#[derive(Clone)]
pub(crate) struct L1 {
    pub(super) cache: Cache<String, Entry>,
    max_bytes: u64,
    /// Weight written since the last maintenance run (moka's weighted size
    /// only counts writes it has applied).
    unapplied: Arc<AtomicU64>,
}

impl L1 {
    /// An empty tier holding at most `max_bytes`.
    pub(crate) fn new(max_bytes: u64) -> L1 {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| weigh(key, entry))
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(KeepUntil)
            .support_invalidation_closures()
            .build();
        L1 {
            cache,
            max_bytes,
            unapplied: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The live entry under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        self.cache.get(key)
    }

    /// Stores `entry` under its key unless it is already past use or heavier
    /// than the whole tier.
    pub(crate) fn insert(&self, entry: Entry) {
        if entry.meta.keep_until_ms <= now_ms() {
            self.cache.invalidate(&entry.meta.key);
            return;
        }
        let key = entry.meta.key.clone();
        let weight = u64::from(weigh(&key, &entry));
        if weight > self.max_bytes {
            self.cache.invalidate(&key);
            return;
        }
        self.cache.insert(key, entry);
        let unapplied = self.unapplied.fetch_add(weight, Ordering::Relaxed) + weight;
        if self.cache.weighted_size() + unapplied > self.max_bytes {
            self.unapplied.store(0, Ordering::Relaxed);
            self.cache.run_pending_tasks();
        }
    }

    /// Drops the entry under `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Drops every entry a ban in `bans` removes.
    pub(crate) fn purge(&self, bans: BanSet) {
        if bans.is_empty() {
            return;
        }
        if let Err(error) = self
            .cache
            .invalidate_entries_if(move |_, entry| bans.removes(&entry.meta))
        {
            eprintln!("cache: purging the in-process tier failed: {error}");
        }
    }

    /// Entries and bytes, after applying pending writes and evictions.
    pub(crate) fn stats(&self) -> StoreStats {
        self.cache.run_pending_tasks();
        self.unapplied.store(0, Ordering::Relaxed);
        StoreStats {
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
        }
    }
}

/// What `entry` under `key` costs in bytes.
pub(crate) fn weigh(key: &str, entry: &Entry) -> u32 {
    let meta = &entry.meta;
    let headers: usize = entry
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + HEADER_OVERHEAD)
        .sum();
    let tags: usize = meta
        .tags
        .iter()
        .map(|t| t.len() + size_of::<String>())
        .sum();
    let meta_bytes = size_of::<super::Meta>()
        + meta.key.len()
        + meta.primary.len()
        + meta.host.len()
        + meta.path.len()
        + tags;
    let total = ENTRY_OVERHEAD + key.len() + headers + entry.body.len() + meta_bytes;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Entries expire at their `keep_until_ms` (wall clock, as the shared tier's TTL).
struct KeepUntil;

impl KeepUntil {
    fn left(entry: &Entry) -> Option<Duration> {
        Some(Duration::from_millis(
            entry.meta.keep_until_ms.saturating_sub(now_ms()),
        ))
    }
}

impl Expiry<String, Entry> for KeepUntil {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _at: Instant) -> Option<Duration> {
        KeepUntil::left(entry)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        KeepUntil::left(entry)
    }
}
