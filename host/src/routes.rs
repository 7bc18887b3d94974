//! The route table: the router plus each route's chain of plugin slots,
//! built once from the manifest (and swapped whole when it changes).
//!
//! The table also keeps each route's live instances ([`Live`]) as they were
//! at one registry epoch ([`crate::registry::epoch`]), so a request takes
//! its chain's instances with one atomic load instead of one `arc-swap`
//! load per plugin and a `Vec` per request. A swap stores the new instance
//! in its slot (which moves the epoch on) and then installs a refreshed
//! table ([`RouteTable::refreshed`]); between the two, and whenever the
//! epochs differ, requests load the slots themselves, so a request never
//! runs on an instance older than the one its slot held when it began.

use std::{borrow::Cow, sync::Arc};

use crate::{
    manifest::{Diagnostic, Manifest, ManifestError},
    pipeline::{Chain, Live},
    registry::{self, Slot},
    router::Router,
};

/// One route: its pattern and chain.
pub struct RouteEntry {
    /// The manifest's path pattern.
    pub pattern: Arc<str>,
    /// Filters and handler.
    pub chain: Chain,
    /// The handler reads the request body itself as it arrives (an ASGI app
    /// with `request_body: stream`): the host does not buffer it.
    pub stream_body: bool,
    /// The route's `trace_sample_ratio` (replaces the default ratio for new traces).
    pub trace_ratio: Option<f64>,
}

/// Router plus routes, and the routes' live instances at one epoch.
pub struct RouteTable {
    /// Matchit trees (shared with the table's refreshed copies).
    pub router: Arc<Router>,
    /// Routes by index (shared with the table's refreshed copies).
    pub entries: Arc<[RouteEntry]>,
    /// Each route's instances as loaded at `epoch` (`None`: a plugin of
    /// the chain was not live then).
    live: Vec<Option<Live>>,
    /// The registry epoch `live` was loaded at; `u64::MAX` before the first
    /// refresh (never current).
    epoch: u64,
}


impl RouteTable {
    /// Builds the table; `slot` gives the slot of every plugin a route names.
    pub fn build(manifest: &Manifest, slot: impl Fn(&str) -> Arc<Slot>) -> Result<RouteTable, ManifestError> {
        let mut router = Router::default();
        let mut entries = Vec::with_capacity(manifest.routes.len());
        for (index, route) in manifest.routes.iter().enumerate() {
            router.insert(&route.path, &route.methods, index).map_err(|e| {
                let diagnostic = Diagnostic {
                    loc: Some(route.location.clone()),
                    key: format!("routes[{index}].path"),
                    message: format!("route conflict: {e}"),
                    help: None,
                };
                ManifestError::single(&manifest.source, None, diagnostic)
            })?;
            let filters = route.filters.iter().map(|f| slot(&f.name)).collect();
            let chain = Chain { filters, handler: slot(&route.handler.name) };
            let stream_body = manifest.plugin(&route.handler.name).and_then(|p| p.python.as_ref()).is_some_and(|p| p.stream_body);
            let trace_ratio = route.trace_sample_ratio;
            entries.push(RouteEntry { pattern: Arc::from(route.path.as_str()), chain, stream_body, trace_ratio });
        }
        let entries: Arc<[RouteEntry]> = entries.into();
        Ok(RouteTable { router: Arc::new(router), live: Vec::new(), entries, epoch: u64::MAX })
    }

    /// The same routes with their instances loaded now (after a swap or
    /// reload stored new ones): the epoch is read before the slots, so a
    /// swap racing the refresh leaves the table behind the registry (its
    /// requests load the slots) rather than ahead of it.
    pub fn refreshed(&self) -> RouteTable {
        let epoch = registry::epoch();
        let live = self.entries.iter().map(|entry| Live::load(&entry.chain)).collect();
        RouteTable { router: self.router.clone(), entries: self.entries.clone(), live, epoch }
    }

    /// Route `index`'s live instances for one request; `None` when one of
    /// its plugins is not live (still initialising). Borrowed from the table
    /// when it is at the current epoch (the common case); when a swap moved
    /// the epoch on since the refresh, loaded from the slots.
    pub fn live(&self, index: usize) -> Option<Cow<'_, Live>> {
        if self.epoch == registry::epoch() {
            return self.live.get(index)?.as_ref().map(Cow::Borrowed);
        }
        Live::load(&self.entries[index].chain).map(Cow::Owned)
    }
}
