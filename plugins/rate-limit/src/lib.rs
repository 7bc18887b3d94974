//! # covet-rate-limit
//!
//! A filter that limits how fast each client may call a route, using the
//! GCRA algorithm (a leaky bucket that needs one timestamp per client) from
//! [`governor`], keyed by client IP, a request header, or metadata set by an
//! earlier filter (such as `jwt.sub` from auth-jwt).
//!
//! ```yaml
//! plugins:
//!   per-client:
//!     kind: native
//!     path: artifacts/libcovet_rate_limit.so
//!     config:
//!       rate: 100/s             # <count>/<unit>, unit s, m or h (or sec, second, min, minute, hour); count >= 1
//!       burst: 200              # bucket size, >= 1; default: the rate's count
//!       key: header:x-api-key   # ip (default) | header:<name> | metadata:<key>
//!       missing_key: reject     # shared (default) | reject
//!       headers: true           # RateLimit-* headers on allowed responses too (default true)
//!       backend: memory         # memory (default): buckets in this process | shared: in the host's shared state
//! routes:
//!   - path: /api/{*rest}
//!     filters: [per-client]
//!     handler: api
//! ```
//!
//! ## Per request
//!
//! | phase | does |
//! |---|---|
//! | `on_request` | finds the key; takes one request from its bucket; sets metadata `ratelimit.key` and `ratelimit.remaining`, or answers 429 |
//! | `on_response` | with `headers: true`, adds `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the bucket is full again), from the metadata `on_request` set |
//!
//! Over the limit the answer is a 429 with `Retry-After` (seconds, rounded
//! up, at least 1), `RateLimit-Limit: <burst>`, `RateLimit-Remaining: 0`,
//! `RateLimit-Reset` (same seconds as `Retry-After`) and the JSON body
//! `{"error":{"code":"RATE_LIMITED","message":…,"details":{"retry_after_seconds":N},"request_id":…}}`.
//!
//! A request without its key (the header or metadata is absent or blank) draws
//! from one bucket shared by all such requests (`missing_key: shared`, and
//! `ratelimit.key` is empty), or gets a 400 with code `RATE_LIMIT_KEY_MISSING`
//! naming the key (`missing_key: reject`).
//!
//! ## Memory stays bounded
//!
//! Each key costs one map entry: the key string and the 8-byte time at which
//! its bucket will be full again. An allowed request moves that time at most
//! `burst / rate` ahead (the refill time: 2 s for `100/s` with burst 200), and
//! a refused one does not move it. Once that time has passed the bucket is
//! indistinguishable from a new one, so a background thread drops it: every
//! 5 s it calls governor's `retain_recent()` and `shrink_to_fit()`. A key thus
//! lives at most the refill time (plus one replenish interval and one 5 s sweep)
//! after its last allowed request, and the map holds at most the keys seen in
//! that window. With `header:` keys the client picks the key, so that window
//! is what bounds an attacker minting fresh keys; the key length is bounded
//! by the listener's header limits. The thread stops and is joined in
//! `shutdown`.
//!
//! ## `backend: shared`: one limit for every process of a host, or for a fleet
//!
//! With `backend: shared` the buckets live in the host's shared state
//! (`services.state`), so everything that shares that state draws from the
//! same buckets: the processes of one host (`processes: N`, where the state
//! lives in the supervisor and the children reach it over a Unix socket), or
//! a fleet of hosts pointing at the same Redis (and prefix). `100/s` on four
//! processes, or on three hosts, lets 100/s through in total. Grant the
//! plugin the namespace (`backend: redis` and a `redis:` block are the old
//! spellings of `backend: shared` and `shared:`, still accepted):
//!
//! ```yaml
//! processes: 4                  # or a fleet: services: { state: { backend: redis, url: "redis://10.0.0.5:6379" } }
//! plugins:
//!   per-client:
//!     kind: native
//!     path: artifacts/libcovet_rate_limit.so
//!     capabilities: { state: [ratelimit] }
//!     config:
//!       rate: 100/s
//!       key: header:x-api-key
//!       backend: shared
//!       shared:                 # optional; these are the defaults
//!         namespace: ratelimit  # the shared state namespace (granted above)
//!         timeout: 30ms         # the longest a request waits for the shared state (up to 10s)
//!         on_error: allow       # allow (fail open) | deny (fail closed)
//! ```
//!
//! - **The cost per request** depends on the state's backend. Redis: one
//!   atomic round trip, a Lua script (`src/gcra.lua`, sent with `EVALSHA` by
//!   the host) that reads the bucket, decides and writes it back, on Redis's
//!   clock (`TIME`), so the hosts' clocks do not matter. The in-process state
//!   (one process) and the process backend (`processes: N`) run no scripts:
//!   the first request's `eval` answers Unsupported, and from then on the
//!   instance (without asking again) reads the bucket with `get` and writes
//!   it with `compare_and_set` — in process mode two round trips to the
//!   supervisor per request — with the same arithmetic on the host's wall
//!   clock (which all its processes share). A write that loses a race to
//!   another request reads again, at most 16 times; past that the request
//!   goes through `on_error` as a `backend` failure. A refused request writes
//!   nothing.
//! - **The bucket** is one key holding the time (µs since the Unix epoch) at
//!   which it is full again, expiring at that time: the state holds only the
//!   buckets of recently active clients. Rates above 1,000,000/s are refused
//!   with this backend (buckets count whole microseconds).
//! - **Redis Cluster**: a bucket's key is `{<instance>/<client key>}` (the
//!   shared bucket of keyless requests `{<instance>}`) after the host's
//!   prefix and namespace, e.g. `covet:ratelimit:{per-client/10.0.0.1}`. The
//!   braces are a hash tag: each call touches one key in one slot, and
//!   buckets spread over the cluster. The instance name is the manifest's
//!   plugin name, so two differently named limiters never share buckets.
//! - **Same answers as in process**: `RateLimit-Limit`, `-Remaining` and
//!   `-Reset` on allowed responses, and the same 429 with `Retry-After`.
//! - **Timeout and failure policy**: each decision (its round trips
//!   together) races `shared.timeout` (30 ms; the host's
//!   `services.state.timeout` also applies to each call, whichever is
//!   shorter). When the state fails or does not answer in time, `on_error:
//!   allow` lets the request through unlimited (no `RateLimit-*` headers,
//!   metadata `ratelimit.fail_open` = why: `timeout`, `connect`, `backend`,
//!   `misconfigured`, ...), and `on_error: deny` answers **503** (not 429:
//!   the client spent no quota) with `Retry-After: 1` and
//!   `{"error":{"code":"RATE_LIMIT_UNAVAILABLE","message":…,"details":{"reason":"timeout","retry_after_seconds":1},…}}`.
//!   A call cut off by the timeout may still reach the state later and count.
//! - **Logs**: a failure is written to stderr (the host's log) at most once
//!   per 10 s per limiter, with the number of requests let through and
//!   refused since the last such line, and once more when the state answers
//!   again. A namespace that is not granted shows up there as
//!   `misconfigured` with the host's message saying what to fix. The switch
//!   to get + compare-and-set is logged once per instance.
//!
//! The plugin is an `AsyncPlugin`: the memory backend answers on the first
//! poll without suspending; only the shared backend waits.
//!
//! `ratelimit.remaining` is a single metadata slot: with two rate-limit
//! filters on one route the later one's value is the one both `on_response`
//! phases read.
#![deny(missing_docs)]

