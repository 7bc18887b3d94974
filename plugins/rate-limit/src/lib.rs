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
//! `ratelimit.remaining` is a single metadata slot: with two rate-limit
//! filters on one route the later one's value is the one both `on_response`
//! phases read.
#![deny(missing_docs)]

mod backend;
mod config;
mod key;
mod limiter;
mod outage;
mod remote;
mod reply;
mod shared;
mod sweeper;
#[cfg(test)]
mod test_redis;

use std::{sync::Arc, time::Duration};

use covet_plugin_api::{Config, Flow, Phases, Plugin, Request, Response, ResponseMut, export_plugin};

use crate::{
    config::{Policy, Settings},
    key::MissingKey,
    limiter::{BucketKey, Decision, Limiter},
    sweeper::Sweeper,
};

/// How often the background thread evicts refilled buckets.
const SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// Metadata: the key the request was counted under (empty for the shared bucket).
const META_KEY: &str = "ratelimit.key";
/// Metadata: how many more requests the key's bucket allows right now.
const META_REMAINING: &str = "ratelimit.remaining";

/// The rate-limit filter: one live instance with its buckets and sweeper thread.
pub struct RateLimit {
    policy: Policy,
    limiter: Arc<Limiter>,
    sweeper: Sweeper,
}

impl RateLimit {
    fn start(policy: Policy, sweep_period: Duration) -> Result<RateLimit, String> {
        let limiter = Arc::new(Limiter::new(policy.quota));
        let swept = Arc::clone(&limiter);
        let sweeper = Sweeper::start(sweep_period, move || swept.evict_idle())
            .map_err(|e| format!("cannot start the idle-key eviction thread: {e}"))?;
        Ok(RateLimit { policy, limiter, sweeper })
    }

    /// How many client keys (buckets) are held in memory.
    pub fn tracked_keys(&self) -> usize {
        self.limiter.tracked_keys()
    }

    /// Drops every bucket that has refilled; the sweeper thread calls this every 5 s.
    pub fn evict_idle_keys(&self) {
        self.limiter.evict_idle();
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
}

impl Plugin for RateLimit {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::ON_RESPONSE);

    fn init(config: Config<'_>) -> Result<Self, String> {
        let policy = config.parse::<Settings>()?.validate()?;
        RateLimit::start(policy, SWEEP_PERIOD)
    }

    fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let key = match self.bucket_key(req) {
            Ok(key) => key,
            Err(response) => return Flow::Respond(response),
        };
        match self.limiter.check(&key) {
            Decision::Allowed { remaining } => {
                req.set_metadata(META_KEY, key.as_deref().unwrap_or(""));
                req.set_metadata(META_REMAINING, itoa::Buffer::new().format(remaining));
                Flow::Continue
            }
            Decision::Limited { wait } => {
                Flow::Respond(reply::too_many_requests(req.request_id(), self.limiter.burst(), wait))
            }
        }
    }

    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        if !self.policy.headers {
            return;
        }
        // Absent when this filter answered 429/400 itself (those carry their own headers).
        let Some(remaining) = req.metadata(META_REMAINING).and_then(|v| v.parse().ok()) else {
            return;
        };
        let time_to_full = self.limiter.time_to_full(remaining);
        reply::add_headers(resp, self.limiter.burst(), remaining, time_to_full);
    }

    fn shutdown(&self) {
        self.sweeper.stop();
    }
}

export_plugin!(RateLimit);

#[cfg(test)]
mod tests;
