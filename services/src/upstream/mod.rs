//! Upstreams: named sets of endpoints that plugins (the `proxy` above all)
//! send requests to. The host keeps them, not a plugin instance, so health,
//! ejections and counters survive a swap of the proxy plugin and a manifest
//! reload that leaves an upstream's endpoints unchanged, and every route and
//! plugin that names an upstream shares its breaker and retry budget.
//!
//! [`Upstreams`] is the registry ([`Upstreams::reconcile`] applies the
//! manifest); each [`Upstream`] holds its settings in an `ArcSwap` (changed
//! in place by a reload), its endpoint set in another (swapped by DNS
//! changes), its breaker and retry budget, and its background tasks (DNS
//! refresh, active health checks), aborted when it is dropped.

mod balance;
pub(crate) mod breaker;
pub(crate) mod budget;
pub(crate) mod client;
mod config;
mod endpoints;
mod health;
pub(crate) mod replay;
mod send;
mod status;
pub(crate) mod tunnel;
mod types;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use config::*;
pub use endpoints::{LookupFuture, Resolver, SystemResolver};
pub use types::*;

use breaker::Breaker;
use budget::RetryBudget;
use endpoints::{Endpoint, EndpointSet, addresses, is_ip_literal};

use crate::ServiceError;

/// The registry of upstreams (cheap to clone).
#[derive(Clone)]
pub struct Upstreams {
    inner: Arc<Registry>,
}

struct Registry {
    map: ArcSwap<BTreeMap<String, Arc<Upstream>>>,
    resolver: Arc<dyn Resolver>,
    /// Serialises reconciles.
    reconciling: Mutex<()>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::with_resolver(Arc::new(SystemResolver))
    }
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").field("names", &self.names()).finish()
    }
}

impl Upstreams {
    /// An empty registry resolving names with the system resolver.
    pub fn new() -> Upstreams {
        Upstreams::default()
    }

    /// An empty registry resolving names with `resolver`.
    pub fn with_resolver(resolver: Arc<dyn Resolver>) -> Upstreams {
        let inner = Registry { map: ArcSwap::default(), resolver, reconciling: Mutex::new(()) };
        Upstreams { inner: Arc::new(inner) }
    }

    /// Applies the manifest's upstreams: an upstream whose endpoint specs are
    /// unchanged keeps its Endpoint objects (health, ejections, counters) and
    /// takes the new settings; a new/changed one is (re)built; removed ones are
    /// dropped (their background tasks end). Call inside a tokio runtime.
    /// On an error nothing changes.
    pub fn reconcile(&self, configs: Vec<UpstreamConfig>) -> Result<(), ServiceError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ServiceError::Config("upstreams must be reconciled inside a tokio runtime".into()));
        }
        let _serial = self.inner.reconciling.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.inner.map.load_full();
        let mut next = BTreeMap::new();
        let mut kept = Vec::new();
        for config in configs {
            validate(&config)?;
            let name = config.name.clone();
            match current.get(&name) {
                Some(upstream) if same_transport(&upstream.config(), &config) => {
                    kept.push((upstream.clone(), config));
                    next.insert(name, upstream.clone());
                }
                _ => {
                    let upstream = Upstream::build(config, self.inner.resolver.clone())?;
                    next.insert(name, Arc::new(upstream));
                }
            }
        }
        for (upstream, config) in kept {
            upstream.update(config);
        }
        for upstream in next.values() {
            upstream.start_tasks();
        }
        self.inner.map.store(Arc::new(next));
        Ok(())
    }

    /// The upstream named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Upstream>> {
        self.inner.map.load().get(name).cloned()
    }

    /// The names of the upstreams, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.map.load().keys().cloned().collect()
    }

    /// Every upstream's status, sorted by name.
    pub fn status(&self) -> Vec<UpstreamStatus> {
        self.inner.map.load().values().map(|u| u.status()).collect()
    }
}

