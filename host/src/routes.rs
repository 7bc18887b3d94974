//! The route table: the router plus each route's chain of plugin slots,
//! built once from the manifest (and swapped whole when it changes).

use std::sync::Arc;

use crate::{
    manifest::{Diagnostic, Manifest, ManifestError},
    pipeline::Chain,
    registry::Slot,
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

/// Router plus routes.
pub struct RouteTable {
    /// Matchit trees.
    pub router: Router,
    /// Routes by index.
    pub entries: Vec<RouteEntry>,
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
        Ok(RouteTable { router, entries })
    }
}
