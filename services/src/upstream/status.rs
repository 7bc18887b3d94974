//! Status snapshots of an upstream and its endpoints, read from the live
//! counters, for the admin API (`GET /v1/upstreams`, gRPC) and `/metrics`.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::config::Balance;
use super::endpoints::Endpoint;
use super::send::panic_mode;
use super::{EndpointStatus, Upstream, UpstreamStatus};

impl Upstream {
    /// The upstream's state now.
    pub fn status(&self) -> UpstreamStatus {
        let config = self.shared.config.load_full();
        let set = self.shared.endpoints.load_full();
        let now = Instant::now();
        UpstreamStatus {
            name: self.name.clone(),
            policy: policy_name(&config.balance),
            panic_mode: panic_mode(&set.endpoints, config.panic_threshold_percent, now),
            endpoints: set.endpoints.iter().map(|e| endpoint_status(e, now)).collect(),
            in_flight: self.breaker.in_flight() as u64,
            pending: self.breaker.pending() as u64,
            overloaded: self.breaker.overloaded_total(),
            retries: self.budget.retries_total(),
            retries_budget_exhausted: self.budget.exhausted_total(),
        }
    }
}

/// The manifest's name of a policy.
fn policy_name(balance: &Balance) -> &'static str {
    match balance {
        Balance::RoundRobin => "round_robin",
        Balance::LeastRequest => "least_request",
        Balance::RingHash { .. } => "ring_hash",
        Balance::Maglev { .. } => "maglev",
    }
}

fn endpoint_status(endpoint: &Endpoint, now: Instant) -> EndpointStatus {
    let health = &endpoint.health;
    let ejected_for = health.ejected_for(now);
    let (latency_buckets, latency_sum_seconds, latency_count) = endpoint.latency.snapshot();
    EndpointStatus {
        address: endpoint.addr.to_string(),
        host: endpoint.host.clone(),
        weight: endpoint.weight,
        health: if !ejected_for.is_zero() {
            "ejected"
        } else if health.active_verdict() == Some(false) {
            "unhealthy"
        } else {
            "healthy"
        },
        active_check_passing: health.active_verdict(),
        ejected_for_ms: ejected_for.as_millis() as u64,
        ejections: health.ejections(),
        in_flight: endpoint.in_flight.load(Ordering::Relaxed),
        requests: endpoint.requests.load(Ordering::Relaxed),
        errors: endpoint.error_count(),
        latency_buckets,
        latency_sum_seconds,
        latency_count,
    }
}
