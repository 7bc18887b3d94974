//! The Redis backend of the shared state: one multiplexed connection kept by
//! redis's `ConnectionManager` (it reconnects by itself), keys
//! `{prefix}{ns}:{key}`, every operation under a short timeout. Increment
//! with a TTL and compare-and-set are small Lua scripts (EVALSHA, falling
//! back to EVAL when the server does not have the script yet), so each is
//! one atomic round trip.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Script};

use super::{SharedState, StateResult, Value};
use crate::ServiceError;

/// Settings of the Redis backend (`services.state` with `backend: redis`).
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://host:port/db`, `rediss://…` (TLS) or `redis+unix:///path.sock`.
    pub url: String,
    /// Longest wait for one operation, connecting included (default 50 ms).
    pub timeout: Duration,
    /// Prepended to every key (default `covet:`).
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig { url: "redis://127.0.0.1:6379".into(), timeout: Duration::from_millis(50), prefix: "covet:".into() }
    }
}

/// `INCRBY` that sets a TTL (ARGV[2] ms, 0: none) only when it creates the key.
const INCR: &str = r"
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v";

/// Compare-and-set: ARGV = expected-present (0/1), expected, new-present (0/1), new, ttl ms (0: none).
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[3] == '1' then
  if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
  else redis.call('SET', KEYS[1], ARGV[4]) end
else
  redis.call('DEL', KEYS[1])
end
return 1";

/// The Redis backend: state shared by every host that uses the same server and prefix.
pub struct RedisState {
    conn: ConnectionManager,
    config: RedisConfig,
    incr: Script,
    cas: Script,
    scripts: DashMap<Arc<str>, Arc<Script>>,
}

impl RedisState {
    /// A backend for `config.url` (see [`RedisState::new`]).
    pub async fn connect(config: RedisConfig) -> Result<RedisState, ServiceError> {
        RedisState::new(config)
    }

    /// A backend for `config.url`. Connects lazily: a server that is down now
    /// makes operations fail (`Connect`/`Timeout`) until it is back; a bad URL
    /// fails here. Call inside a tokio runtime.
    pub fn new(config: RedisConfig) -> Result<RedisState, ServiceError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| ServiceError::Config(format!("redis URL '{}': {e}", config.url)))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, manager).map_err(|e| backend_error(&e, &config.url))?;
        Ok(RedisState { conn, incr: Script::new(INCR), cas: Script::new(CAS), scripts: DashMap::new(), config })
    }

    /// Sends `PING`: whether the server answers within the timeout.
    pub async fn ping(&self) -> Result<(), ServiceError> {
        self.run("PING", async |c| redis::cmd("PING").query_async::<()>(c).await).await
    }

    fn key(&self, ns: &str, key: &str) -> String {
        format!("{}{ns}:{key}", self.config.prefix)
    }

    /// Runs `op` on a clone of the connection under the configured timeout.
    async fn run<T>(
        &self,
        what: &str,
        op: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, ServiceError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.config.timeout, op(&mut conn)).await {
            Err(_) => Err(self.timeout(what)),
            Ok(Err(e)) if e.is_timeout() => Err(self.timeout(what)),
            Ok(Err(e)) => Err(backend_error(&e, &self.config.url)),
            Ok(Ok(value)) => Ok(value),
        }
    }

    fn timeout(&self, what: &str) -> ServiceError {
        ServiceError::Timeout { what: format!("redis {what}"), after: self.config.timeout }
    }

    fn script(&self, source: &str) -> Arc<Script> {
        if let Some(script) = self.scripts.get(source) {
            return script.clone();
        }
        let script = Arc::new(Script::new(source));
        self.scripts.insert(Arc::from(source), script.clone());
        script
    }
}

fn backend_error(e: &redis::RedisError, url: &str) -> ServiceError {
    if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        return ServiceError::Connect { target: url.to_owned(), reason: e.to_string() };
    }
    ServiceError::Backend(e.to_string())
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
}

fn from_redis(value: redis::Value) -> Result<Value, ServiceError> {
    Ok(match value {
        redis::Value::Nil => Value::Nil,
        redis::Value::Int(i) => Value::Int(i),
        redis::Value::BulkString(b) => Value::Bytes(b),
        redis::Value::SimpleString(s) => Value::Bytes(s.into_bytes()),
        redis::Value::Okay => Value::Bytes(b"OK".to_vec()),
        redis::Value::Boolean(b) => Value::Int(i64::from(b)),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            Value::Array(items.into_iter().map(from_redis).collect::<Result<_, _>>()?)
        }
        redis::Value::ServerError(e) => return Err(ServiceError::Backend(format!("script error: {e:?}"))),
        other => return Err(ServiceError::Backend(format!("unsupported script reply {other:?}"))),
    })
}

impl SharedState for RedisState {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, Option<Vec<u8>>> {
        let key = self.key(ns, key);
        Box::pin(self.run("GET", async move |c| Cmd::get(key).query_async(c).await))
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StateResult<'a, ()> {
        let key = self.key(ns, key);
        Box::pin(self.run("SET", async move |c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            if ttl.is_some() {
                cmd.arg("PX").arg(ttl_ms(ttl));
            }
            cmd.query_async(c).await
        }))
    }

    fn incr<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateResult<'a, i64> {
        let key = self.key(ns, key);
        Box::pin(self.run("INCRBY", async move |c| {
            self.incr.key(key).arg(delta).arg(ttl_ms(ttl)).invoke_async(c).await
        }))
    }

    fn compare_and_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StateResult<'a, bool> {
        let key = self.key(ns, key);
        Box::pin(self.run("compare-and-set", async move |c| {
            let mut call = self.cas.key(key);
            call.arg(u8::from(expected.is_some())).arg(expected.unwrap_or_default());
            call.arg(u8::from(new.is_some())).arg(new.unwrap_or_default()).arg(ttl_ms(ttl));
            call.invoke_async::<i64>(c).await.map(|done| done == 1)
        }))
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, bool> {
        let key = self.key(ns, key);
        Box::pin(self.run("DEL", async move |c| Cmd::del(key).query_async::<i64>(c).await.map(|n| n > 0)))
    }

    fn eval<'a>(&'a self, ns: &'a str, script: &'a str, keys: &'a [String], args: &'a [String]) -> StateResult<'a, Value> {
        let script = self.script(script);
        let keys: Vec<String> = keys.iter().map(|k| self.key(ns, k)).collect();
        Box::pin(async move {
            let reply = self
                .run("EVALSHA", async move |c| {
                    let mut call = script.prepare_invoke();
                    for key in keys {
                        call.key(key);
                    }
                    for arg in args {
                        call.arg(arg.as_str());
                    }
                    call.invoke_async::<redis::Value>(c).await
                })
                .await?;
            from_redis(reply)
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
