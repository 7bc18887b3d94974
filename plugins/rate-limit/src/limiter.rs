//! The keyed GCRA limiter: one bucket per client key, plus eviction of the
//! buckets that have refilled (they are indistinguishable from a new one).

use std::time::Duration;

use governor::{
    NotUntil, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DashMapStateStore,
};

/// Which bucket a request draws from: `Some(key)` is that client's own bucket,
/// `None` the one bucket shared by every request that carried no key.
pub(crate) type BucketKey = Option<String>;

/// foldhash with a per-limiter random seed instead of std's SipHash: keys
/// are hashed on every request, and SipHash was the costliest step of the
/// check. A random seed keeps keys chosen by clients from being aimed at one
/// shard (foldhash's resistance is not cryptographic; a key is at most a
/// header value or a metadata value).
type KeyHasher = foldhash::fast::RandomState;

type Keyed =
    RateLimiter<BucketKey, DashMapStateStore<BucketKey, KeyHasher>, DefaultClock, StateInformationMiddleware>;

/// The outcome of one request against its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Let through; `remaining` more requests fit in the bucket right now.
    Allowed { remaining: u32 },
    /// Over the limit; the next request from this key is allowed after `wait`.
    Limited { wait: Duration },
}

/// A keyed limiter: one GCRA bucket per key.
pub(crate) struct Limiter {
    buckets: Keyed,
}

impl Limiter {
    pub fn new(quota: Quota) -> Limiter {
        let buckets = RateLimiter::dashmap_with_hasher(quota, KeyHasher::default())
            .with_middleware::<StateInformationMiddleware>();
        Limiter { buckets }
    }

    /// Takes one request out of `key`'s bucket if it can.
    pub fn check(&self, key: &BucketKey) -> Decision {
        match self.buckets.check_key(key) {
            Ok(snapshot) => Decision::Allowed { remaining: snapshot.remaining_burst_capacity() },
            Err(not_until) => Decision::Limited { wait: self.wait(&not_until) },
        }
    }

    fn wait(&self, not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
        not_until.wait_time_from(self.buckets.clock().now())
    }

    /// Forgets every bucket that has refilled and releases the map's spare capacity.
    pub fn evict_idle(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }

    /// How many buckets are held in memory.
    pub fn tracked_keys(&self) -> usize {
        self.buckets.len()
    }
}

/// How long a bucket of `quota` holding `remaining` requests takes to be
/// full again.
///
/// GCRA's snapshot gives `remaining` rounded down, so this is an upper
/// bound, at most one replenish interval above the exact time.
pub(crate) fn time_to_full(quota: &Quota, remaining: u32) -> Duration {
    let missing = quota.burst_size().get().saturating_sub(remaining);
    quota.replenish_interval() * missing
}

/// Whole seconds, rounded up: the unit of `Retry-After` and `RateLimit-Reset`.
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroU32, thread};

    use super::*;

    fn per_hour(count: u32, burst: u32) -> Limiter {
        let n = |v| NonZeroU32::new(v).unwrap();
        Limiter::new(Quota::per_hour(n(count)).allow_burst(n(burst)))
    }

    #[test]
    fn counts_down_the_burst_then_limits() {
        let limiter = per_hour(1, 3);
        let key = Some("a".to_string());
        assert_eq!(limiter.check(&key), Decision::Allowed { remaining: 2 });
        assert_eq!(limiter.check(&key), Decision::Allowed { remaining: 1 });
        assert_eq!(limiter.check(&key), Decision::Allowed { remaining: 0 });
        let Decision::Limited { wait } = limiter.check(&key) else { panic!("fourth request allowed") };
        assert_eq!(ceil_secs(wait), 3600);
    }

    #[test]
    fn time_to_full_counts_the_missing_requests() {
        let quota = Quota::per_hour(NonZeroU32::MIN).allow_burst(NonZeroU32::new(3).unwrap());
        assert_eq!(time_to_full(&quota, 2), Duration::from_secs(3600));
        assert_eq!(time_to_full(&quota, 0), Duration::from_secs(3 * 3600));
        assert_eq!(time_to_full(&quota, 3), Duration::ZERO);
    }

    #[test]
    fn ceil_secs_rounds_up_partial_seconds() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn eviction_keeps_buckets_that_are_still_draining() {
        let limiter = per_hour(1, 2);
        limiter.check(&Some("busy".into()));
        limiter.check(&None);
        limiter.evict_idle();
        assert_eq!(limiter.tracked_keys(), 2);
    }

    #[test]
    fn eviction_removes_buckets_that_have_refilled() {
        // 1000/s with a burst of 1: one request's bucket refills in 1 ms.
        let limiter = Limiter::new(Quota::per_second(NonZeroU32::new(1000).unwrap()).allow_burst(NonZeroU32::MIN));
        limiter.check(&Some("idle".into()));
        limiter.check(&None);
        assert_eq!(limiter.tracked_keys(), 2);
        thread::sleep(Duration::from_millis(20));
        limiter.evict_idle();
        assert_eq!(limiter.tracked_keys(), 0);
    }
}
