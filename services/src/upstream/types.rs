//! What goes into and comes out of [`super::Upstream::send`], and the
//! status snapshot the admin API and `/metrics` show.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::http::{RequestBody, ResponseBody};

/// A request to an upstream, as the proxy (or any granted plugin) made it.
pub struct UpstreamRequest {
    /// The method.
    pub method: http::Method,
    /// Path and query sent to the endpoint.
    pub path_and_query: String,
    /// Headers sent to the endpoint (hop-by-hop ones already removed by the
    /// caller, except `connection`/`upgrade` on an upgrade request). Without
    /// `host`, the endpoint's configured `host:port` is sent.
    pub headers: http::HeaderMap,
    /// The body; `None`: empty. For an upgrade request: the client's bytes after the upgrade.
    pub body: Option<RequestBody>,
    /// The client's IP address, for `client_ip` hashing.
    pub client_ip: Option<IpAddr>,
    /// Per-request overrides of the upstream's settings.
    pub overrides: Overrides,
}

/// Per-request overrides; `None` keeps the upstream's setting.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Overall deadline (only ever shortens the upstream's `timeout`).
    pub timeout: Option<Duration>,
    /// Deadline of each attempt.
    pub per_try_timeout: Option<Duration>,
    /// Most retries.
    pub max_retries: Option<u32>,
    /// Retry non-idempotent methods.
    pub retry_non_idempotent: Option<bool>,
}

/// The response kept: the head, the streamed body (trailers included), which
/// endpoint answered, and after how many attempts.
pub struct UpstreamResponse {
    /// The response (a `101` of an upgrade: its body is the endpoint's bytes).
    pub response: http::Response<ResponseBody>,
    /// The endpoint that answered.
    pub endpoint: SocketAddr,
    /// `endpoint` as text (made once per endpoint, not per response).
    pub endpoint_text: std::sync::Arc<str>,
    /// Attempts made (1: no retry).
    pub attempts: u32,
}

/// One upstream as the admin API shows it (`GET /v1/upstreams`).
#[derive(Clone, Debug, Serialize)]
pub struct UpstreamStatus {
    /// The upstream's name.
    pub name: String,
    /// `round_robin`, `least_request`, `ring_hash`, `maglev`.
    pub policy: &'static str,
    /// True while fewer than the panic threshold of endpoints are healthy (all are used).
    pub panic_mode: bool,
    /// The endpoints (one per resolved address).
    pub endpoints: Vec<EndpointStatus>,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Requests waiting for a circuit-breaker slot now.
    pub pending: u64,
    /// Requests refused by the circuit breaker so far.
    pub overloaded: u64,
    /// Retries made so far.
    pub retries: u64,
    /// Retries refused by the retry budget so far.
    pub retries_budget_exhausted: u64,
}

/// One endpoint's state and counters.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointStatus {
    /// `ip:port`.
    pub address: String,
    /// The name it was configured as (an IP literal, or the DNS name it resolved from).
    pub host: String,
    /// Its weight.
    pub weight: u32,
    /// `healthy`, `unhealthy` (failed active checks) or `ejected` (outlier detection).
    pub health: &'static str,
    /// The active checks' verdict: `Some(true)` passing, `Some(false)` failing, `None` not checked (yet).
    pub active_check_passing: Option<bool>,
    /// Milliseconds until an ejection ends (0 when not ejected).
    pub ejected_for_ms: u64,
    /// Times ejected so far.
    pub ejections: u64,
    /// Requests in flight to it now.
    pub in_flight: u64,
    /// Attempts sent to it so far.
    pub requests: u64,
    /// Attempts that failed (connect, reset, timeout) or answered 5xx.
    pub errors: u64,
    /// Latency of attempts to the response head: cumulative counts per bucket upper bound (seconds).
    pub latency_buckets: Vec<(f64, u64)>,
    /// Sum of latencies, seconds.
    pub latency_sum_seconds: f64,
    /// Number of latencies observed.
    pub latency_count: u64,
}