mod backend;
mod cas;
mod config;
mod host;
mod key;
mod limiter;
mod outage;
mod remote;
mod reply;
mod shared;
mod sweeper;
#[cfg(test)]
mod test_redis;
#[cfg(test)]
mod test_store;

use std::{sync::Arc, time::Duration};

use covet_plugin_api::{AsyncPlugin, Config, Flow, Phases, Request, Response, ResponseMut, export_plugin};

use crate::{
    config::{Policy, Settings},
    key::MissingKey,
    limiter::{BucketKey, Decision, Limiter},
    shared::{SharedLimiter, Store, Verdict},
    sweeper::Sweeper,
};

/// How often the background thread evicts refilled buckets.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Metadata: the key the request was counted under (empty for the shared bucket).
const META_KEY: &str = "ratelimit.key";
/// Metadata: how many more requests the key's bucket allows right now.
const META_REMAINING: &str = "ratelimit.remaining";
/// Metadata: set when the shared state failed and `on_error: allow` let the
/// request through unlimited; the value is why (`timeout`, `connect`, ...).
const META_FAIL_OPEN: &str = "ratelimit.fail_open";

/// Where the buckets live.
enum Backend {
    /// In this process, with the thread that evicts refilled buckets.
    Memory { limiter: Arc<Limiter>, sweeper: Sweeper },
    /// In the host's shared state (Redis, or the memory of the host or its supervisor).
    Shared(SharedLimiter),
}

/// The rate-limit filter: one live instance with its buckets.
pub struct RateLimit {
    policy: Policy,
    backend: Backend,
}

impl RateLimit {
    fn start(policy: Policy, sweep_period: Duration) -> Result<RateLimit, String> {
        let limiter = Arc::new(Limiter::new(policy.quota));
        let swept = Arc::clone(&limiter);
        let sweeper = Sweeper::start(sweep_period, move || swept.evict_idle())
            .map_err(|e| format!("cannot start the idle-key eviction thread: {e}"))?;
        Ok(RateLimit { policy, backend: Backend::Memory { limiter, sweeper } })
    }

    /// An instance named `instance` whose buckets live in the shared state behind `store`.
    fn shared(policy: Policy, instance: &str, store: Box<dyn Store>) -> Result<RateLimit, String> {
        let shared = policy.shared.clone().ok_or("the shared backend needs `backend: shared`")?;
        let (interval, burst) = (policy.quota.replenish_interval(), policy.quota.burst_size().get());
        let limiter = SharedLimiter::new(store, instance, interval, burst, shared);
        Ok(RateLimit { policy, backend: Backend::Shared(limiter) })
    }

