//! # covet-cache
//!
//! An RFC 9111 shared HTTP cache as a covet filter, in front of any handler
//! (`filters: [auth, cache]`). Responses are kept in an in-process L1 tier
//! bounded by bytes and, with `shared: true`, in the host's shared state
//! (Redis in a fleet); purges by key, prefix and tag reach every instance
//! through the purge log. See `docs/cache.md` for the manifest, the rules,
//! `Cache-Status` and the metadata it sets.
//!
//! - [`request`]: `on_request`: the key, the rules, the lookup, and the
//!   answer (hit, 304, stale-while-revalidate) or the forward (miss,
//!   revalidation, coalesced wait).
//! - [`respond`]: `on_response`: storing (the body teed as it streams),
//!   refreshing on a 304, stale-if-error, invalidation, `Cache-Status`.
//! - [`store`]: the tiers and the purge follower.
#![deny(missing_docs)]

pub mod coalesce;
pub mod conditional;
pub mod directives;
pub mod freshness;
pub mod key;
mod pending;
pub mod policy;
pub mod request;
pub mod respond;
pub mod serve;
pub mod settings;
pub mod status;
pub mod store;
pub mod tee;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_flow;
#[cfg(test)]
mod tests_rules;

use std::sync::Arc;

use covet_plugin_api::{AsyncPlugin, Config, Flow, Phases, Request, ResponseMut, export_plugin, host::Host};

use crate::{
    coalesce::{Flights, Refreshes},
    pending::{Invalidations, PendingMap},
    settings::{Checked, Settings},
    store::{Store, StoreSettings},
};

/// Why the plugin could not do something.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The config block is invalid.
    #[error("invalid cache config: {0}")]
    Config(String),
    /// The store could not start.
    #[error("cache store: {0}")]
    Store(String),
}

/// Metadata: how the request was answered (`hit`, `miss`, `stale`, `revalidated`, `bypass`).
pub const META_STATUS: &str = "cache.status";
/// Metadata: the primary key.
pub const META_KEY: &str = "cache.key";
/// Metadata (private): the token of the request's pending state.
pub(crate) const META_TOKEN: &str = "cache.token";
/// Metadata (private): `bypass`, `method` or `invalidate` for a request the cache stepped aside for.
pub(crate) const META_FWD: &str = "cache.fwd";

/// The plugin: checked settings, the store, and the in-process bookkeeping
/// of requests in flight (coalescing, background refreshes, pending state).
pub struct Cache {
    settings: Checked,
    store: Arc<Store>,
    host: Option<Host>,
    flights: Flights,
    refreshes: Refreshes,
    pending: PendingMap,
    invalidated: Invalidations,
}

impl Cache {
    /// An instance from settings; `host` gives the store its shared state and
    /// the waiters their timer (`None`: L1 only, waits bounded by the leader).
    pub fn new(settings: Settings, host: Option<Host>) -> Result<Cache, CacheError> {
        let settings = settings.check()?;
        let store_settings = StoreSettings {
            max_memory: settings.max_memory,
            shared: settings.shared,
            namespace: settings.namespace.clone(),
            purge_poll: settings.purge_poll,
            shared_timeout: settings.shared_timeout,
        };
        let store = Store::new(&store_settings, host.clone()).map_err(CacheError::Store)?;
        Ok(Cache {
            settings,
            store: Arc::new(store),
            host,
            flights: Flights::default(),
            refreshes: Refreshes::default(),
            pending: PendingMap::default(),
            invalidated: Invalidations::default(),
        })
    }

    /// The store (for tests and the admin view).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The checked settings.
    pub fn settings(&self) -> &Checked {
        &self.settings
    }
}

impl AsyncPlugin for Cache {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::ON_RESPONSE);

    fn init(config: Config<'_>) -> Result<Self, String> {
        let settings = settings::parse(config.as_json())?;
        Cache::new(settings, Some(config.host())).map_err(|e| e.to_string())
    }

    fn on_request_now(&self, req: &mut Request<'_>) -> Option<Flow> {
        self.request_now(req)
    }

    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        self.request_waiting(req).await
    }

    fn on_response_now(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) -> bool {
        self.response(req, resp);
        true
    }

    async fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        self.response(req, resp);
    }

    fn shutdown(&self) {
        self.store.shutdown();
    }
}

export_plugin!(async Cache);
