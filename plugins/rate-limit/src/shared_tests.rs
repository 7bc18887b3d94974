//! [`SharedLimiter`] over a real redis-server: decisions, the plugin's own
//! timeout (a frozen server), and both `on_error` policies (a dead server).

use covet_plugin_api::testing::block_on;

use super::*;
use crate::test_redis::{RedisServer, RedisStore};

fn limiter(redis: &RedisServer, burst: u32, timeout: Duration, on_error: OnError) -> SharedLimiter {
    let policy = SharedPolicy { namespace: "ratelimit".into(), timeout, on_error };
    let store = Box::new(RedisStore::new(redis));
    SharedLimiter::new(store, "per-client", Duration::from_secs(3600), burst, policy)
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn redis_decides_while_it_answers() {
    let redis = RedisServer::start();
    let limiter = limiter(&redis, 2, SECOND, OnError::Deny);
    let key = Some("10.0.0.1".to_string());
    assert_eq!(block_on(limiter.check(&key)), Verdict::Decided(Decision::Allowed { remaining: 1 }));
    assert_eq!(block_on(limiter.check(&key)), Verdict::Decided(Decision::Allowed { remaining: 0 }));
    assert!(matches!(block_on(limiter.check(&key)), Verdict::Decided(Decision::Limited { .. })));
    assert_eq!(block_on(limiter.check(&None)), Verdict::Decided(Decision::Allowed { remaining: 1 }));
    assert_eq!(limiter.outage_totals(), crate::outage::Counts::default());
}

#[test]
fn a_dead_redis_fails_open_or_closed_as_configured_and_is_counted() {
    let mut redis = RedisServer::start();
    let open = limiter(&redis, 1, SECOND, OnError::Allow);
    let closed = limiter(&redis, 1, SECOND, OnError::Deny);
    redis.kill();
    let key = Some("k".to_string());
    for _ in 0..3 {
        assert_eq!(block_on(open.check(&key)), Verdict::FailOpen("connect"));
    }
    assert_eq!(block_on(closed.check(&key)), Verdict::FailClosed("connect"));
    assert_eq!(open.outage_totals(), crate::outage::Counts { allowed: 3, denied: 0 });
    assert_eq!(closed.outage_totals(), crate::outage::Counts { allowed: 0, denied: 1 });
}

#[test]
fn a_frozen_redis_is_cut_off_by_the_timeout() {
    let redis = RedisServer::start();
    let open = limiter(&redis, 1, Duration::from_millis(50), OnError::Allow);
    let closed = limiter(&redis, 1, Duration::from_millis(50), OnError::Deny);
    redis.signal("STOP");
    let key = Some("k".to_string());
    let verdicts = (block_on(open.check(&key)), block_on(closed.check(&key)));
    redis.signal("CONT");
    assert_eq!(verdicts, (Verdict::FailOpen("timeout"), Verdict::FailClosed("timeout")));
    // The cut-off calls still ran once the server woke (they may count), so ask for another key.
    let other = Some("other".to_string());
    assert_eq!(block_on(open.check(&other)), Verdict::Decided(Decision::Allowed { remaining: 0 }), "back again");
}
