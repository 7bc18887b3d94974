//! Endpoint health: passive outlier detection on every attempt's outcome and
//! active HTTP checks.
//!
//! Passive: consecutive 5xx, gateway errors (502/503/504, reset, timeout) or
//! connect failures past their thresholds eject an endpoint for
//! `base × n` (n = ejections in a row, capped at `max_ejection`). Recovery is
//! automatic: once the time passes the endpoint is picked again, and each
//! healthy `base_ejection` period after that lowers n by one. No more than
//! `max_ejection_percent` of the endpoints are ejected at once (one may always be).
//!
//! Active: a task per upstream sends `GET path` to every endpoint each
//! `interval`; `unhealthy_threshold` failures in a row mark it failing,
//! `healthy_threshold` passes in a row mark it passing again. A new endpoint
//! is healthy until checks say otherwise.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::time::Instant;

use super::config::{ActiveHealth, Outlier};
use super::endpoints::Endpoint;

/// What one attempt did, as outlier detection counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response below 500.
    Success,
    /// A 5xx other than 502/503/504.
    ServerError,
    /// 502, 503 or 504 (`status: true`), or a reset / timeout (`status: false`).
    Gateway {
        /// Whether it was a status (it also counts as a 5xx).
        status: bool,
    },
    /// The connection (TCP or TLS) could not be made.
    ConnectFailure,
}

/// Counters behind the lock.
#[derive(Debug, Default)]
struct State {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_connect: u32,
    /// Ejections in a row (the multiplier of the next one).
    level: u32,
    /// When `level` may next decrease.
    level_since: Option<Instant>,
    passes: u32,
    fails: u32,
}

/// One endpoint's health.
#[derive(Debug)]
pub(crate) struct Health {
    born: Instant,
    /// Milliseconds after `born` until which the endpoint is ejected (0: never ejected).
    ejected_until_ms: AtomicU64,
    /// Active verdict: 0 unknown, 1 passing, 2 failing.
    active: AtomicU8,
    ejections: AtomicU64,
    state: Mutex<State>,
}

impl Health {
    pub(crate) fn new(now: Instant) -> Health {
        Health {
            born: now,
            ejected_until_ms: AtomicU64::new(0),
            active: AtomicU8::new(0),
            ejections: AtomicU64::new(0),
            state: Mutex::default(),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.born).as_millis() as u64
    }

    /// How long the current ejection still lasts (zero when not ejected).
    pub(crate) fn ejected_for(&self, now: Instant) -> Duration {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        Duration::from_millis(until.saturating_sub(self.millis(now)))
    }

    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        !self.ejected_for(now).is_zero()
    }

    /// The active checks' verdict (`None`: not decided yet).
    pub(crate) fn active_verdict(&self) -> Option<bool> {
        match self.active.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// Neither ejected nor failing active checks.
    pub(crate) fn is_healthy(&self, now: Instant) -> bool {
        self.active_verdict() != Some(false) && !self.is_ejected(now)
    }

    /// Times ejected so far.
    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies an active check's result.
    pub(crate) fn record_check(&self, passed: bool, config: &ActiveHealth) {
        let mut state = self.lock();
        let verdict = self.active_verdict();
        if passed {
            state.passes += 1;
            state.fails = 0;
            if verdict.is_none() || (verdict == Some(false) && state.passes >= config.healthy_threshold.max(1)) {
                self.active.store(1, Ordering::Relaxed);
            }
        } else {
            state.fails += 1;
            state.passes = 0;
            if verdict != Some(false) && state.fails >= config.unhealthy_threshold.max(1) {
                self.active.store(2, Ordering::Relaxed);
            }
        }
    }
}

