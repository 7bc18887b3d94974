//! [`Upstream::send`]: one request to an upstream, through its circuit
//! breaker, balanced over its usable endpoints, retried within its policy,
//! retry budget and deadline.
//!
//! Each attempt picks an endpoint not tried yet by this request (a tried one
//! only when no other is usable), sends with a per-try deadline until the
//! response head, and feeds the outcome to outlier detection. A failed
//! attempt is retried when the method is idempotent (or `non_idempotent` is
//! on; connect failures are retried for any method, as nginx does, since
//! nothing reached the endpoint), the failure kind is enabled, retries are
//! left, the budget allows and the body can still be replayed; after an
//! exponential, jittered backoff that never passes the deadline.
//!
//! Tracing: with a tracer installed, each attempt is a client span
//! (`"{METHOD} {upstream}"`, a child of the calling plugin phase's current
//! span; `http.request.resend_count` is 0 for the first try) whose ids
//! replace the caller's `traceparent` / `tracestate` on that attempt, and
//! which ends at the attempt's response head or failure (`error.type`:
//! the status code, `connect`, `tls`, `reset`, `protocol`, `timeout`).
//! With none installed, an attempt costs one atomic load more. Active
//! health checks send through the endpoint client directly: no spans.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::header::{COOKIE, HOST, SET_COOKIE, UPGRADE};
use http::{HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::balance::{hash64, random_u64};
use super::breaker::BreakerPermit;
use super::client::SendError;
use super::config::{Balance, HashKey, UpstreamConfig};
use super::endpoints::{Endpoint, EndpointSet};
use super::health::{self, Outcome};
use super::replay::Replay;
use super::tunnel::tunnel;
use super::{Upstream, UpstreamRequest, UpstreamResponse};
use crate::ServiceError;
use crate::http::ResponseBody;
use crate::http::trace::{self, ClientSpan};
use covet_telemetry::{KeyValue, tracer};

/// Why an attempt failed, as the retry decision and the final error need it.
enum Failure {
    /// Connection (TCP or TLS) not made.
    Connect(SendError),
    /// Reset or broken before the head.
    Reset(String),
    /// Another protocol error.
    Protocol(String),
    /// No head within the per-try deadline.
    PerTryTimeout(Duration),
    /// A retryable status; the response is kept in case no retry happens.
    Status(http::Response<Incoming>),
}

/// The parts of the request every attempt sends.
struct Head {
    method: Method,
    path_and_query: String,
    headers: http::HeaderMap,
}

/// What one request carries through its attempts.
struct Attempts {
    config: Arc<UpstreamConfig>,
    deadline: Instant,
    timeout: Duration,
    per_try: Option<Duration>,
    max_retries: u32,
    retry_method: bool,
    upgrade: bool,
    key: Option<u64>,
    sticky_id: Option<String>,
    tried: Vec<SocketAddr>,
}

impl Upstream {
    /// Sends `request` to one of the upstream's endpoints (see the module docs).
    pub async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, ServiceError> {
        let UpstreamRequest { method, path_and_query, headers, body, client_ip, overrides } = request;
        let head = Head { method, path_and_query, headers };
        let config = self.shared.config.load_full();
        let timeout = overrides.timeout.map_or(config.timeout, |t| t.min(config.timeout));
        let deadline = Instant::now() + timeout;
        let permit = match tokio::time::timeout_at(deadline, self.breaker.acquire()).await {
            Err(_) => return Err(self.timeout("waiting for a circuit-breaker slot", timeout)),
            Ok(Err(_)) => {
                return Err(ServiceError::Overloaded {
                    upstream: self.name.clone(),
                    retry_after: config.circuit.retry_after,
                });
            }
            Ok(Ok(permit)) => permit,
        };
        self.budget.on_request();
        self.wait_resolved(deadline, timeout).await?;
        let upgrade = head.headers.contains_key(UPGRADE);
        let (replay, tunnel_bytes) = if upgrade {
            (Replay::new(None, 0), body)
        } else {
            (Replay::new(body, config.retries.replay_buffer), None)
        };
        let mut attempts = Attempts {
            deadline,
            timeout,
            per_try: overrides.per_try_timeout.or(config.retries.per_try_timeout),
            max_retries: if upgrade { 0 } else { overrides.max_retries.unwrap_or(config.retries.max_retries) },
            retry_method: is_idempotent(&head.method)
                || overrides.retry_non_idempotent.unwrap_or(config.retries.non_idempotent),
            upgrade,
            key: hash_key(&config, &head, client_ip),
            sticky_id: config.sticky.as_ref().and_then(|s| cookie(&head.headers, &s.cookie)),
            tried: Vec::new(),
            config,
        };
        let (endpoint, response) = self.attempt_loop(&mut attempts, &head, &replay).await?;
        self.finish(&attempts, endpoint, response, tunnel_bytes, permit)
    }

    /// Waits (within the deadline) for the first DNS answers of a new upstream.
    async fn wait_resolved(&self, deadline: Instant, timeout: Duration) -> Result<(), ServiceError> {
        // The common case (resolved long ago) takes no subscription.
        if *self.shared.resolved.borrow() {
            return Ok(());
        }
        let mut resolved = self.shared.resolved.subscribe();
        if *resolved.borrow() {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, resolved.wait_for(|r| *r)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(self.timeout("resolving the endpoints' names", timeout)),
        }
    }

    fn timeout(&self, what: &str, after: Duration) -> ServiceError {
        ServiceError::Timeout { what: format!("upstream '{}': {what}", self.name), after }
    }

    fn unavailable(&self, reason: String) -> ServiceError {
        ServiceError::Unavailable { upstream: self.name.clone(), reason }
    }

    /// Attempts until a response to keep or an error to return.
    async fn attempt_loop(
        &self,
        attempts: &mut Attempts,
        request: &Head,
        replay: &Replay,
    ) -> Result<(Arc<Endpoint>, http::Response<Incoming>), ServiceError> {
        loop {
            let set = self.shared.endpoints.load_full();
            let Some(endpoint) = pick(&set, attempts, Instant::now()) else {
                return Err(self.unavailable(no_endpoint_reason(&set)));
            };
            attempts.tried.push(endpoint.addr);
            let Some(body) = (if attempts.upgrade { Some(crate::http::empty()) } else { replay.attempt_body() }) else {
                return Err(ServiceError::Http("the request body could not be read again for a retry".into()));
            };
            let mut outbound = build_request(&endpoint, &attempts.config, request, body)?;
            // Tracing off: one atomic load, nothing else.
            let span = if tracer::enabled() {
                self.attempt_span(&endpoint, attempts, request, outbound.headers_mut())
            } else {
                None
            };
            let failure = match self.attempt(&set, &endpoint, attempts, outbound, span).await? {
                Ok(response) => return Ok((endpoint, response)),
                Err(failure) => failure,
            };
            // A retry that could not start before the deadline is not made:
            // the last failure is the answer.
            let wake = Instant::now() + self.backoff(attempts);
            if wake >= attempts.deadline || !self.may_retry(attempts, &failure, replay) {
                return match failure {
                    Failure::Status(response) => Ok((endpoint, response)),
                    other => Err(self.failure_error(&endpoint, other)),
                };
            }
            drop(failure);
            tokio::time::sleep_until(wake).await;
        }
    }

    /// The client span of the attempt about to be sent to `endpoint` (the
    /// last one tried), injected into its `headers`; `None`: tracing is off.
    fn attempt_span(
        &self,
        endpoint: &Endpoint,
        attempts: &Attempts,
        request: &Head,
        headers: &mut http::HeaderMap,
    ) -> Option<ClientSpan> {
        let span = trace::client_span(|| format!("{} {}", request.method, self.name))?;
        span.inject(headers);
        span.set(|| {
            vec![
                KeyValue::new("http.request.method", request.method.as_str().to_owned()),
                KeyValue::new("covet.upstream.name", self.name.clone()),
                KeyValue::new("covet.upstream.endpoint", endpoint.addr_text.to_string()),
                KeyValue::new("server.address", endpoint.host.clone()),
                KeyValue::new("server.port", i64::from(endpoint.addr.port())),
                KeyValue::new("http.request.resend_count", attempts.tried.len() as i64 - 1),
            ]
        });
        Some(span)
    }

    /// One attempt to `endpoint`: the response to keep, or why it failed.
    /// Its client span (if any) ends with the outcome.
    async fn attempt(
        &self,
        set: &EndpointSet,
        endpoint: &Arc<Endpoint>,
        attempts: &Attempts,
        outbound: http::Request<crate::http::RequestBody>,
        span: Option<ClientSpan>,
    ) -> Result<Result<http::Response<Incoming>, Failure>, ServiceError> {
        let started = Instant::now();
        let try_deadline = attempts.per_try.map_or(attempts.deadline, |t| attempts.deadline.min(started + t));
        endpoint.requests.fetch_add(1, Ordering::Relaxed);
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = tokio::time::timeout_at(try_deadline, endpoint.client.send(outbound)).await;
        endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        endpoint.latency.observe(now - started);
        let (outcome, result) = match sent {
            Ok(Ok(response)) => classify_status(&attempts.config, response),
            Ok(Err(error @ (SendError::Connect(_) | SendError::Tls(_)))) => {
                (Outcome::ConnectFailure, Err(Failure::Connect(error)))
            }
            Ok(Err(SendError::Reset(m))) => (Outcome::Gateway { status: false }, Err(Failure::Reset(m))),
            Ok(Err(SendError::Protocol(m))) => (Outcome::Gateway { status: false }, Err(Failure::Protocol(m))),
            Err(_) => (Outcome::Gateway { status: false }, Err(Failure::PerTryTimeout(try_deadline - started))),
        };
        if let Some(span) = span {
            end_attempt_span(span, &result);
        }
        if outcome != Outcome::Success {
            endpoint.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(outlier) = &attempts.config.outlier {
            health::record(&set.endpoints, endpoint, outcome, outlier, now);
        }
        if matches!(result, Err(Failure::PerTryTimeout(_))) && now >= attempts.deadline {
            return Err(self.timeout("no response head", attempts.timeout));
        }
        Ok(result)
    }

    /// Whether the failed attempt may be retried (consumes budget when yes).
    fn may_retry(&self, attempts: &Attempts, failure: &Failure, replay: &Replay) -> bool {
        let retries = &attempts.config.retries;
        let (kind_enabled, method_ok) = match failure {
            Failure::Connect(_) => (retries.on_connect_failure, true),
            Failure::Reset(_) => (retries.on_reset, attempts.retry_method),
            Failure::PerTryTimeout(_) => (true, attempts.retry_method),
            Failure::Protocol(_) => (false, false),
            Failure::Status(r) => (retries.on_statuses.contains(&r.status().as_u16()), attempts.retry_method),
        };
        let retries_left = (attempts.tried.len() as u32) <= attempts.max_retries;
        kind_enabled && method_ok && retries_left && replay.replayable() && self.budget.try_retry()
    }

    /// The wait before the next retry: `backoff × 2^(n-1)` capped at 10 ×
    /// `backoff`, jittered down to half of it.
    fn backoff(&self, attempts: &Attempts) -> Duration {
        let base = attempts.config.retries.backoff;
        let retry = attempts.tried.len().max(1) as u32;
        let exp = base.saturating_mul(1 << (retry - 1).min(16)).min(base.saturating_mul(10));
        let half = exp / 2;
        half + Duration::from_nanos(random_u64() % (half.as_nanos() as u64 + 1))
    }

    /// The error a failed last attempt ends the request with.
    fn failure_error(&self, endpoint: &Endpoint, failure: Failure) -> ServiceError {
        match failure {
            Failure::Connect(SendError::Tls(m)) => ServiceError::Tls(format!("{}: {m}", endpoint.addr)),
            Failure::Connect(e) => self.unavailable(format!("{}: {}", endpoint.addr, e.message())),
            Failure::Reset(m) | Failure::Protocol(m) => {
                ServiceError::Http(format!("upstream '{}' ({}): {m}", self.name, endpoint.addr))
            }
            Failure::PerTryTimeout(after) => self.timeout(&format!("no response head from {}", endpoint.addr), after),
            Failure::Status(_) => unreachable!("a status is returned as a response"),
        }
    }

    /// The kept response as an [`UpstreamResponse`]: a tunnel for a 101 to an
    /// upgrade, a sticky cookie when one is due.
    fn finish(
        &self,
        attempts: &Attempts,
        endpoint: Arc<Endpoint>,
        response: http::Response<Incoming>,
        tunnel_bytes: Option<crate::http::RequestBody>,
        permit: BreakerPermit,
    ) -> Result<UpstreamResponse, ServiceError> {
        let response = if attempts.upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS {
            tunnel(response, tunnel_bytes)
        } else {
            let idle = attempts.config.body_idle_timeout;
            let target = endpoint.target.clone();
            response.map(|body| ResponseBody::new(body, idle, target, endpoint.body_errors.clone()))
        };
        // The request stays in flight (endpoint and breaker) until its body ends.
        let guard = InFlight::new(endpoint.clone(), permit);
        let mut response = response.map(|body| body.hold(Box::new(guard)));
        if let Some(sticky) = &attempts.config.sticky
            && attempts.sticky_id.as_deref() != Some(endpoint.id.as_str())
        {
            let mut cookie = format!("{}={}; Path=/; HttpOnly", sticky.cookie, endpoint.id);
            if let Some(ttl) = sticky.ttl {
                cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
            }
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        let attempts = attempts.tried.len() as u32;
        Ok(UpstreamResponse { response, endpoint: endpoint.addr, endpoint_text: endpoint.addr_text.clone(), attempts })
    }
}

/// A response whose body is still streaming: counted in flight on its
/// endpoint, holding its circuit-breaker slot.
struct InFlight {
    endpoint: Arc<Endpoint>,
    _permit: BreakerPermit,
}

impl InFlight {
    fn new(endpoint: Arc<Endpoint>, permit: BreakerPermit) -> InFlight {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { endpoint, _permit: permit }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends an attempt's client span: at its response head (with the status)
/// or with the kind of failure as `error.type`.
fn end_attempt_span(span: ClientSpan, result: &Result<http::Response<Incoming>, Failure>) {
    let (kind, text) = match result {
        Ok(response) | Err(Failure::Status(response)) => return span.status(response.status().as_u16()),
        Err(Failure::Connect(error @ SendError::Tls(_))) => ("tls", error.message()),
        Err(Failure::Connect(error)) => ("connect", error.message()),
        Err(Failure::Reset(m)) => ("reset", m.as_str()),
        Err(Failure::Protocol(m)) => ("protocol", m.as_str()),
        Err(Failure::PerTryTimeout(_)) => ("timeout", "no response head within the attempt's deadline"),
    };
    span.fail(kind, || text.to_owned());
}

/// The outcome of a response head and whether it is kept.
fn classify_status(
    config: &UpstreamConfig,
    response: http::Response<Incoming>,
) -> (Outcome, Result<http::Response<Incoming>, Failure>) {
    let status = response.status().as_u16();
    let outcome = match status {
        502..=504 => Outcome::Gateway { status: true },
        500..=599 => Outcome::ServerError,
        _ => Outcome::Success,
    };
    if config.retries.on_statuses.contains(&status) {
        (outcome, Err(Failure::Status(response)))
    } else {
        (outcome, Ok(response))
    }
}

/// GET HEAD OPTIONS PUT DELETE TRACE.
fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// The outbound request of one attempt to `endpoint`.
fn build_request(
    endpoint: &Endpoint,
    config: &UpstreamConfig,
    request: &Head,
    body: crate::http::RequestBody,
) -> Result<http::Request<crate::http::RequestBody>, ServiceError> {
    let uri = endpoint.client.uri(&request.path_and_query)?;
    let mut outbound = http::Request::new(body);
    *outbound.method_mut() = request.method.clone();
    *outbound.uri_mut() = uri;
    *outbound.headers_mut() = request.headers.clone();
    if !outbound.headers().contains_key(HOST) {
        let host = HeaderValue::from_str(&endpoint.host_header(config.tls.is_some()))
            .map_err(|e| ServiceError::Http(format!("host header for {}: {e}", endpoint.addr)))?;
        outbound.headers_mut().insert(HOST, host);
    }
    Ok(outbound)
}

/// The usable endpoint for the next attempt: the sticky one when its cookie
/// names a usable endpoint, else the balancer's pick among usable endpoints
/// not tried yet (tried ones when no other is left). In panic mode (fewer
/// than `panic_threshold_percent` healthy) every endpoint is usable.
fn pick(set: &EndpointSet, attempts: &Attempts, now: Instant) -> Option<Arc<Endpoint>> {
    let endpoints = &set.endpoints;
    let panic = panic_mode(endpoints, attempts.config.panic_threshold_percent, now);
    let usable = |e: &Endpoint, avoid_tried: bool| {
        (panic || e.health.is_healthy(now)) && !(avoid_tried && attempts.tried.contains(&e.addr))
    };
    if let Some(id) = &attempts.sticky_id
        && let Some(endpoint) = endpoints.iter().find(|e| e.id == *id && usable(e, true))
    {
        return Some(endpoint.clone());
    }
    for avoid_tried in [true, false] {
        let view = |i: usize| {
            let e = &endpoints[i];
            usable(e, avoid_tried).then(|| e.in_flight.load(Ordering::Relaxed))
        };
        if let Some(i) = set.balancer.pick(attempts.key, &view) {
            return Some(endpoints[i].clone());
        }
        if attempts.tried.is_empty() {
            break;
        }
    }
    None
}

/// Whether fewer than `threshold` percent of `endpoints` are healthy.
pub(crate) fn panic_mode(endpoints: &[Arc<Endpoint>], threshold: u8, now: Instant) -> bool {
    let healthy = endpoints.iter().filter(|e| e.health.is_healthy(now)).count();
    !endpoints.is_empty() && healthy * 100 < usize::from(threshold) * endpoints.len()
}

fn no_endpoint_reason(set: &EndpointSet) -> String {
    if set.endpoints.is_empty() {
        return "no address resolved for its endpoints".to_owned();
    }
    format!("all {} endpoints are ejected or failing health checks", set.endpoints.len())
}

/// The hash of the request's key under a hashing policy (`None`: no key, or not hashing).
fn hash_key(config: &UpstreamConfig, request: &Head, client_ip: Option<std::net::IpAddr>) -> Option<u64> {
    let key = match &config.balance {
        Balance::RingHash { key, .. } | Balance::Maglev { key, .. } => key,
        _ => return None,
    };
    match key {
        HashKey::Header(name) => request.headers.get(name.as_str()).map(|v| hash64(v.as_bytes(), 0)),
        HashKey::Cookie(name) => cookie(&request.headers, name).map(|v| hash64(v.as_bytes(), 0)),
        HashKey::ClientIp => client_ip.map(|ip| hash64(ip.to_string().as_bytes(), 0)),
        HashKey::Path => {
            let path = request.path_and_query.split('?').next().unwrap_or_default();
            Some(hash64(path.as_bytes(), 0))
        }
    }
}

/// The value of cookie `name` in the request's `cookie` headers.
pub(crate) fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"').to_owned())
    })
}