    fn memory(&self) -> Option<&Limiter> {
        match &self.backend {
            Backend::Memory { limiter, .. } => Some(limiter),
            Backend::Shared(_) => None,
        }
    }

    /// How many client keys (buckets) are held in this process (0 with `backend: shared`).
    pub fn tracked_keys(&self) -> usize {
        self.memory().map_or(0, Limiter::tracked_keys)
    }

    /// Drops every bucket that has refilled; the sweeper thread calls this every 5 s.
    pub fn evict_idle_keys(&self) {
        if let Some(limiter) = self.memory() {
            limiter.evict_idle();
        }
    }

    /// The bucket this request draws from, or the 400 for a missing key.
    fn bucket_key(&self, req: &Request<'_>) -> Result<BucketKey, Response> {
        match self.policy.key.extract(req) {
            Some(key) => Ok(Some(key.to_owned())),
            None if self.policy.missing_key == MissingKey::Reject => {
                Err(reply::missing_key(req.request_id(), &self.policy.key))
            }
            None => Ok(None),
        }
    }

    /// Applies a bucket's decision: metadata for `on_response`, or the 429.
    fn apply(&self, req: &mut Request<'_>, key: &BucketKey, decision: Decision) -> Flow {
        match decision {
            Decision::Allowed { remaining } => {
                req.set_metadata(META_KEY, key.as_deref().unwrap_or(""));
                req.set_metadata(META_REMAINING, itoa::Buffer::new().format(remaining));
                Flow::Continue
            }
            Decision::Limited { wait } => {
                Flow::Respond(reply::too_many_requests(req.request_id(), self.burst(), wait))
            }
        }
    }

    /// The in-process check: synchronous, no allocation beyond the key.
    fn check_in_memory(&self, req: &mut Request<'_>, limiter: &Limiter) -> Flow {
        match self.bucket_key(req) {
            Ok(key) => self.apply(req, &key, limiter.check(&key)),
            Err(response) => Flow::Respond(response),
        }
    }

    /// The shared-state check: one `eval` (or get + compare-and-set), or the `on_error` policy.
    async fn check_in_shared_state(&self, req: &mut Request<'_>, limiter: &SharedLimiter) -> Flow {
        let key = match self.bucket_key(req) {
            Ok(key) => key,
            Err(response) => return Flow::Respond(response),
        };
        match limiter.check(&key).await {
            Verdict::Decided(decision) => self.apply(req, &key, decision),
            Verdict::FailOpen(reason) => {
                req.set_metadata(META_FAIL_OPEN, reason);
                Flow::Continue
            }
            Verdict::FailClosed(reason) => Flow::Respond(reply::unavailable(req.request_id(), reason)),
        }
    }

    fn burst(&self) -> u32 {
        self.policy.quota.burst_size().get()
    }

    /// `RateLimit-*` headers on an allowed response, from `on_request`'s metadata.
    fn add_headers(&self, req: &Request<'_>, resp: &mut ResponseMut<'_>) {
        if !self.policy.headers {
            return;
        }
        // Absent when this filter answered itself (429/400/503 carry their own
        // headers) or failed open (no bucket was read).
        let Some(remaining) = req.metadata(META_REMAINING).and_then(|v| v.parse().ok()) else {
            return;
        };
        let time_to_full = limiter::time_to_full(&self.policy.quota, remaining);
        reply::add_headers(resp, self.burst(), remaining, time_to_full);
    }

    fn stop(&self) {
        if let Backend::Memory { sweeper, .. } = &self.backend {
            sweeper.stop();
        }
    }
}

impl AsyncPlugin for RateLimit {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::ON_RESPONSE);

    fn init(config: Config<'_>) -> Result<Self, String> {
        let policy = config.parse::<Settings>()?.validate()?;
        match &policy.shared {
            None => RateLimit::start(policy, SWEEP_PERIOD),
            Some(shared) => {
                let store = host::store(config.host(), &shared.namespace);
                RateLimit::shared(policy, config.instance(), store)
            }
        }
    }

    /// The memory backend decides here, synchronously: no future, no
    /// allocation, the cost of a synchronous plugin.
    fn on_request_now(&self, req: &mut Request<'_>) -> Option<Flow> {
        match &self.backend {
            Backend::Memory { limiter, .. } => Some(self.check_in_memory(req, limiter)),
            Backend::Shared(_) => None,
        }
    }

    /// The shared backend awaits its round trips (the memory backend never gets here).
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        match &self.backend {
            Backend::Memory { limiter, .. } => self.check_in_memory(req, limiter),
            Backend::Shared(limiter) => self.check_in_shared_state(req, limiter).await,
        }
    }

    fn on_response_now(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) -> bool {
        self.add_headers(req, resp);
        true
    }

    /// The same edits (the host never gets here: `on_response_now` is always done).
    async fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        self.add_headers(req, resp);
    }

    fn shutdown(&self) {
        self.stop();
    }
}

export_plugin!(async RateLimit);

#[cfg(test)]
mod tests;
#[cfg(test)]
mod redis_tests;