/// Counts `outcome` of an attempt to `endpoint` (one of `all`) and ejects it
/// when a threshold is reached and the ejection share allows.
pub(crate) fn record(all: &[Arc<Endpoint>], endpoint: &Endpoint, outcome: Outcome, outlier: &Outlier, now: Instant) {
    let health = &endpoint.health;
    let mut state = health.lock();
    match outcome {
        Outcome::Success => {
            state.consecutive_5xx = 0;
            state.consecutive_gateway = 0;
            state.consecutive_connect = 0;
            let healthy_since = state.level_since.is_some_and(|since| now >= since + outlier.base_ejection);
            if state.level > 0 && healthy_since {
                state.level -= 1;
                state.level_since = Some(now);
            }
            return;
        }
        Outcome::ServerError => {
            state.consecutive_5xx += 1;
            state.consecutive_gateway = 0;
            state.consecutive_connect = 0;
        }
        Outcome::Gateway { status } => {
            if status {
                state.consecutive_5xx += 1;
            }
            state.consecutive_gateway += 1;
            state.consecutive_connect = 0;
        }
        Outcome::ConnectFailure => {
            state.consecutive_connect += 1;
        }
    }
    let over = |count: u32, threshold: u32| threshold > 0 && count >= threshold;
    let tripped = over(state.consecutive_5xx, outlier.consecutive_5xx)
        || over(state.consecutive_gateway, outlier.consecutive_gateway_errors)
        || over(state.consecutive_connect, outlier.consecutive_connect_failures);
    if !tripped || health.is_ejected(now) || !may_eject(all, outlier, now) {
        return;
    }
    state.level += 1;
    let time = outlier.base_ejection.saturating_mul(state.level).min(outlier.max_ejection);
    let until = now + time;
    state.level_since = Some(until);
    state.consecutive_5xx = 0;
    state.consecutive_gateway = 0;
    state.consecutive_connect = 0;
    health.ejected_until_ms.store(health.millis(until).max(1), Ordering::Relaxed);
    health.ejections.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(endpoint = %endpoint.addr, ejected_for = ?time, ejections_in_a_row = state.level, "upstream endpoint ejected");
}

/// Whether one more endpoint of `all` may be ejected now.
fn may_eject(all: &[Arc<Endpoint>], outlier: &Outlier, now: Instant) -> bool {
    let ejected = all.iter().filter(|e| e.health.is_ejected(now)).count();
    let allowed = (all.len() * usize::from(outlier.max_ejection_percent.min(100)) / 100).max(1);
    ejected < allowed
}

/// Whether `status` is one of `ranges`.
fn expected(status: u16, ranges: &[(u16, u16)]) -> bool {
    if ranges.is_empty() {
        return (200..=399).contains(&status);
    }
    ranges.iter().any(|(low, high)| (*low..=*high).contains(&status))
}

/// One active check of `endpoint`: whether it answered an expected status in time.
pub(crate) async fn check(endpoint: &Endpoint, config: &ActiveHealth, tls: bool) -> Result<(), String> {
    let uri = endpoint.client.uri(&config.path).map_err(|e| e.to_string())?;
    let host = config.host.clone().unwrap_or_else(|| endpoint.host_header(tls));
    let request = http::Request::get(uri)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "covet-health-check")
        .body(crate::http::empty())
        .map_err(|e| e.to_string())?;
    let probe = async {
        let response = endpoint.client.send(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Read the body so the connection goes back to the pool.
        let _ = response.into_body().collect().await;
        if expected(status, &config.expected_statuses) { Ok(()) } else { Err(format!("status {status}")) }
    };
    match tokio::time::timeout(config.timeout, probe).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
    }
}

/// The active-check task of an upstream: checks every endpoint each interval.
pub(crate) async fn active_task(shared: Arc<super::Shared>) {
    loop {
        let config = shared.config.load_full();
        let Some(active) = config.active_health.clone() else { return };
        let set = shared.endpoints.load_full();
        let tls = config.tls.is_some();
        let name = config.name.as_str();
        let checks = set.endpoints.iter().map(|endpoint| {
            let active = &active;
            async move {
                let result = check(endpoint, active, tls).await;
                let before = endpoint.health.active_verdict();
                endpoint.health.record_check(result.is_ok(), active);
                let after = endpoint.health.active_verdict();
                if before != after && after.is_some() {
                    match &result {
                        Ok(()) => tracing::info!(upstream = name, endpoint = %endpoint.addr, "health check passing"),
                        Err(e) => {
                            tracing::warn!(upstream = name, endpoint = %endpoint.addr, error = %e, "health check failing")
                        }
                    }
                }
            }
        });
        futures_util::future::join_all(checks).await;
        tokio::time::sleep(active.interval.max(Duration::from_millis(10))).await;
    }
}
