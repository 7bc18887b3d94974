//! Persisted queries: Apollo's automatic persisted queries (APQ) and an
//! allowlist of operations.
//!
//! **APQ** (`extensions.persistedQuery = {version: 1, sha256Hash}`): a
//! request with the hash and no query runs the query registered under the
//! hash, or gets `PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`),
//! on which the client sends the hash with the query; that registers it
//! (once the query has passed every check). A hash that is not the query's
//! SHA-256 is refused (`PROVIDED_SHA_DOESNT_MATCH`). Registered queries live
//! `ttl` (default 24 h) in this process (at most `max_entries`, oldest
//! dropped first) and, with `state: <namespace>`, in the host's shared
//! state too, so a fleet on one Redis shares them: a miss in process asks
//! the shared state. A shared state that fails is treated as a miss (the
//! client registers again) and logged once.
//!
//! **Allowlist**: only the listed operations run. Entries are SHA-256
//! hashes (64 hex digits) of the exact query text, or query documents (their
//! hash is taken), inline (`operations:`) or in a JSON `file:` (a list of
//! such strings, or an Apollo persisted-query manifest,
//! `{"format":"apollo-persisted-query-manifest","operations":[{"id","body"}]}`).
//! A query whose text hashes to no entry, or a hash not listed, is refused
//! with `PERSISTED_QUERY_NOT_ALLOWED`. A listed document can be run by its
//! hash alone, without APQ.

use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use covet_plugin_api::host::{Host, State};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::limits::Refusal;

/// `apq:` — `true`, or the settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ApqSetting {
    /// `apq: true` (defaults) or `apq: false`.
    On(bool),
    /// `apq: { ttl, state, max_entries }`.
    With(ApqConfig),
}

/// APQ settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApqConfig {
    /// How long a registered query is kept (default `24h`).
    pub ttl: Option<String>,
    /// The shared state namespace (granted to the plugin) that shares
    /// registrations across hosts; absent: this process only.
    pub state: Option<String>,
    /// The most queries kept in process (default 10,000).
    pub max_entries: Option<usize>,
}

/// `allowlist:` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistConfig {
    /// A JSON file (relative to the manifest): a list of hashes/documents or an Apollo manifest.
    pub file: Option<String>,
    /// Hashes or documents, inline.
    #[serde(default)]
    pub operations: Vec<String>,
}

/// The SHA-256 of `text`, as 64 lower-case hex digits.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    out
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What resolving the persisted-query part of a request decided.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A plain query (no hash, or APQ off and the query present).
    Plain,
    /// The query came from the APQ store.
    Hit,
    /// The query came from the allowlist by its hash.
    Listed,
    /// Query and hash: register the query under this hash once it passes.
    Register(String),
}

/// The query to run and how it was found.
#[derive(Debug)]
pub struct Resolved<'r> {
    /// The query text.
    pub query: Cow<'r, str>,
    /// How it was found.
    pub outcome: Outcome,
}

/// The persisted-query policy of one filter instance.
#[derive(Default)]
pub struct Persisted {
    apq: Option<Apq>,
    allowlist: Option<Allowlist>,
}

impl Persisted {
    /// The policy from the config (`base` resolves `allowlist.file`).
    pub fn new(
        apq: Option<&ApqSetting>,
        allowlist: Option<&AllowlistConfig>,
        host: &Host,
        base: &Path,
    ) -> Result<Persisted, String> {
        let apq = match apq {
            None | Some(ApqSetting::On(false)) => None,
            Some(ApqSetting::On(true)) => Some(Apq::new(&ApqConfig::default(), host)?),
            Some(ApqSetting::With(config)) => Some(Apq::new(config, host)?),
        };
        let allowlist = allowlist.map(|config| Allowlist::load(config, base)).transpose()?;
        Ok(Persisted { apq, allowlist })
    }

    /// Whether neither APQ nor an allowlist is on (a request's hash is then refused).
    pub fn is_off(&self) -> bool {
        self.apq.is_none() && self.allowlist.is_none()
    }

