//! The upstreams' series of `GET /metrics`, read from
//! `Upstreams::status()` at scrape time (nothing on the request path):
//!
//! | metric | labels |
//! |---|---|
//! | `covet_upstream_requests_total`, `_errors_total`, `_ejections_total` | `upstream`, `endpoint` (`ip:port`) |
//! | `covet_upstream_endpoint_healthy` (gauge: 1 healthy, 0 unhealthy or ejected) | `upstream`, `endpoint` |
//! | `covet_upstream_latency_seconds` (histogram, to the response head) | `upstream`, `endpoint` |
//! | `covet_upstream_in_flight`, `covet_upstream_pending` (gauges) | `upstream` |
//! | `covet_upstream_retries_total`, `_retry_budget_exhausted_total`, `_overloaded_total` | `upstream` |

use std::fmt;

use covet_services::upstream::{EndpointStatus, UpstreamStatus};
use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter},
};

/// `(name, help, the value)` of one per-endpoint counter family.
type EndpointCounter = (&'static str, &'static str, fn(&EndpointStatus) -> u64);

const ENDPOINT_COUNTERS: [EndpointCounter; 3] = [
    ("covet_upstream_requests", "Attempts sent to the endpoint.", |e| e.requests),
    ("covet_upstream_errors", "Attempts to the endpoint that failed (connect, reset, timeout) or answered 5xx.", |e| e.errors),
    ("covet_upstream_ejections", "Times outlier detection ejected the endpoint.", |e| e.ejections),
];

/// `(name, help, the value)` of one per-upstream counter family.
type UpstreamCounter = (&'static str, &'static str, fn(&UpstreamStatus) -> u64);

const UPSTREAM_COUNTERS: [UpstreamCounter; 3] = [
    ("covet_upstream_retries", "Retries made.", |u| u.retries),
    ("covet_upstream_retry_budget_exhausted", "Retries refused by the retry budget.", |u| u.retries_budget_exhausted),
    ("covet_upstream_overloaded", "Requests refused by the circuit breaker (503 overloaded).", |u| u.overloaded),
];

const UPSTREAM_GAUGES: [UpstreamCounter; 2] = [
    ("covet_upstream_in_flight", "Requests in flight to the upstream now.", |u| u.in_flight),
    ("covet_upstream_pending", "Requests waiting for a circuit-breaker slot now.", |u| u.pending),
];

/// Writes every upstream family for `upstreams` (one status snapshot).
pub fn encode(encoder: &mut DescriptorEncoder, upstreams: &[UpstreamStatus]) -> fmt::Result {
    let endpoints: Vec<([(&str, String); 2], &EndpointStatus)> = upstreams
        .iter()
        .flat_map(|u| u.endpoints.iter().map(move |e| ([("upstream", u.name.clone()), ("endpoint", e.address.clone())], e)))
        .collect();
    for (name, help, pick) in ENDPOINT_COUNTERS {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, e) in &endpoints {
            ConstCounter::new(pick(e)).encode(family.encode_family(labels)?)?;
        }
    }
    let help = "Whether the endpoint takes traffic: 1 healthy, 0 unhealthy (active checks) or ejected.";
    let mut family = encoder.encode_descriptor("covet_upstream_endpoint_healthy", help, None, MetricType::Gauge)?;
    for (labels, e) in &endpoints {
        family.encode_family(labels)?.encode_gauge(&i64::from(e.health == "healthy"))?;
    }
    let help = "Latency of attempts to the endpoint, until the response head.";
    let mut family = encoder.encode_descriptor("covet_upstream_latency_seconds", help, None, MetricType::Histogram)?;
    for (labels, e) in &endpoints {
        let buckets = super::metrics::per_bucket(&with_infinity(&e.latency_buckets, e.latency_count));
        family.encode_family(labels)?.encode_histogram::<NoLabelSet>(e.latency_sum_seconds, e.latency_count, &buckets, None)?;
    }
    for (name, help, pick) in UPSTREAM_COUNTERS {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for u in upstreams {
            ConstCounter::new(pick(u)).encode(family.encode_family(&[("upstream", u.name.as_str())])?)?;
        }
    }
    for (name, help, pick) in UPSTREAM_GAUGES {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for u in upstreams {
            let value = i64::try_from(pick(u)).unwrap_or(i64::MAX);
            family.encode_family(&[("upstream", u.name.as_str())])?.encode_gauge(&value)?;
        }
    }
    Ok(())
}

/// The cumulative buckets, ending with `+Inf` (holding every observation).
fn with_infinity(buckets: &[(f64, u64)], count: u64) -> Vec<(f64, u64)> {
    let mut all = buckets.to_vec();
    if all.last().is_none_or(|(bound, _)| bound.is_finite()) {
        all.push((f64::INFINITY, count));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_end_with_infinity_once() {
        assert_eq!(with_infinity(&[(0.1, 2)], 3), vec![(0.1, 2), (f64::INFINITY, 3)]);
        assert_eq!(with_infinity(&[(0.1, 2), (f64::INFINITY, 3)], 3).len(), 2);
    }
}
