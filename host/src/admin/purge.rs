//! Cache purges: the one writer of the purge log that the `cache` plugin
//! follows, used by `POST /v1/cache/purge` ([`super::http`]), `PurgeCache`
//! ([`super::grpc`]) and so `covet cache purge` (which calls the former).
//!
//! A purge names exactly one of `key` (a primary cache key), `prefix` (a
//! path prefix, starting with `/`, optionally on one `host`) or `tag` (a
//! surrogate key), in shared-state namespace `namespace` (default `cache`).
//! It is written to the host's shared state (`services.state`; with Redis,
//! every host sharing it sees the purge):
//!
//! 1. `seq = incr(purge.seq, 1)`;
//! 2. a compare-and-set loop (at most [`TRIES`]) on `purge.log`, a JSON array
//!    of bans `{"seq","kind","value","host","at_ms"}` kept in `seq` order:
//!    the new ban (`at_ms` now) goes in, bans older than 24 h go out, and at
//!    most the [`KEEP`] newest stay.
//!
//! The answer is `{"seq","namespace","kind","value","backend"}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covet_services::state::{SharedState, is_valid_namespace};
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// The namespace when the request names none (the plugin's default).
pub const DEFAULT_NAMESPACE: &str = "cache";
/// The counter key.
pub const SEQ_KEY: &str = "purge.seq";
/// The log key.
pub const LOG_KEY: &str = "purge.log";
/// Compare-and-set attempts before giving up (other writers kept winning).
pub const TRIES: usize = 20;
/// Most bans the log keeps (the newest).
pub const KEEP: usize = 10_000;
/// Bans older than this leave the log.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// A purge request, as the JSON body and the gRPC message carry it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// A primary cache key.
    pub key: Option<String>,
    /// A path prefix (starts with `/`).
    pub prefix: Option<String>,
    /// With `prefix`: only this host.
    pub host: Option<String>,
    /// A surrogate key.
    pub tag: Option<String>,
    /// The shared-state namespace (default `cache`).
    pub namespace: Option<String>,
}

/// One ban, as the purge log keeps it (the plugin's `Ban`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// `purge.seq` when it was made.
    pub seq: u64,
    /// `key`, `prefix` or `tag`.
    pub kind: String,
    /// The key, path prefix or tag.
    pub value: String,
    /// For a prefix: only this host (lower case, no port).
    #[serde(default)]
    pub host: Option<String>,
    /// When it was made, Unix milliseconds.
    pub at_ms: u64,
}

/// A written purge (the 202 answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Its sequence number.
    pub seq: u64,
    /// The namespace it was written to.
    pub namespace: String,
    /// `key`, `prefix` or `tag`.
    pub kind: &'static str,
    /// What it names.
    pub value: String,
    /// The shared-state backend: `memory` or `redis`.
    pub backend: &'static str,
}

/// What a valid request asks for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    namespace: String,
    kind: &'static str,
    value: String,
    host: Option<String>,
}

/// Checks `request`: exactly one of key/prefix/tag, non-empty; a prefix
/// starting with `/`; `host` only with `prefix`; a valid namespace.
fn target(request: PurgeRequest) -> Result<Target, ApiError> {
    let PurgeRequest { key, prefix, host, tag, namespace } = request;
    let named: Vec<(&'static str, String)> =
        [("key", key), ("prefix", prefix), ("tag", tag)].into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
    let [(kind, value)] = <[_; 1]>::try_from(named).map_err(|named| {
        let given: Vec<&str> = named.iter().map(|(k, _)| *k).collect();
        let given = if given.is_empty() { "none".to_owned() } else { given.join(", ") };
        ApiError::bad_request(format!("a purge names exactly one of `key`, `prefix` or `tag` (given: {given})"))
    })?;
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("`{kind}` is empty")));
    }
    if kind == "prefix" && !value.starts_with('/') {
        return Err(ApiError::bad_request(format!("`prefix` is a path prefix and starts with `/` (got {value:?})")));
    }
    if host.is_some() && kind != "prefix" {
        return Err(ApiError::bad_request("`host` goes with `prefix` only"));
    }
    let host = host.map(|h| normalize_host(&h)).transpose()?;
    let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    if !is_valid_namespace(&namespace) {
        return Err(ApiError::bad_request(format!(
            "invalid namespace {namespace:?}: 1-64 of a-z A-Z 0-9 _ - ."
        )));
    }
    Ok(Target { namespace, kind, value, host })
}

