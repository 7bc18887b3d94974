//! GCRA over get + compare-and-set: the arithmetic against `gcra.lua`'s, the
//! loop against the in-memory double (burst, wait, refill, expiry, races,
//! contention), the limiter's switch to it on the first Unsupported `eval`,
//! and both paths sharing one bucket on a real redis-server.

use std::{sync::Barrier, thread, time::Duration};

use covet_plugin_api::testing::block_on;

use super::*;
use crate::{
    backend::{OnError, SharedPolicy},
    remote::{SCRIPT, decision},
    shared::{SharedLimiter, Verdict},
    test_redis::{RedisServer, RedisStore},
    test_store::{MemoryStore, START_US},
};

const HOUR: Duration = Duration::from_secs(3600);
const HOUR_US: u64 = 3_600_000_000;

fn per_hour(burst: u32) -> RemoteQuota {
    RemoteQuota::new(HOUR, burst)
}

fn check(store: &std::sync::Arc<MemoryStore>, bucket: &str, quota: &RemoteQuota) -> Decision {
    block_on(decide(store, bucket, quota)).unwrap()
}

fn limiter(store: &std::sync::Arc<MemoryStore>, interval: Duration, burst: u32, on_error: OnError) -> SharedLimiter {
    let policy = SharedPolicy { namespace: "ratelimit".into(), timeout: Duration::from_secs(1), on_error };
    SharedLimiter::new(Box::new(store.clone()), "per-client", interval, burst, policy)
}

#[test]
fn a_step_follows_the_script() {
    let now = START_US;
    let allowed = step(now, None, 1000, 3);
    assert_eq!(allowed, Step::Allowed { remaining: 2, tat: now + 1000, ttl: Duration::from_millis(1) });
    let past = step(now, Some(now - 5_000_000), 1000, 3);
    assert_eq!(past, allowed, "a TAT in the past counts from now");
    let third = step(now, Some(now + 2000), 1000, 3);
    assert_eq!(third, Step::Allowed { remaining: 0, tat: now + 3000, ttl: Duration::from_millis(3) });
    assert_eq!(step(now, Some(now + 3000), 1000, 3), Step::Limited { wait_us: 1000 });
    assert_eq!(step(now, Some(now + 3500), 1000, 3), Step::Limited { wait_us: 1500 });
    let ttl = step(now, Some(now + 1), 1000, 3);
    assert_eq!(ttl, Step::Allowed { remaining: 1, tat: now + 1001, ttl: Duration::from_millis(2) }, "TTL rounds up");
}

#[test]
fn a_burst_is_allowed_then_limited_with_the_right_wait() {
    let store = MemoryStore::new();
    let quota = per_hour(3);
    assert_eq!(check(&store, "{a}", &quota), Decision::Allowed { remaining: 2 });
    assert_eq!(check(&store, "{a}", &quota), Decision::Allowed { remaining: 1 });
    assert_eq!(check(&store, "{a}", &quota), Decision::Allowed { remaining: 0 });
    assert_eq!(check(&store, "{a}", &quota), Decision::Limited { wait: HOUR });
    assert_eq!(check(&store, "{b}", &quota), Decision::Allowed { remaining: 2 }, "another bucket");
    let (tat, ttl) = store.entry("{a}").unwrap();
    assert_eq!(tat, (START_US + 3 * HOUR_US).to_string(), "decimal µs since the epoch");
    assert_eq!(ttl, 3 * HOUR, "the key expires when the bucket is full again");
}

#[test]
fn a_refused_request_writes_nothing() {
    let store = MemoryStore::new();
    let quota = per_hour(1);
    check(&store, "{r}", &quota);
    let before = store.entry("{r}");
    store.advance(Duration::from_secs(60));
    assert_eq!(check(&store, "{r}", &quota), Decision::Limited { wait: HOUR - Duration::from_secs(60) });
    assert_eq!(store.entry("{r}").map(|e| e.0), before.map(|e| e.0));
    assert_eq!(store.conflicts(), 0);
}

#[test]
fn the_bucket_refills_as_time_passes() {
    // 10/s, burst 2: one request's share is 100 ms.
    let store = MemoryStore::new();
    let quota = RemoteQuota::new(Duration::from_millis(100), 2);
    assert_eq!(check(&store, "{f}", &quota), Decision::Allowed { remaining: 1 });
    assert_eq!(check(&store, "{f}", &quota), Decision::Allowed { remaining: 0 });
    assert_eq!(check(&store, "{f}", &quota), Decision::Limited { wait: Duration::from_millis(100) });
    store.advance(Duration::from_millis(40));
    assert_eq!(check(&store, "{f}", &quota), Decision::Limited { wait: Duration::from_millis(60) });
    store.advance(Duration::from_millis(60));
    assert_eq!(check(&store, "{f}", &quota), Decision::Allowed { remaining: 0 }, "one share back");
    store.advance(Duration::from_millis(250));
    assert_eq!(check(&store, "{f}", &quota), Decision::Allowed { remaining: 1 });
    store.advance(Duration::from_secs(1));
    assert_eq!(store.entry("{f}"), None, "full again, so expired");
    assert_eq!(check(&store, "{f}", &quota), Decision::Allowed { remaining: 1 }, "a fresh bucket");
}

