//! Making one upstream call: the [`Caller`] sends a rendered [`Call`]
//! through the host's upstream or outbound HTTP service, reads the JSON
//! answer, and keeps it in shared state for `cache_ttl`. Identical calls of
//! one request share one future (see `exchange.rs`), so the cache and the
//! service see each call once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use covet_plugin_api::{
    BodyStream,
    host::{Host, ServiceError, ServiceErrorKind, State, Upstream},
};
use async_graphql::ErrorExtensions;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::plan::Target;

/// The largest answer read from a service.
const MAX_ANSWER: usize = 16 << 20;

/// One fully rendered call: the key of per-request deduplication and of the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Call {
    /// Upstream or URL.
    pub target: Target,
    /// The method.
    pub method: Arc<str>,
    /// Path and query (upstream) or absolute URL.
    pub path: String,
    /// Headers, in the plan's order.
    pub headers: Vec<(String, String)>,
    /// The body, when the plan has one.
    pub body: Option<String>,
}

/// A failed call, as a GraphQL error's message and `extensions`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// `extensions.code`: `UPSTREAM_ERROR`, `UPSTREAM_TIMEOUT`, `BAD_RESPONSE`.
    pub code: &'static str,
    /// The message.
    pub message: String,
    /// `extensions.status`: the service's HTTP status, when it answered.
    pub status: Option<u16>,
}

impl CallError {
    fn new(code: &'static str, message: String) -> CallError {
        CallError { code, message, status: None }
    }

    fn service(call: &Call, e: &ServiceError) -> CallError {
        let code = match e.kind {
            ServiceErrorKind::Timeout => "UPSTREAM_TIMEOUT",
            ServiceErrorKind::Denied => "UPSTREAM_DENIED",
            _ => "UPSTREAM_ERROR",
        };
        CallError::new(code, format!("{} {}: {}", call.method, call.describe(), e.message))
    }

    /// The GraphQL error.
    pub fn to_graphql(&self) -> async_graphql::Error {
        let (code, status) = (self.code, self.status);
        async_graphql::Error::new(self.message.clone()).extend_with(move |_, ext| {
            ext.set("code", code);
            if let Some(status) = status {
                ext.set("status", status);
            }
        })
    }
}

/// What a call yields: the parsed JSON, shared by every field that asked for it.
pub type Answer = Result<Arc<Value>, CallError>;

/// Sends calls for one plugin instance.
pub struct Caller {
    host: Host,
    upstreams: HashMap<String, Upstream>,
    cache: Option<State>,
}

impl Call {
    fn describe(&self) -> String {
        match &self.target {
            Target::Upstream(name) => format!("upstream '{name}' {}", self.path),
            Target::Url => self.path.clone(),
        }
    }

    /// The cache key: a SHA-256 of the whole call (headers may hold credentials).
    fn cache_key(&self) -> String {
        let mut h = Sha256::new();
        let target = match &self.target {
            Target::Upstream(name) => name,
            Target::Url => "",
        };
        for part in [target, &self.method, &self.path] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (name, value) in &self.headers {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(value.as_bytes());
            h.update([0]);
        }
        if let Some(body) = &self.body {
            h.update(body.as_bytes());
        }
        let digest = h.finalize();
        let mut key = String::with_capacity(3 + 64);
        key.push_str("v1:");
        for b in digest {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }
}

impl Caller {
    /// A caller for `upstreams`; `cache` is the namespace of cached answers (when any field caches).
    pub fn new(host: Host, upstreams: impl IntoIterator<Item = String>, cache: Option<&str>) -> Caller {
        let upstreams = upstreams.into_iter().map(|name| (name.clone(), host.upstream(&name))).collect();
        let cache = cache.map(|ns| host.state(ns));
        Caller { host, upstreams, cache }
    }

    /// Makes `call` (or reads it from the cache).
    pub async fn run(self: Arc<Self>, call: Arc<Call>, timeout: Duration, ttl: Option<Duration>) -> Answer {
        let cache = ttl.and(self.cache.as_ref()).map(|state| (state, call.cache_key()));
        if let Some((state, key)) = &cache
            && let Ok(Some(bytes)) = state.get(key).await
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
        {
            return Ok(Arc::new(value));
        }
        let bytes = self.send(&call, timeout).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            CallError::new("BAD_RESPONSE", format!("{} {}: the answer is not JSON: {e}", call.method, call.describe()))
        })?;
        if let (Some((state, key)), Some(ttl)) = (&cache, ttl) {
            // A cache that cannot be written only costs a later call.
            let _ = state.set(key, bytes, Some(ttl)).await;
        }
        Ok(Arc::new(value))
    }

    /// Sends `call` and reads its whole answer; a non-2xx status is an error.
    async fn send(&self, call: &Call, timeout: Duration) -> Result<Vec<u8>, CallError> {
        let (status, body) = match &call.target {
            Target::Upstream(name) => {
                let Some(upstream) = self.upstreams.get(&**name) else {
                    return Err(CallError::new("UPSTREAM_ERROR", format!("upstream '{name}' is not configured")));
                };
                let mut b = upstream.request(&call.method, &call.path).timeout(timeout);
                for (name, value) in request_headers(call) {
                    b = b.header(name, value.as_bytes());
                }
                if let Some(body) = &call.body {
                    b = b.body_stream(BodyStream::from_bytes(body.clone().into_bytes()));
                }
                let answer = b.send().await.map_err(|e| CallError::service(call, &e))?;
                let (status, _, body) = answer.into_parts();
                let bytes = body.collect(MAX_ANSWER).await.map_err(|e| {
                    CallError::new("UPSTREAM_ERROR", format!("{} {}: reading the answer: {e}", call.method, call.describe()))
                })?;
                (status, bytes)
            }
            Target::Url => {
                let mut b = self.host.http().request(&call.method, &call.path).timeout(timeout);
                for (name, value) in request_headers(call) {
                    b = b.header(name, value.as_bytes());
                }
                if let Some(body) = &call.body {
                    b = b.body(body.clone().into_bytes());
                }
                let answer = b.send().await.map_err(|e| CallError::service(call, &e))?;
                let status = answer.status();
                (status, answer.bytes().await.map_err(|e| CallError::service(call, &e))?)
            }
        };
        if !(200..300).contains(&status) {
            let mut e = CallError::new("UPSTREAM_ERROR", format!("{} {} answered {status}", call.method, call.describe()));
            e.status = Some(status);
            return Err(e);
        }
        Ok(body)
    }
}

/// The call's headers plus `accept` and, with a body, `content-type` (unless given).
fn request_headers(call: &Call) -> impl Iterator<Item = (&str, &str)> {
    let has = |n: &str| call.headers.iter().any(|(name, _)| name == n);
    let accept = (!has("accept")).then_some(("accept", "application/json"));
    let content_type = (call.body.is_some() && !has("content-type")).then_some(("content-type", "application/json"));
    call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(accept).chain(content_type)
}