/// A host as cache keys have it: lower case, without a port.
fn normalize_host(host: &str) -> Result<String, ApiError> {
    let host = host.trim().to_ascii_lowercase();
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(addr, _)| format!("[{addr}]")),
        None => host.split(':').next().map(str::to_owned),
    };
    match bare {
        Some(bare) if !bare.is_empty() && !bare.contains(['/', ' ']) => Ok(bare),
        _ => Err(ApiError::bad_request(format!("`host` {host:?} is not a host name"))),
    }
}

/// Validates `request` and appends its ban to the purge log in `state`.
pub async fn purge(state: &dyn SharedState, request: PurgeRequest) -> Result<Purged, ApiError> {
    let target = target(request)?;
    let ns = target.namespace.as_str();
    let seq = state.incr(ns, SEQ_KEY, 1, None).await.map_err(|e| unavailable("increment", &e))?;
    let ban = Ban {
        seq: u64::try_from(seq).unwrap_or_default(),
        kind: target.kind.to_owned(),
        value: target.value.clone(),
        host: target.host.clone(),
        at_ms: now_ms(),
    };
    append(state, ns, &ban).await?;
    tracing::info!(namespace = ns, seq = ban.seq, kind = target.kind, value = %target.value, "cache purge written");
    Ok(Purged { seq: ban.seq, namespace: target.namespace, kind: target.kind, value: target.value, backend: state.backend() })
}

/// The compare-and-set loop that puts `ban` into the log.
async fn append(state: &dyn SharedState, ns: &str, ban: &Ban) -> Result<(), ApiError> {
    for _ in 0..TRIES {
        let current = state.get(ns, LOG_KEY).await.map_err(|e| unavailable("read", &e))?;
        let mut bans: Vec<Ban> = match &current {
            None => Vec::new(),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
                ApiError::internal(format!("the purge log {ns}:{LOG_KEY} is not a JSON array of bans: {e}"))
            })?,
        };
        insert(&mut bans, ban.clone(), ban.at_ms);
        let next = serde_json::to_vec(&bans).map_err(|e| ApiError::internal(format!("cannot encode the purge log: {e}")))?;
        let swapped = state
            .compare_and_set(ns, LOG_KEY, current.as_deref(), Some(next), None)
            .await
            .map_err(|e| unavailable("write", &e))?;
        if swapped {
            return Ok(());
        }
    }
    Err(ApiError::unavailable(format!(
        "the purge log {ns}:{LOG_KEY} changed under every one of {TRIES} attempts (other purges at the same time); purge.seq moved on, try again"
    )))
}

