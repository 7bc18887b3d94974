//! `covet_cache_requests_total{route,status}`: requests a cache plugin
//! looked up, counted from the metadata `cache.status` it sets (`hit`,
//! `miss`, `stale`, `revalidated`, `bypass`; any other value counts as
//! `other`), after the chain ran ([`crate::pipeline::run`]).
//!
//! A request without `cache.status` costs one metadata lookup. One that has
//! it takes a read lock and bumps an atomic; the first of a route takes the
//! write lock once to add its row. Rows stay for the process's life (routes
//! are few), so a count survives reloads.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::metadata::Metadata;

/// The status labels, in the order of a row's counters.
pub const STATUSES: [&str; 6] = ["hit", "miss", "stale", "revalidated", "bypass", "other"];

type Row = [AtomicU64; STATUSES.len()];

fn rows() -> &'static RwLock<HashMap<Arc<str>, Arc<Row>>> {
    static ROWS: OnceLock<RwLock<HashMap<Arc<str>, Arc<Row>>>> = OnceLock::new();
    ROWS.get_or_init(Default::default)
}

/// Counts the request on `route` when its metadata has `cache.status`.
pub fn count(route: &Arc<str>, metadata: &Metadata) {
    let Some(status) = metadata.get("cache.status") else { return };
    let index = STATUSES[..STATUSES.len() - 1].iter().position(|s| *s == status).unwrap_or(STATUSES.len() - 1);
    let found = rows().read().unwrap_or_else(|p| p.into_inner()).get(&**route).cloned();
    let row = match found {
        Some(row) => row,
        None => rows().write().unwrap_or_else(|p| p.into_inner()).entry(route.clone()).or_default().clone(),
    };
    row[index].fetch_add(1, Ordering::Relaxed);
}

/// `(route, status, count)` of every counter that moved, sorted by route,
/// then in [`STATUSES`] order.
pub fn snapshot() -> Vec<(Arc<str>, &'static str, u64)> {
    let rows = rows().read().unwrap_or_else(|p| p.into_inner());
    let mut all: Vec<_> = rows
        .iter()
        .flat_map(|(route, row)| {
            STATUSES.iter().zip(row.iter()).filter_map(|(status, n)| {
                let n = n.load(Ordering::Relaxed);
                (n > 0).then(|| (route.clone(), *status, n))
            })
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0)); // stable: a route's statuses stay in STATUSES order
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: Option<&str>) -> Metadata {
        let mut metadata = Metadata::default();
        metadata.set("upstream.name", "origin");
        if let Some(status) = status {
            metadata.set("cache.status", status);
        }
        metadata
    }

    fn counted(route: &str, status: &str) -> u64 {
        snapshot().iter().find(|(r, s, _)| &**r == route && *s == status).map_or(0, |(_, _, n)| *n)
    }

    #[test]
    fn requests_count_by_route_and_status_only_when_set() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("/unit-a/{*rest}"), Arc::from("/unit-b"));
        count(&a, &with_status(Some("hit")));
        count(&a, &with_status(Some("hit")));
        count(&a, &with_status(Some("miss")));
        count(&b, &with_status(Some("stale")));
        count(&b, &with_status(Some("warm")));
        count(&b, &with_status(None));
        assert_eq!((counted("/unit-a/{*rest}", "hit"), counted("/unit-a/{*rest}", "miss")), (2, 1));
        assert_eq!((counted("/unit-b", "stale"), counted("/unit-b", "other"), counted("/unit-b", "hit")), (1, 1, 0));
        let listed: Vec<_> = snapshot().into_iter().filter(|(r, ..)| r.starts_with("/unit-")).map(|(r, s, _)| (r, s)).collect();
        let expected: Vec<(Arc<str>, &str)> = vec![(a.clone(), "hit"), (a, "miss"), (b.clone(), "stale"), (b, "other")];
        assert_eq!(listed, expected, "sorted by route, in STATUSES order, zeros left out");
    }
}