    /// The query a request runs: its text, or the one its hash names.
    pub async fn resolve<'r>(&self, query: Option<&'r str>, extensions: &Map<String, Value>) -> Result<Resolved<'r>, Refusal> {
        let hash = provided_hash(extensions)?;
        match (query, hash) {
            (Some(query), hash) => self.check_text(query, hash),
            (None, Some(hash)) => self.by_hash(&hash).await,
            (None, None) => {
                let mut refusal = Refusal::new("BAD_REQUEST", "the request has no 'query'");
                refusal.kind = crate::limits::RefusalKind::Malformed;
                Err(refusal)
            }
        }
    }

    /// A request with its text (and maybe the hash to register it under).
    fn check_text<'r>(&self, query: &'r str, hash: Option<String>) -> Result<Resolved<'r>, Refusal> {
        if hash.is_none() && self.allowlist.is_none() {
            return Ok(Resolved { query: Cow::Borrowed(query), outcome: Outcome::Plain });
        }
        let actual = sha256_hex(query);
        if let Some(hash) = &hash
            && *hash != actual
        {
            return Err(Refusal::new("PROVIDED_SHA_DOESNT_MATCH", "provided sha does not match query")
                .with("sha256Hash", hash.as_str())
                .with("actual", actual));
        }
        if let Some(list) = &self.allowlist
            && !list.contains(&actual)
        {
            return Err(not_allowed(&actual));
        }
        let outcome = match hash {
            Some(hash) if self.apq.is_some() => Outcome::Register(hash),
            _ => Outcome::Plain,
        };
        Ok(Resolved { query: Cow::Borrowed(query), outcome })
    }

    /// A request with only the hash.
    async fn by_hash(&self, hash: &str) -> Result<Resolved<'static>, Refusal> {
        if let Some(list) = &self.allowlist {
            match list.entries.get(hash) {
                None => return Err(not_allowed(hash)),
                Some(Some(doc)) => return Ok(Resolved { query: Cow::Owned(doc.to_string()), outcome: Outcome::Listed }),
                Some(None) => {}
            }
        }
        let Some(apq) = &self.apq else {
            return Err(Refusal::new("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported"));
        };
        match apq.get(hash).await {
            Some(query) => Ok(Resolved { query: Cow::Owned(query.to_string()), outcome: Outcome::Hit }),
            None => Err(Refusal::new("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound").with("sha256Hash", hash)),
        }
    }

    /// Registers `query` under `hash` (APQ), after it passed every check.
    pub async fn register(&self, hash: &str, query: &str) {
        if let Some(apq) = &self.apq {
            apq.put(hash, query).await;
        }
    }
}

fn not_allowed(hash: &str) -> Refusal {
    Refusal::new("PERSISTED_QUERY_NOT_ALLOWED", "the operation is not on the allowlist").with("sha256Hash", hash)
}

/// `extensions.persistedQuery.sha256Hash` (lower-cased), checked: version 1, 64 hex digits.
fn provided_hash(extensions: &Map<String, Value>) -> Result<Option<String>, Refusal> {
    let Some(pq) = extensions.get("persistedQuery") else { return Ok(None) };
    let invalid = |why: &str| Refusal::new("PERSISTED_QUERY_INVALID", format!("extensions.persistedQuery: {why}"));
    let Value::Object(pq) = pq else { return Err(invalid("must be an object")) };
    if pq.get("version").and_then(Value::as_i64) != Some(1) {
        return Err(invalid("version must be 1"));
    }
    match pq.get("sha256Hash").and_then(Value::as_str) {
        Some(hash) if is_hash(hash) => Ok(Some(hash.to_ascii_lowercase())),
        _ => Err(invalid("sha256Hash must be 64 hex digits")),
    }
}

/// The APQ store: in process, and in shared state when configured.
struct Apq {
    local: Mutex<Local>,
    shared: Option<State>,
    ttl: Duration,
    max_entries: usize,
    /// Whether a shared-state failure was logged already.
    warned: AtomicBool,
}

#[derive(Default)]
struct Local {
    map: HashMap<String, (Arc<str>, Instant)>,
    order: VecDeque<String>,
}