/// Puts `ban` in `seq` order, drops bans older than [`MAX_AGE`] at `now_ms`
/// and keeps the [`KEEP`] newest.
fn insert(bans: &mut Vec<Ban>, ban: Ban, now_ms: u64) {
    let oldest = now_ms.saturating_sub(MAX_AGE.as_millis() as u64);
    bans.retain(|b| b.at_ms >= oldest && b.seq != ban.seq);
    let at = bans.partition_point(|b| b.seq < ban.seq);
    bans.insert(at, ban);
    if bans.len() > KEEP {
        bans.drain(..bans.len() - KEEP);
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn unavailable(what: &str, error: &covet_services::ServiceError) -> ApiError {
    ApiError::unavailable(format!("cannot {what} the purge log in the shared state: {error}"))
}

#[cfg(test)]
mod tests {
    use covet_services::state::MemoryState;

    use super::*;

    fn request(json: &str) -> PurgeRequest {
        serde_json::from_str(json).unwrap()
    }

    fn refused(json: &str) -> String {
        let error = target(request(json)).unwrap_err();
        assert_eq!((error.status.as_u16(), error.code), (400, "bad_request"), "{json}");
        error.message
    }

    #[test]
    fn exactly_one_of_key_prefix_or_tag() {
        assert!(refused("{}").contains("exactly one of `key`, `prefix` or `tag` (given: none)"));
        assert!(refused(r#"{"key": "a", "tag": "t"}"#).contains("(given: key, tag)"));
        assert!(refused(r#"{"prefix": "static/"}"#).contains("starts with `/`"));
        assert!(refused(r#"{"tag": ""}"#).contains("`tag` is empty"));
        assert!(refused(r#"{"tag": "t", "host": "a.example"}"#).contains("`host` goes with `prefix` only"));
        assert!(refused(r#"{"tag": "t", "namespace": "no:colons"}"#).contains("invalid namespace \"no:colons\""));
        assert!(serde_json::from_str::<PurgeRequest>(r#"{"tags": "t"}"#).is_err(), "unknown fields are refused");
    }

    #[test]
    fn a_prefix_host_is_lower_case_without_port() {
        let t = target(request(r#"{"prefix": "/static/", "host": "API.Example.com:8443"}"#)).unwrap();
        assert_eq!((t.kind, t.value.as_str(), t.host.as_deref(), t.namespace.as_str()), ("prefix", "/static/", Some("api.example.com"), "cache"));
        assert_eq!(normalize_host("[::1]:8080").unwrap(), "[::1]");
    }

    fn ban(seq: u64, at_ms: u64) -> Ban {
        Ban { seq, kind: "tag".into(), value: format!("t{seq}"), host: None, at_ms }
    }

    #[test]
    fn the_log_stays_in_seq_order_without_old_bans_and_bounded() {
        let now = MAX_AGE.as_millis() as u64 + 1_000;
        let mut bans = vec![ban(1, 10), ban(2, now - 5), ban(4, now - 1)];
        insert(&mut bans, ban(3, now), now);
        assert_eq!(bans.iter().map(|b| b.seq).collect::<Vec<_>>(), [2, 3, 4], "a day-old ban goes, a late writer's lands in order");
        let mut full: Vec<Ban> = (1..=KEEP as u64).map(|s| ban(s, now)).collect();
        insert(&mut full, ban(KEEP as u64 + 1, now), now);
        assert_eq!((full.len(), full[0].seq, full[KEEP - 1].seq), (KEEP, 2, KEEP as u64 + 1));
    }

    #[tokio::test]
    async fn purges_append_to_the_log_with_increasing_seq() {
        let state = MemoryState::new_with_sweeper();
        let first = purge(&*state, request(r#"{"tag": "product-7"}"#)).await.unwrap();
        let second = purge(&*state, request(r#"{"prefix": "/static/", "host": "a.example"}"#)).await.unwrap();
        assert_eq!((first.seq, second.seq, first.kind, second.backend), (1, 2, "tag", "memory"));
        let log = state.get("cache", LOG_KEY).await.unwrap().unwrap();
        let bans: Vec<Ban> = serde_json::from_slice(&log).unwrap();
        assert_eq!(bans.len(), 2);
        assert_eq!((bans[0].kind.as_str(), bans[0].value.as_str(), bans[0].host.as_deref()), ("tag", "product-7", None));
        assert_eq!((bans[1].kind.as_str(), bans[1].host.as_deref()), ("prefix", Some("a.example")));
        assert_eq!(state.get("cache", SEQ_KEY).await.unwrap().as_deref(), Some(&b"2"[..]));
        let other = purge(&*state, request(r#"{"key": "a.example/x", "namespace": "edge"}"#)).await.unwrap();
        assert_eq!((other.seq, other.namespace.as_str()), (1, "edge"), "each namespace has its own log");
    }
}
