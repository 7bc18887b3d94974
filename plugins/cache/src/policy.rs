//! Freshness and revalidation facts of a stored response (RFC 9111 §4.2):
//! what the core reads to decide fresh, stale-servable or must-revalidate.
//! Opaque to the store, which only serialises it for the shared tier.
//! [`crate::freshness`] computes it when a response is stored and reads it
//! when the entry is used.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use covet_plugin_api::Headers;
use serde::{Deserialize, Serialize};

/// What the core keeps about a stored response to judge its freshness.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Policy {
    /// RFC 9111 §4.2.3 `corrected_initial_age`, in milliseconds.
    pub initial_age_ms: u64,
    /// The freshness lifetime, in milliseconds.
    pub lifetime_ms: u64,
    /// Response `no-cache`: every use is revalidated.
    pub no_cache: bool,
    /// `must-revalidate` / `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// The stale-while-revalidate window, in milliseconds.
    pub swr_ms: u64,
    /// The stale-if-error window, in milliseconds.
    pub sie_ms: u64,
    /// The stored `ETag`.
    pub etag: Option<String>,
    /// The stored `Last-Modified`.
    pub last_modified: Option<String>,
    /// On the primary entry of a resource that varies: the names `Vary`
    /// lists (lower case); the variants are stored under secondary keys.
    /// Empty for a plain entry.
    pub vary: Vec<String>,
    /// The response headers last sent for this entry (not serialised).
    #[serde(skip)]
    pub served: Served,
}

impl Policy {
    /// Whether this is the primary entry of a varying resource (it holds no response).
    pub fn is_vary_marker(&self) -> bool {
        !self.vary.is_empty()
    }

    /// Whether the response can be revalidated (it has a validator).
    pub fn has_validator(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// The response headers of a hit, built once per whole second of age and
/// shared by every hit in that second: the stored headers plus `Age` and
/// `Cache-Status`, so most hits copy nothing. Clones share the slot.
#[derive(Clone, Default)]
pub struct Served(Arc<ArcSwapOption<ServedHeaders>>);

/// One built header list and the `(age, ttl)` seconds it was built for.
pub struct ServedHeaders {
    /// The `Age` and `Cache-Status` ttl (seconds) these headers carry.
    pub at: (u64, i64),
    /// The headers.
    pub headers: Headers,
}

impl Served {
    /// The headers built for `at`, if they are the last built.
    pub fn get(&self, at: (u64, i64)) -> Option<Headers> {
        let slot = self.0.load();
        slot.as_ref().filter(|s| s.at == at).map(|s| s.headers.clone())
    }

    /// Keeps `headers` as the ones for `at`.
    pub fn set(&self, at: (u64, i64), headers: Headers) {
        self.0.store(Some(Arc::new(ServedHeaders { at, headers })));
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Served")
    }
}
