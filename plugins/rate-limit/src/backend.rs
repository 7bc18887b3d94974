//! `backend:` and `shared:`: where the buckets live. `memory` (the default)
//! keeps them in this process with governor; `shared` keeps them in the
//! host's shared state, so everything sharing that state shares the limit:
//! the processes of one host (`processes: N`) or a fleet using one Redis.
//! `redis` is the old name of `shared`, and `redis:` of the `shared:` block;
//! both are still accepted.

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
    /// In the host's shared state, whichever its backend (`redis` is the old name).
    #[serde(alias = "redis")]
    Shared,
}

/// `shared.on_error:` what a request gets when the shared state does not answer in time or fails.
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

/// The `shared:` (or `redis:`) block exactly as written (only with `backend: shared`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SharedSettings {
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    timeout: Duration,
    #[serde(default)]
    on_error: OnError,
}

impl Default for SharedSettings {
    fn default() -> Self {
        SharedSettings { namespace: default_namespace(), timeout: default_timeout(), on_error: OnError::default() }
    }
}

fn default_namespace() -> String {
    "ratelimit".into()
}

/// 30 ms: a Redis round trip on a LAN, or a round trip to the supervisor
/// of a multi-process host, is well under a millisecond, so this only fires
/// when the store is down or overloaded, and bounds what a request can lose
/// to it.
fn default_timeout() -> Duration {
    Duration::from_millis(30)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e} (e.g. `30ms`, `1s`)")))
}

/// The validated shared-backend settings the plugin runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedPolicy {
    /// The shared state namespace the buckets live in (granted in the manifest).
    pub namespace: String,
    /// The longest a request waits for the shared state.
    pub timeout: Duration,
    /// What a request gets when the shared state fails or times out.
    pub on_error: OnError,
}

/// Checks `backend:` and `shared:` together; `rate_per_second` is the
/// configured rate, which buckets in whole microseconds can only express
/// up to 1 000 000/s.
pub(crate) fn validate(
    kind: BackendKind,
    shared: Option<SharedSettings>,
    rate_per_second: f64,
) -> Result<Option<SharedPolicy>, String> {
    let settings = match (kind, shared) {
        (BackendKind::Memory, None) => return Ok(None),
        (BackendKind::Memory, Some(_)) => {
            return Err("the `shared:` block needs `backend: shared` (the default backend is `memory`)".into());
        }
        (BackendKind::Shared, settings) => settings.unwrap_or_default(),
    };
    if settings.timeout.is_zero() || settings.timeout > Duration::from_secs(10) {
        return Err(format!(
            "invalid shared.timeout `{}`: it must be above 0 and at most 10s (e.g. `30ms`)",
            humantime::format_duration(settings.timeout)
        ));
    }
    if !is_namespace(&settings.namespace) {
        return Err(format!(
            "invalid shared.namespace `{}`: use 1-64 letters, digits, `_`, `-` or `.`",
            settings.namespace
        ));
    }
    if rate_per_second > MAX_RATE_PER_SECOND as f64 {
        return Err(format!(
            "with `backend: shared` the rate can be at most {MAX_RATE_PER_SECOND}/s (buckets count whole microseconds)"
        ));
    }
    Ok(Some(SharedPolicy { namespace: settings.namespace, timeout: settings.timeout, on_error: settings.on_error }))
}

/// The host's rule for state namespaces: 1-64 of `a-z A-Z 0-9 _ - .`.
fn is_namespace(ns: &str) -> bool {
    (1..=64).contains(&ns.len()) && ns.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
