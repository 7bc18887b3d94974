//! The settings of one upstream, as the host builds them from the manifest's
//! `upstreams:` block. Defaults follow what Envoy and nginx users expect;
//! every duration and threshold is the manifest's to change.

use std::time::Duration;

use crate::http::ClientCert;

/// One upstream: a named set of endpoints and how requests reach them.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamConfig {
    /// The upstream's name (the manifest key).
    pub name: String,
    /// The endpoints, as configured (names are resolved, and re-resolved every `dns_refresh`).
    pub endpoints: Vec<EndpointSpec>,
    /// Which HTTP version is spoken to the endpoints.
    pub protocol: Protocol,
    /// TLS to the endpoints; `None`: plain TCP.
    pub tls: Option<UpstreamTls>,
    /// How an endpoint is picked.
    pub balance: Balance,
    /// Sticky sessions by cookie, on top of `balance`.
    pub sticky: Option<Sticky>,
    /// Active HTTP health checks.
    pub active_health: Option<ActiveHealth>,
    /// Passive outlier detection.
    pub outlier: Option<Outlier>,
    /// When fewer than this share (percent) of endpoints is healthy, all are used ("panic mode").
    pub panic_threshold_percent: u8,
    /// Retries.
    pub retries: RetryPolicy,
    /// Overall deadline of a request, all attempts included, until the response head.
    pub timeout: Duration,
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// Longest wait for the next chunk of a response body.
    pub body_idle_timeout: Duration,
    /// Circuit breaker.
    pub circuit: Circuit,
    /// How often names in `endpoints` are resolved again.
    pub dns_refresh: Duration,
    /// How long an idle pooled connection to an endpoint is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per endpoint.
    pub pool_max_idle_per_endpoint: usize,
}

impl UpstreamConfig {
    /// An upstream named `name` over `endpoints` with every other setting at its default.
    pub fn new(name: &str, endpoints: Vec<EndpointSpec>) -> UpstreamConfig {
        UpstreamConfig {
            name: name.to_owned(),
            endpoints,
            protocol: Protocol::Http1,
            tls: None,
            balance: Balance::RoundRobin,
            sticky: None,
            active_health: None,
            outlier: Some(Outlier::default()),
            panic_threshold_percent: 50,
            retries: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            body_idle_timeout: Duration::from_secs(60),
            circuit: Circuit::default(),
            dns_refresh: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_endpoint: 64,
        }
    }
}

/// One configured endpoint: an IP address or a DNS name, a port, a weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// IP literal or DNS name.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Relative weight (1..=1000); each address a name resolves to gets it.
    pub weight: u32,
}

/// The HTTP version spoken to the endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (the default).
    Http1,
    /// HTTP/2: prior knowledge (h2c) over plain TCP, ALPN `h2` over TLS.
    Http2,
    /// Over TLS, what ALPN picks (h2 or http/1.1); over plain TCP, HTTP/1.1.
    Auto,
}

/// TLS to the endpoints. Verification is on unless `insecure_skip_verify`.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamTls {
    /// The name sent as SNI and verified in the certificate; default: the endpoint's configured host.
    pub sni: Option<String>,
    /// Extra trusted CA certificates (PEM); the system and Mozilla roots are trusted too.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate for mTLS.
    pub client_cert: Option<ClientCert>,
    /// Skip certificate verification (for tests against self-signed servers; logged loudly).
    pub insecure_skip_verify: bool,
}

/// How an endpoint is picked among the healthy ones.
#[derive(Clone, Debug, PartialEq)]
pub enum Balance {
    /// Smooth weighted round robin (nginx's).
    RoundRobin,
    /// Power of two choices: of two random endpoints (weighted), the one with fewer requests in flight.
    LeastRequest,
    /// Consistent hashing on a ring (Ketama-like, 160 points per weight unit).
    RingHash {
        /// What is hashed.
        key: HashKey,
        /// With `Some(f)`, an endpoint takes at most `f` × the mean in-flight load; past it, the next on the ring.
        bounded_load: Option<f64>,
    },
    /// Maglev consistent hashing (table of 65,537 entries).
    Maglev {
        /// What is hashed.
        key: HashKey,
        /// As for `RingHash`.
        bounded_load: Option<f64>,
    },
}

/// The request property consistent hashing uses. A request without it is balanced round robin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// A request header's value.
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The client's IP address.
    ClientIp,
    /// The request path (without the query).
    Path,
}

/// Sticky sessions: the endpoint chosen first is remembered in a cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sticky {
    /// The cookie's name.
    pub cookie: String,
    /// `Max-Age` of the cookie; `None`: a session cookie.
    pub ttl: Option<Duration>,
}

/// Active health checks: a request to every endpoint every `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveHealth {
    /// Path requested (`GET`).
    pub path: String,
    /// Time between checks of one endpoint.
    pub interval: Duration,
    /// Deadline of one check.
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy endpoint healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Statuses that pass, as inclusive ranges (default 200..=399).
    pub expected_statuses: Vec<(u16, u16)>,
    /// `host` header of the check; default: the upstream's host.
    pub host: Option<String>,
}

/// Passive outlier detection: failures seen on real traffic eject an endpoint for a while.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outlier {
    /// Consecutive 5xx responses that eject (0: off).
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors (502, 503, 504, reset, timeout) that eject (0: off).
    pub consecutive_gateway_errors: u32,
    /// Consecutive connect failures that eject (0: off).
    pub consecutive_connect_failures: u32,
    /// First ejection time; the n-th ejection in a row lasts n × this.
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// Most endpoints ejected at once, percent of all (at least one may always be ejected).
    pub max_ejection_percent: u8,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 3,
            consecutive_connect_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// When and how often a failed attempt is tried again on another endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Most retries per request (0: none).
    pub max_retries: u32,
    /// Retry when the connection could not be made.
    pub on_connect_failure: bool,
    /// Retry when the connection was reset or broke before the response head.
    pub on_reset: bool,
    /// Retry on these statuses (default 502, 503, 504).
    pub on_statuses: Vec<u16>,
    /// Retry non-idempotent methods too (POST, PATCH, ...).
    pub non_idempotent: bool,
    /// Deadline of each attempt until its response head; `None`: only the overall timeout.
    pub per_try_timeout: Option<Duration>,
    /// Retries may add at most this share of requests (percent) over a 10 s window...
    pub budget_percent: f64,
    /// ...but at least this many retries per second are always allowed.
    pub budget_min_per_sec: u32,
    /// A request body is kept for replay up to this many bytes; a request whose body passed it is not retried.
    pub replay_buffer: usize,
    /// Wait before retry n: `backoff` × 2^(n-1), jittered, capped at 10 × `backoff`.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            on_connect_failure: true,
            on_reset: true,
            on_statuses: vec![502, 503, 504],
            non_idempotent: false,
            per_try_timeout: None,
            budget_percent: 20.0,
            budget_min_per_sec: 3,
            replay_buffer: 64 * 1024,
            backoff: Duration::from_millis(25),
        }
    }
}

/// The circuit breaker of an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    /// Most requests in flight to the upstream at once.
    pub max_requests: usize,
    /// Most requests waiting for a free slot; past it, `Overloaded` at once.
    pub max_pending: usize,
    /// `retry-after` advertised when overloaded.
    pub retry_after: Duration,
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit { max_requests: 1024, max_pending: 1024, retry_after: Duration::from_secs(1) }
    }
}