/// Whether two configurations build the same endpoints (specs, protocol,
/// TLS, connection settings): if so the endpoints are kept.
fn same_transport(old: &UpstreamConfig, new: &UpstreamConfig) -> bool {
    old.endpoints == new.endpoints
        && old.protocol == new.protocol
        && old.tls == new.tls
        && old.connect_timeout == new.connect_timeout
        && old.pool_idle_timeout == new.pool_idle_timeout
        && old.pool_max_idle_per_endpoint == new.pool_max_idle_per_endpoint
}

fn validate(config: &UpstreamConfig) -> Result<(), ServiceError> {
    let fail = |what: &str| Err(ServiceError::Config(format!("upstream '{}': {what}", config.name)));
    if config.endpoints.is_empty() {
        return fail("has no endpoints");
    }
    if let Some(spec) = config.endpoints.iter().find(|s| s.host.is_empty() || s.port == 0) {
        return fail(&format!("endpoint '{}:{}' needs a host and a port", spec.host, spec.port));
    }
    Ok(())
}

/// What an upstream's background tasks share with it.
pub(crate) struct Shared {
    pub(crate) config: ArcSwap<UpstreamConfig>,
    pub(crate) endpoints: ArcSwap<EndpointSet>,
    pub(crate) resolver: Arc<dyn Resolver>,
    /// True once every name was resolved once (or failed to).
    pub(crate) resolved: watch::Sender<bool>,
}

/// One upstream: its settings, endpoints, breaker, retry budget and tasks.
pub struct Upstream {
    name: String,
    shared: Arc<Shared>,
    breaker: Breaker,
    budget: RetryBudget,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

impl Upstream {
    /// An upstream over `config`'s endpoints: IP literals now, names once the
    /// DNS task has resolved them.
    fn build(config: UpstreamConfig, resolver: Arc<dyn Resolver>) -> Result<Upstream, ServiceError> {
        let wanted = addresses(&config.endpoints, &Default::default());
        let endpoints =
            wanted.iter().map(|wanted| Endpoint::new(wanted, &config).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        let has_names = config.endpoints.iter().any(|s| !is_ip_literal(&s.host));
        let set = EndpointSet::new(endpoints, &config, !has_names);
        let shared = Shared {
            endpoints: ArcSwap::from_pointee(set),
            resolver,
            resolved: watch::Sender::new(!has_names),
            config: ArcSwap::from_pointee(config.clone()),
        };
        Ok(Upstream {
            name: config.name.clone(),
            shared: Arc::new(shared),
            breaker: Breaker::new(&config.circuit),
            budget: RetryBudget::new(config.retries.budget_percent, config.retries.budget_min_per_sec),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Takes new settings (same endpoints): limits, budget, balancing, checks.
    fn update(&self, config: UpstreamConfig) {
        let old = self.shared.config.load_full();
        self.breaker.set_limits(&config.circuit);
        self.budget.set(config.retries.budget_percent, config.retries.budget_min_per_sec);
        let rebalance = old.balance != config.balance;
        self.shared.config.store(Arc::new(config));
        if rebalance {
            let config = self.shared.config.load_full();
            self.shared.endpoints.rcu(|set| set.rebalanced(&config));
        }
    }

    /// (Re)starts the DNS and active-check tasks with the current settings.
    fn start_tasks(&self) {
        self.stop_tasks();
        let config = self.shared.config.load_full();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if config.endpoints.iter().any(|s| !is_ip_literal(&s.host)) {
            tasks.push(tokio::spawn(endpoints::dns_task(self.shared.clone())).abort_handle());
        }
        if config.active_health.is_some() {
            tasks.push(tokio::spawn(health::active_task(self.shared.clone())).abort_handle());
        }
    }

    fn stop_tasks(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<UpstreamConfig> {
        self.shared.config.load_full()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "health_tests.rs"]
mod health_tests;
