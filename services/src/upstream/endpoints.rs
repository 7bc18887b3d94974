//! Endpoints: one per resolved address of an upstream, with its connection
//! pool, counters, latency histogram and health state; and the set of them
//! an upstream balances over, swapped whole (arc-swap) when DNS answers change.
//!
//! Names in the manifest's `endpoints` are resolved through a [`Resolver`]
//! (tokio's `lookup_host` by default; tests inject their own) when the
//! upstream is built and every `dns_refresh`; IP literals never are. An
//! address that stays keeps its [`Endpoint`] (health, counters, pool); a name
//! that fails to resolve keeps its last addresses.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::balance::{Balancer, hash64};
use super::client::EndpointClient;
use super::config::{EndpointSpec, UpstreamConfig};
use super::health::Health;
use crate::ServiceError;
use crate::http::OutboundMetrics;

/// Upper bounds (seconds) of the latency histogram's buckets.
/// Slower attempts are counted only in the total.
pub(crate) const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A future of a DNS answer.
pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;

/// Turns a name and port into addresses (injectable for tests).
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host:port`.
    fn lookup(&self, host: &str, port: u16) -> LookupFuture;
}

/// The system resolver, through `tokio::net::lookup_host`.
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str, port: u16) -> LookupFuture {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// A latency histogram with fixed buckets (cumulative on read).
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// `(cumulative buckets, sum in seconds, count)`.
    pub(crate) fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut total = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.counts)
            .map(|(bound, count)| {
                total += count.load(Ordering::Relaxed);
                (*bound, total)
            })
            .collect();
        (buckets, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, self.count.load(Ordering::Relaxed))
    }
}

/// One endpoint: an address an upstream sends attempts to.
pub(crate) struct Endpoint {
    /// The address connected to.
    pub(crate) addr: SocketAddr,
    /// The host it was configured as (IP literal or DNS name).
    pub(crate) host: String,
    /// The port it was configured with.
    pub(crate) spec_port: u16,
    /// Its weight.
    pub(crate) weight: u32,
    /// The opaque id in sticky cookies (hex of a hash of the address).
    pub(crate) id: String,
    /// Its connection pool.
    pub(crate) client: EndpointClient,
    /// `upstream 'name' (addr)`, named in response-body errors (made once, not per request).
    pub(crate) target: Arc<str>,
    /// `addr` as text, made once: every response names its endpoint.
    pub(crate) addr_text: Arc<str>,
    /// Attempts in flight now (until the response head).
    pub(crate) in_flight: AtomicU64,
    /// Attempts sent.
    pub(crate) requests: AtomicU64,
    /// Attempts that failed or answered 5xx.
    pub(crate) errors: AtomicU64,
    /// Response bodies that failed mid-way (counted by `ResponseBody`).
    pub(crate) body_errors: Arc<OutboundMetrics>,
    /// Latency to the response head.
    pub(crate) latency: Histogram,
    /// Active-check verdict and outlier state.
    pub(crate) health: Health,
}

impl Endpoint {
    pub(crate) fn new(spec: &Wanted, config: &UpstreamConfig) -> Result<Endpoint, ServiceError> {
        let Wanted { addr, ref host, port, weight } = *spec;
        Ok(Endpoint {
            addr,
            host: host.to_owned(),
            spec_port: port,
            weight,
            id: format!("{:016x}", hash64(addr.to_string().as_bytes(), 0x5717)),
            client: EndpointClient::new(addr, host, config)?,
            target: Arc::from(format!("upstream '{}' ({addr})", config.name)),
            addr_text: Arc::from(addr.to_string()),
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            body_errors: Arc::default(),
            latency: Histogram::default(),
            health: Health::new(Instant::now()),
        })
    }

    /// The `host` header sent when the request has none: the configured host,
    /// with the port unless it is the scheme's default.
    pub(crate) fn host_header(&self, tls: bool) -> String {
        let default_port = if tls { 443 } else { 80 };
        let host = match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.host.clone(),
        };
        if self.addr.port() == default_port { host } else { format!("{host}:{}", self.addr.port()) }
    }

    /// Whether this endpoint is the `wanted` one.
    pub(crate) fn same_as(&self, wanted: &Wanted) -> bool {
        self.addr == wanted.addr
            && self.host == wanted.host
            && self.spec_port == wanted.port
            && self.weight == wanted.weight
    }

    /// Errors so far (attempts and response bodies).
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed) + self.body_errors.errors.load(Ordering::Relaxed)
    }
}

/// One address an upstream should have: from which host and port, with which weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) weight: u32,
}

/// The endpoints an upstream balances over now, and the balancer built for them.
pub(crate) struct EndpointSet {
    pub(crate) endpoints: Vec<Arc<Endpoint>>,
    pub(crate) balancer: Balancer,
    /// False until every configured name has been resolved once (or failed).
    pub(crate) resolved: bool,
}

impl EndpointSet {
    /// A set over `endpoints` with `config`'s balancing policy.
    pub(crate) fn new(endpoints: Vec<Arc<Endpoint>>, config: &UpstreamConfig, resolved: bool) -> EndpointSet {
        let members: Vec<(String, u32)> = endpoints.iter().map(|e| (e.addr.to_string(), e.weight)).collect();
        EndpointSet { balancer: Balancer::new(&config.balance, &members), endpoints, resolved }
    }

    /// The same endpoints with a new balancer (the policy may have changed).
    pub(crate) fn rebalanced(&self, config: &UpstreamConfig) -> EndpointSet {
        EndpointSet::new(self.endpoints.clone(), config, self.resolved)
    }
}

/// Whether a configured host is an IP literal (never resolved).
pub(crate) fn is_ip_literal(host: &str) -> bool {
    host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok()
}

/// The addresses of every spec: IP literals as is, names from `answers`
/// (specs without an answer yet contribute none). The first spec naming an
/// address wins it.
pub(crate) fn addresses(specs: &[EndpointSpec], answers: &HashMap<(String, u16), Vec<SocketAddr>>) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    for spec in specs {
        let addrs = if is_ip_literal(&spec.host) {
            let ip: IpAddr = spec.host.trim_start_matches('[').trim_end_matches(']').parse().expect("checked literal");
            vec![SocketAddr::new(ip, spec.port)]
        } else {
            answers.get(&(spec.host.clone(), spec.port)).cloned().unwrap_or_default()
        };
        for addr in addrs {
            if !out.iter().any(|w| w.addr == addr) {
                out.push(Wanted { addr, host: spec.host.clone(), port: spec.port, weight: spec.weight });
            }
        }
    }
    out
}

/// The endpoints for `wanted`, reusing those of `current` with the same
/// address and host.
pub(crate) fn endpoints_for(
    wanted: &[Wanted],
    current: &[Arc<Endpoint>],
    config: &UpstreamConfig,
) -> Result<Vec<Arc<Endpoint>>, ServiceError> {
    wanted
        .iter()
        .map(|w| match current.iter().find(|e| e.same_as(w)) {
            Some(endpoint) => Ok(endpoint.clone()),
            None => Endpoint::new(w, config).map(Arc::new),
        })
        .collect()
}

/// Resolves every name of `specs` once, keeping the last answer of a name
/// that fails now (logged). Returns whether every name has an answer.
pub(crate) async fn resolve_names(
    upstream: &str,
    specs: &[EndpointSpec],
    resolver: &dyn Resolver,
    answers: &mut HashMap<(String, u16), Vec<SocketAddr>>,
) -> bool {
    let mut complete = true;
    for spec in specs.iter().filter(|s| !is_ip_literal(&s.host)) {
        let key = (spec.host.clone(), spec.port);
        match resolver.lookup(&spec.host, spec.port).await {
            Ok(addrs) if !addrs.is_empty() => {
                answers.insert(key, addrs);
            }
            Ok(_) => {
                tracing::warn!(upstream, host = %spec.host, "DNS answered no address; keeping the last ones");
                complete &= answers.contains_key(&key);
            }
            Err(e) => {
                tracing::warn!(upstream, host = %spec.host, error = %e, "DNS lookup failed; keeping the last addresses");
                complete &= answers.contains_key(&key);
            }
        }
    }
    complete
}

/// The answers the endpoints of `current` came from, so that a restarted
/// DNS task keeps them when a name fails to resolve.
fn current_answers(specs: &[EndpointSpec], current: &[Arc<Endpoint>]) -> HashMap<(String, u16), Vec<SocketAddr>> {
    let mut answers = HashMap::new();
    for spec in specs.iter().filter(|s| !is_ip_literal(&s.host)) {
        let addrs: Vec<SocketAddr> =
            current.iter().filter(|e| e.host == spec.host && e.spec_port == spec.port).map(|e| e.addr).collect();
        if !addrs.is_empty() {
            answers.insert((spec.host.clone(), spec.port), addrs);
        }
    }
    answers
}

/// The background DNS task of an upstream: resolves its names now and every
/// `dns_refresh`, swapping in a new set when the addresses change.
pub(crate) async fn dns_task(shared: Arc<super::Shared>) {
    let mut answers = current_answers(&shared.config.load().endpoints, &shared.endpoints.load().endpoints);
    loop {
        let config = shared.config.load_full();
        resolve_names(&config.name, &config.endpoints, shared.resolver.as_ref(), &mut answers).await;
        let wanted = addresses(&config.endpoints, &answers);
        let current = shared.endpoints.load_full();
        let same = current.resolved
            && current.endpoints.len() == wanted.len()
            && current.endpoints.iter().zip(&wanted).all(|(e, w)| e.same_as(w));
        if !same {
            match endpoints_for(&wanted, &current.endpoints, &config) {
                Ok(endpoints) => {
                    tracing::info!(upstream = %config.name, endpoints = endpoints.len(), "upstream endpoints changed");
                    shared.endpoints.store(Arc::new(EndpointSet::new(endpoints, &config, true)));
                }
                Err(e) => tracing::warn!(upstream = %config.name, error = %e, "could not build the new endpoints"),
            }
        }
        shared.resolved.send_replace(true);
        let refresh = config.dns_refresh.max(Duration::from_millis(100));
        tokio::time::sleep(refresh).await;
    }
}
