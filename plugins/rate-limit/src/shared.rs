//! The Redis-backed limiter: one `eval` of the GCRA script per request
//! through the host's shared state, raced against the plugin's own timeout,
//! and the `on_error` policy for when it fails.
//!
//! [`Store`] is what the limiter needs from the host: the shared state's
//! `eval` in the plugin's namespace, and a timer. The plugin implements it
//! over the host services handle; the tests over a real redis-server.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use crate::{
    backend::{OnError, RedisPolicy},
    limiter::{BucketKey, Decision},
    outage::Outage,
    remote::{RemoteQuota, SCRIPT, bucket_name, decision},
};

/// A boxed `Send` future, as [`Store`] returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a Redis check gave no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreError {
    /// A short stable name (`timeout`, `connect`, `backend`, `reply`): the 503's `reason`.
    pub kind: &'static str,
    /// The full text, for the log.
    pub message: String,
}

/// The host services the Redis limiter runs on.
pub(crate) trait Store: Send + Sync {
    /// Runs `script` atomically with `keys` and `args` in the plugin's
    /// namespace; the reply must be a list of integers.
    fn eval<'a>(
        &'a self,
        script: &'static str,
        keys: &'a [String],
        args: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>>;
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// What the plugin does with one request once Redis has been asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Redis decided.
    Decided(Decision),
    /// Redis failed and `on_error: allow`: the request goes on, unlimited.
    FailOpen(&'static str),
    /// Redis failed and `on_error: deny`: the request gets a 503.
    FailClosed(&'static str),
}

/// A limiter whose buckets live in Redis, shared by every host using it.
pub(crate) struct SharedLimiter {
    store: Box<dyn Store>,
    instance: String,
    quota: RemoteQuota,
    policy: RedisPolicy,
    outage: Outage,
}

impl SharedLimiter {
    /// A limiter for instance `instance` (its buckets' names), one request
    /// every `interval` with `burst` at once.
    pub fn new(store: Box<dyn Store>, instance: &str, interval: Duration, burst: u32, policy: RedisPolicy) -> Self {
        let quota = RemoteQuota::new(interval, burst);
        SharedLimiter { store, instance: instance.to_owned(), quota, policy, outage: Outage::new(instance) }
    }

    /// Takes one request out of `key`'s bucket in Redis, or applies `on_error`.
    pub async fn check(&self, key: &BucketKey) -> Verdict {
        match self.ask(key).await {
            Ok(decision) => {
                self.outage.answered();
                Verdict::Decided(decision)
            }
            Err(error) => {
                self.outage.failed(self.policy.on_error, &error.message);
                match self.policy.on_error {
                    OnError::Allow => Verdict::FailOpen(error.kind),
                    OnError::Deny => Verdict::FailClosed(error.kind),
                }
            }
        }
    }

    /// Requests decided without Redis so far.
    #[cfg(test)]
    pub fn outage_totals(&self) -> crate::outage::Counts {
        self.outage.totals()
    }

    /// One round trip, or a `timeout` error once `policy.timeout` has passed.
    async fn ask(&self, key: &BucketKey) -> Result<Decision, StoreError> {
        let keys = [bucket_name(&self.instance, key)];
        let call = self.store.eval(SCRIPT, &keys, self.quota.args());
        match first(call, self.store.sleep(self.policy.timeout)).await {
            First::Left(Ok(reply)) => decision(&reply).map_err(|message| StoreError { kind: "reply", message }),
            First::Left(Err(error)) => Err(error),
            First::Right(()) => Err(StoreError {
                kind: "timeout",
                message: format!(
                    "no answer within redis.timeout ({})",
                    humantime::format_duration(self.policy.timeout)
                ),
            }),
        }
    }
}

/// Which of two futures finished first.
enum First<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures until one finishes; the other is dropped (cancelled).
fn first<A: Future + Unpin, B: Future + Unpin>(mut a: A, mut b: B) -> impl Future<Output = First<A::Output, B::Output>> {
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if let Poll::Ready(value) = Pin::new(&mut a).poll(cx) {
            return Poll::Ready(First::Left(value));
        }
        if let Poll::Ready(value) = Pin::new(&mut b).poll(cx) {
            return Poll::Ready(First::Right(value));
        }
        Poll::Pending
    })
}

#[cfg(test)]
#[path = "shared_tests.rs"]
mod tests;
