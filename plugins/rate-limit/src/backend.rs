//! `backend:` and `redis:`: where the buckets live. `memory` (the default)
//! keeps them in this process with governor; `redis` keeps them in the
//! host's shared state, so every host using the same Redis shares the limit.

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer};

use crate::remote::MAX_RATE_PER_SECOND;

/// `backend:` where the buckets live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackendKind {
    /// In this process (governor); nothing to run, nothing shared.
    #[default]
    Memory,
    /// In the host's shared state, which must be Redis (`services.state.backend: redis`).
    Redis,
}

/// `redis.on_error:` what a request gets when Redis does not answer in time or fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnError {
    /// Fail open: let the request through, unlimited, without `RateLimit-*` headers.
    #[default]
    Allow,
    /// Fail closed: answer 503 `RATE_LIMIT_UNAVAILABLE` with `Retry-After: 1`.
    Deny,
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Allow => "allow",
            OnError::Deny => "deny",
        })
    }
}

/// The `redis:` block exactly as written (only with `backend: redis`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSettings {
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    timeout: Duration,
    #[serde(default)]
    on_error: OnError,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings { namespace: default_namespace(), timeout: default_timeout(), on_error: OnError::default() }
    }
}

fn default_namespace() -> String {
    "ratelimit".into()
}

/// 30 ms: a Redis round trip on a LAN is well under a millisecond, so this
/// only fires when Redis is down or overloaded, and bounds what a request
/// can lose to it.
fn default_timeout() -> Duration {
    Duration::from_millis(30)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e} (e.g. `30ms`, `1s`)")))
}

/// The validated Redis settings the plugin runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisPolicy {
    /// The shared state namespace the buckets live in (granted in the manifest).
    pub namespace: String,
    /// The longest a request waits for Redis.
    pub timeout: Duration,
    /// What a request gets when Redis fails or times out.
    pub on_error: OnError,
}

/// Checks `backend:` and `redis:` together; `rate_per_second` is the
/// configured rate, which the Redis script can only express up to 1 000 000/s.
pub(crate) fn validate(
    kind: BackendKind,
    redis: Option<RedisSettings>,
    rate_per_second: f64,
) -> Result<Option<RedisPolicy>, String> {
    let settings = match (kind, redis) {
        (BackendKind::Memory, None) => return Ok(None),
        (BackendKind::Memory, Some(_)) => {
            return Err("the `redis:` block needs `backend: redis` (the default backend is `memory`)".into());
        }
        (BackendKind::Redis, settings) => settings.unwrap_or_default(),
    };
    if settings.timeout.is_zero() || settings.timeout > Duration::from_secs(10) {
        return Err(format!(
            "invalid redis.timeout `{}`: it must be above 0 and at most 10s (e.g. `30ms`)",
            humantime::format_duration(settings.timeout)
        ));
    }
    if !is_namespace(&settings.namespace) {
        return Err(format!(
            "invalid redis.namespace `{}`: use 1-64 letters, digits, `_`, `-` or `.`",
            settings.namespace
        ));
    }
    if rate_per_second > MAX_RATE_PER_SECOND as f64 {
        return Err(format!(
            "with `backend: redis` the rate can be at most {MAX_RATE_PER_SECOND}/s (the script counts whole microseconds)"
        ));
    }
    Ok(Some(RedisPolicy { namespace: settings.namespace, timeout: settings.timeout, on_error: settings.on_error }))
}

/// The host's rule for state namespaces: 1-64 of `a-z A-Z 0-9 _ - .`.
fn is_namespace(ns: &str) -> bool {
    (1..=64).contains(&ns.len()) && ns.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
