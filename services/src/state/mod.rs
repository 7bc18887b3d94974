//! Shared state for plugins: a small key-value and atomic-counter store with
//! TTLs, by namespace, behind one object-safe trait ([`SharedState`]) with
//! three backends: [`MemoryState`] (in-process, the default), [`RedisState`]
//! (a fleet of hosts sharing one Redis) and [`ProcessState`] (the child
//! processes of one host sharing the supervisor's state over a Unix socket,
//! served by [`serve_state`]).
//!
//! Plugins reach it through a [`StateHandle`], which carries the namespaces
//! the manifest granted them (`capabilities: { state: [sessions, limits] }`).
//! Values are bytes; counters are stored as decimal text (as Redis does), so
//! `get` after `incr` returns e.g. `b"5"` with either backend.

mod memory;
mod process;
mod process_server;
mod process_wire;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use self::memory::MemoryState;
pub use self::process::ProcessState;
pub use self::process_server::serve_state;
pub use self::redis::{RedisConfig, RedisState};
use crate::ServiceError;

/// A boxed `Send` future, the return type of [`SharedState`]'s operations.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// The result of a state operation.
pub type StateResult<'a, T> = BoxFuture<'a, Result<T, ServiceError>>;

/// What a script returns (`eval`), as Redis replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `nil` (Lua `false` or nothing).
    Nil,
    /// An integer (Lua numbers are truncated to integers by Redis).
    Int(i64),
    /// A string, or a status reply such as `OK`.
    Bytes(Vec<u8>),
    /// A table (array).
    Array(Vec<Value>),
}

/// A shared key-value store with TTLs. Every operation is atomic on its key;
/// `ns` is a namespace (no `:`), `key` any string.
pub trait SharedState: Send + Sync {
    /// The value of `key`, or `None` when absent or expired.
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, Option<Vec<u8>>>;
    /// Stores `value`, replacing any value and TTL; `ttl` `None`: kept until deleted.
    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StateResult<'a, ()>;
    /// Adds `delta` to the integer at `key` (absent counts as 0) and returns the
    /// new value; `ttl` is applied only when this call creates the key.
    /// A non-integer value is a `Backend` error.
    fn incr<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateResult<'a, i64>;
    /// Replaces the value with `new` (`None`: deletes it) only when the current
    /// value equals `expected` (`None`: the key must be absent); returns whether it did.
    fn compare_and_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StateResult<'a, bool>;
    /// Removes `key`; returns whether it existed.
    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, bool>;
    /// Runs a Lua `script` atomically with `keys` (each namespaced like the
    /// other operations' keys) and `args`. Redis only: the in-process backend
    /// returns `Unsupported` (and so does the process backend, which forwards
    /// it to the supervisor's in-process state), so a plugin keeps an
    /// algorithm over the other operations for it.
    fn eval<'a>(&'a self, ns: &'a str, script: &'a str, keys: &'a [String], args: &'a [String]) -> StateResult<'a, Value>;
    /// `memory`, `redis` or `process`.
    fn backend(&self) -> &'static str;
}

/// Which backend, and its settings (the manifest's `services.state`).
#[derive(Clone, Debug, Default)]
pub enum StateConfig {
    /// In-process (the default).
    #[default]
    Memory,
    /// Redis at a URL.
    Redis(RedisConfig),
    /// The state a supervisor keeps for its host processes, at this Unix
    /// socket (`processes:` above 1), with this timeout per operation.
    Process(std::path::PathBuf, Duration),
}

/// Builds the backend `config` names (Redis connects on first use and
/// reconnects by itself). Call inside a tokio runtime.
pub fn open(config: &StateConfig) -> Result<Arc<dyn SharedState>, ServiceError> {
    Ok(match config {
        StateConfig::Memory => MemoryState::new_with_sweeper(),
        StateConfig::Redis(redis) => Arc::new(RedisState::new(redis.clone())?),
        StateConfig::Process(path, timeout) => ProcessState::new(path.clone(), *timeout),
    })
}

/// Whether `ns` is a valid namespace: 1-64 of `a-z A-Z 0-9 _ - .`.
pub fn is_valid_namespace(ns: &str) -> bool {
    (1..=64).contains(&ns.len()) && ns.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// One plugin's view of the shared state: the backend and the namespaces it
/// was granted. Every call names a namespace; an ungranted one is `Denied`.
#[derive(Clone)]
pub struct StateHandle {
    backend: Arc<dyn SharedState>,
    plugin: Arc<str>,
    namespaces: Arc<[String]>,
}

impl StateHandle {
    /// The handle of plugin `plugin`, granted `namespaces`.
    pub fn new(backend: Arc<dyn SharedState>, plugin: &str, namespaces: Vec<String>) -> StateHandle {
        StateHandle { backend, plugin: Arc::from(plugin), namespaces: namespaces.into() }
    }

    /// The backend, for its name or unchecked use by the host itself.
    pub fn backend(&self) -> &Arc<dyn SharedState> {
        &self.backend
    }

    /// Namespace `ns` of this plugin's state, when granted; else `Denied`.
    pub fn namespace(&self, ns: &str) -> Result<Namespace, ServiceError> {
        if self.namespaces.iter().any(|n| n == ns) {
            return Ok(Namespace { backend: self.backend.clone(), ns: Arc::from(ns) });
        }
        let what = format!("shared state namespace '{ns}'");
        Err(ServiceError::Denied { plugin: self.plugin.to_string(), what, grant: "state" })
    }
}

/// One granted namespace: the [`SharedState`] operations without the `ns` argument.
#[derive(Clone)]
pub struct Namespace {
    backend: Arc<dyn SharedState>,
    ns: Arc<str>,
}

impl Namespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.ns
    }

    /// See [`SharedState::get`].
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ServiceError> {
        self.backend.get(&self.ns, key).await
    }

    /// See [`SharedState::set`].
    pub async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<(), ServiceError> {
        self.backend.set(&self.ns, key, value, ttl).await
    }

    /// See [`SharedState::incr`].
    pub async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, ServiceError> {
        self.backend.incr(&self.ns, key, delta, ttl).await
    }

    /// See [`SharedState::compare_and_set`].
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> Result<bool, ServiceError> {
        self.backend.compare_and_set(&self.ns, key, expected, new, ttl).await
    }

    /// See [`SharedState::delete`].
    pub async fn delete(&self, key: &str) -> Result<bool, ServiceError> {
        self.backend.delete(&self.ns, key).await
    }

    /// See [`SharedState::eval`].
    pub async fn eval(&self, script: &str, keys: &[String], args: &[String]) -> Result<Value, ServiceError> {
        self.backend.eval(&self.ns, script, keys, args).await
    }
}