#[test]
fn a_bucket_that_is_not_a_time_is_a_backend_error() {
    let store = MemoryStore::new();
    store.put("{bad}", b"soon");
    let err = block_on(decide(&store, "{bad}", &per_hour(1))).unwrap_err();
    assert_eq!(err.kind, "backend");
    assert!(err.message.contains("holds \"soon\""), "{}", err.message);
}

#[test]
fn endless_conflicts_give_up_after_the_bounded_attempts() {
    let store = MemoryStore::new();
    store.always_conflict();
    let err = block_on(decide(&store, "{busy}", &per_hour(5))).unwrap_err();
    assert_eq!(err.kind, "backend");
    assert!(err.message.contains("16 compare-and-set attempts"), "{}", err.message);
    assert_eq!((store.gets(), store.conflicts()), (MAX_ATTEMPTS, MAX_ATTEMPTS));
    let denied = limiter(&store, HOUR, 5, OnError::Deny);
    assert_eq!(block_on(denied.check(&None)), Verdict::FailClosed("backend"), "through on_error");
}

#[test]
fn the_limiter_switches_to_compare_and_set_once_and_remembers() {
    let store = MemoryStore::new();
    let limiter = limiter(&store, HOUR, 2, OnError::Deny);
    assert!(!limiter.uses_compare_and_set());
    let key = Some("10.0.0.1".to_string());
    assert_eq!(block_on(limiter.check(&key)), Verdict::Decided(Decision::Allowed { remaining: 1 }));
    assert!(limiter.uses_compare_and_set());
    assert_eq!(block_on(limiter.check(&key)), Verdict::Decided(Decision::Allowed { remaining: 0 }));
    assert_eq!(block_on(limiter.check(&key)), Verdict::Decided(Decision::Limited { wait: HOUR }));
    assert_eq!(block_on(limiter.check(&None)), Verdict::Decided(Decision::Allowed { remaining: 1 }));
    assert_eq!(store.evals(), 1, "eval was asked once, not per request");
    assert!(store.entry("{per-client/10.0.0.1}").is_some(), "the script's bucket name");
    assert_eq!(limiter.outage_totals(), crate::outage::Counts::default(), "switching is no failure");
}

#[test]
fn a_failing_store_goes_through_on_error() {
    let store = MemoryStore::new();
    let open = limiter(&store, HOUR, 2, OnError::Allow);
    let closed = limiter(&store, HOUR, 2, OnError::Deny);
    store.go_down();
    assert_eq!(block_on(open.check(&None)), Verdict::FailOpen("connect"));
    assert_eq!(block_on(closed.check(&None)), Verdict::FailClosed("connect"));
    assert_eq!(open.outage_totals(), crate::outage::Counts { allowed: 1, denied: 0 });
}

#[test]
fn two_hundred_concurrent_decisions_on_a_bucket_of_fifty_allow_exactly_fifty() {
    let store = MemoryStore::new();
    // Each read takes a while, so decisions overlap and swaps conflict.
    store.pause_reads(Duration::from_micros(200));
    let limiter = limiter(&store, HOUR, 50, OnError::Deny);
    let (threads, each) = (20, 10);
    let start = Barrier::new(threads);
    let verdicts: Vec<Verdict> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (limiter, start) = (&limiter, &start);
                scope.spawn(move || {
                    start.wait();
                    (0..each).map(|_| block_on(limiter.check(&None))).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let allowed = verdicts.iter().filter(|v| matches!(v, Verdict::Decided(Decision::Allowed { .. }))).count();
    let limited = verdicts.iter().filter(|v| matches!(v, Verdict::Decided(Decision::Limited { .. }))).count();
    let gave_up = verdicts.iter().filter(|v| **v == Verdict::FailClosed("backend")).count();
    assert_eq!(allowed, 50, "{limited} limited, {gave_up} gave up after {MAX_ATTEMPTS} conflicts");
    assert_eq!(allowed + limited + gave_up, 200, "every decision is one of the three");
    assert!(store.conflicts() > 0, "the decisions never raced");
    assert_eq!(store.entry("{per-client}").unwrap().0, (START_US + 50 * HOUR_US).to_string());
}

#[test]
fn the_script_and_compare_and_set_share_one_bucket_in_redis() {
    let redis = RedisServer::start();
    let store = RedisStore::new(&redis);
    let quota = per_hour(4);
    let keys = ["{mixed}".to_string()];
    let script = || decision(&block_on(store.eval(SCRIPT, &keys, quota.args())).unwrap()).unwrap();
    let swapped = || block_on(decide(&store, "{mixed}", &quota)).unwrap();
    assert_eq!(script(), Decision::Allowed { remaining: 3 });
    assert_eq!(swapped(), Decision::Allowed { remaining: 2 });
    assert_eq!(script(), Decision::Allowed { remaining: 1 });
    assert_eq!(swapped(), Decision::Allowed { remaining: 0 });
    let Decision::Limited { wait } = swapped() else { panic!("a fifth request allowed") };
    assert!(wait > HOUR - Duration::from_secs(10) && wait <= HOUR, "{wait:?}");
    assert!(matches!(script(), Decision::Limited { .. }));
    let pttl: i64 = redis::cmd("PTTL").arg("{mixed}").query(&mut redis.connect()).unwrap();
    assert!(pttl > 4 * 3_590_000 && pttl <= 4 * 3_600_000, "PTTL {pttl}: until full again");
}