impl Apq {
    fn new(config: &ApqConfig, host: &Host) -> Result<Apq, String> {
        let ttl = config.ttl.as_deref().unwrap_or("24h");
        let ttl = humantime::parse_duration(ttl).map_err(|_| format!("apq.ttl: '{ttl}' is not a duration (e.g. 24h)"))?;
        let max_entries = config.max_entries.unwrap_or(10_000);
        if max_entries == 0 || ttl.is_zero() {
            return Err("apq: ttl and max_entries must be above 0".into());
        }
        let shared = config.state.as_deref().map(|ns| host.state(ns));
        Ok(Apq { local: Mutex::new(Local::default()), shared, ttl, max_entries, warned: AtomicBool::new(false) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn get(&self, hash: &str) -> Option<Arc<str>> {
        if let Some((query, expires)) = self.lock().map.get(hash)
            && *expires > Instant::now()
        {
            return Some(Arc::clone(query));
        }
        let shared = self.shared.as_ref()?;
        let bytes = match shared.get(hash).await {
            Ok(found) => found?,
            Err(e) => {
                self.warn(&e.to_string());
                return None;
            }
        };
        let query = String::from_utf8(bytes).ok().filter(|q| sha256_hex(q) == hash)?;
        let query: Arc<str> = query.into();
        self.keep(hash, Arc::clone(&query));
        Some(query)
    }

    async fn put(&self, hash: &str, query: &str) {
        self.keep(hash, query.into());
        if let Some(shared) = &self.shared
            && let Err(e) = shared.set(hash, query.as_bytes(), Some(self.ttl)).await
        {
            self.warn(&e.to_string());
        }
    }

    fn keep(&self, hash: &str, query: Arc<str>) {
        let mut local = self.lock();
        if local.map.insert(hash.to_owned(), (query, Instant::now() + self.ttl)).is_none() {
            local.order.push_back(hash.to_owned());
        }
        while local.map.len() > self.max_entries {
            let Some(oldest) = local.order.pop_front() else { break };
            local.map.remove(&oldest);
        }
    }

    fn warn(&self, error: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            eprintln!("graphql apq: the shared state failed ({error}); registrations stay in this process (logged once)");
        }
    }
}

/// The allowlist: hashes, with the document when the list gave it.
struct Allowlist {
    entries: HashMap<String, Option<Arc<str>>>,
}

impl Allowlist {
    fn load(config: &AllowlistConfig, base: &Path) -> Result<Allowlist, String> {
        let mut list = Allowlist { entries: HashMap::new() };
        for entry in &config.operations {
            list.add(entry);
        }
        if let Some(file) = &config.file {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("allowlist.file '{}': {e}", path.display()))?;
            list.add_file(&text).map_err(|e| format!("allowlist.file '{}': {e}", path.display()))?;
        }
        if list.entries.is_empty() {
            return Err("allowlist: no operations (give `operations:` or a `file:`)".into());
        }
        Ok(list)
    }

    /// A hash, or a document (hashed).
    fn add(&mut self, entry: &str) {
        if is_hash(entry) {
            self.entries.entry(entry.to_ascii_lowercase()).or_insert(None);
        } else {
            self.entries.insert(sha256_hex(entry), Some(entry.into()));
        }
    }

    fn add_file(&mut self, text: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match value {
            Value::Array(items) => {
                for item in items {
                    self.add(item.as_str().ok_or("a list entry is not a string")?);
                }
            }
            Value::Object(manifest) => {
                let ops = manifest.get("operations").and_then(Value::as_array).ok_or(
                    "an object must be an Apollo persisted-query manifest with `operations: [{id, body}]`",
                )?;
                for op in ops {
                    let body = op.get("body").and_then(Value::as_str).ok_or("an operation has no `body`")?;
                    let hash = sha256_hex(body);
                    if let Some(id) = op.get("id").and_then(Value::as_str).filter(|id| !id.eq_ignore_ascii_case(&hash)) {
                        return Err(format!("operation id {id} is not the SHA-256 of its body ({hash})"));
                    }
                    self.entries.insert(hash, Some(body.into()));
                }
            }
            _ => return Err("expected a JSON list or an Apollo persisted-query manifest".into()),
        }
        Ok(())
    }

    fn contains(&self, hash: &str) -> bool {
        self.entries.contains_key(hash)
    }
}

#[cfg(test)]
#[path = "persisted_tests.rs"]
mod tests;
