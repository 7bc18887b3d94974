//! [`SharedLimiter`] over a real redis-server: decisions, the plugin's own
//! timeout (a frozen server), and both `on_error` policies (a dead server).
//! The [`Store`] here runs each call on a thread of its own with the sync
//! `redis` client, so a hung call does not block the timer racing it.

use std::{
    pin::pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Wake, Waker},
    thread::{self, Thread},
};

use super::*;
use crate::test_redis::RedisServer;

/// Runs `f` on a new thread; the future completes with its result.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> BoxFuture<'static, T> {
    type Slot<T> = Arc<Mutex<(Option<T>, Option<Waker>)>>;
    let slot: Slot<T> = Arc::new(Mutex::new((None, None)));
    let filled = Arc::clone(&slot);
    thread::spawn(move || {
        let value = f();
        let mut slot = filled.lock().unwrap_or_else(PoisonError::into_inner);
        slot.0 = Some(value);
        if let Some(waker) = slot.1.take() {
            waker.wake();
        }
    });
    Box::pin(std::future::poll_fn(move |cx| {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }))
}

/// Polls `future` to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        thread::park();
    }
}

/// The store over the sync `redis` client, one connection per call.
struct RedisStore {
    url: String,
}

impl Store for RedisStore {
    fn eval<'a>(
        &'a self,
        script: &'static str,
        keys: &'a [String],
        args: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>> {
        let (url, keys, args) = (self.url.clone(), keys.to_vec(), args.to_vec());
        on_thread(move || {
            let run = || -> redis::RedisResult<Vec<i64>> {
                let mut conn = redis::Client::open(url)?.get_connection()?;
                redis::cmd("EVAL").arg(script).arg(keys.len()).arg(keys).arg(args).query(&mut conn)
            };
            run().map_err(|e| {
                let kind = if e.is_io_error() || e.is_connection_refusal() { "connect" } else { "backend" };
                StoreError { kind, message: e.to_string() }
            })
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        on_thread(move || thread::sleep(duration))
    }
}

fn limiter(redis: &RedisServer, burst: u32, timeout: Duration, on_error: OnError) -> SharedLimiter {
    let policy = RedisPolicy { namespace: "ratelimit".into(), timeout, on_error };
    let store = Box::new(RedisStore { url: redis.url() });
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
