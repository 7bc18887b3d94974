//! The limiter whose buckets live in the host's shared state (`backend:
//! shared`): one `eval` of the GCRA script per request when the state is
//! Redis, else GCRA over get + compare-and-set (`cas.rs`); either raced
//! against the plugin's own timeout, with the `on_error` policy for when it
//! fails.
//!
//! Which of the two is decided once per plugin instance: it starts with
//! `eval`, and the first answer that the state does not support it
//! (`Unsupported`: the in-process state, or the process backend of a
//! multi-process host) switches the instance to get + compare-and-set for
//! good; that request is decided that way at once.
//!
//! [`Store`] is what the limiter needs from the host: the shared state's
//! `eval`, `get` and `compare_and_set` in the plugin's namespace, a timer and
//! the wall clock. The plugin implements it over the host services handle;
//! the tests over a real redis-server and over an in-memory double.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use crate::{
    backend::{OnError, SharedPolicy},
    cas,
    limiter::{BucketKey, Decision},
    outage::Outage,
    remote::{RemoteQuota, SCRIPT, bucket_name, decision},
};

/// A boxed `Send` future, as [`Store`] returns.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`StoreError::kind`] of an `eval` the shared state does not offer.
pub(crate) const UNSUPPORTED: &str = "unsupported";

/// Why a shared-state check gave no decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreError {
    /// A short stable name (`timeout`, `connect`, `backend`, `reply`,
    /// `misconfigured`): the 503's `reason`; [`UNSUPPORTED`] from `eval` only.
    pub kind: &'static str,
    /// The full text, for the log.
    pub message: String,
}

/// The host services the shared limiter runs on.
pub(crate) trait Store: Send + Sync {
    /// Runs `script` atomically with `keys` and `args` in the plugin's
    /// namespace; the reply must be a list of integers. A state without
    /// scripts answers an error of kind [`UNSUPPORTED`].
    fn eval<'a>(
        &'a self,
        script: &'static str,
        keys: &'a [String],
        args: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>>;
    /// The value of `key` in the plugin's namespace (`None`: absent or expired).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StoreError>>;
    /// Sets `key` to `new`, expiring after `ttl`, only if it holds `expected`
    /// (`None`: absent); whether it did.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// The wall clock: microseconds since the Unix epoch.
    fn now_micros(&self) -> u64;
}

/// What the plugin does with one request once the shared state has been asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The shared state decided.
    Decided(Decision),
    /// The shared state failed and `on_error: allow`: the request goes on, unlimited.
    FailOpen(&'static str),
    /// The shared state failed and `on_error: deny`: the request gets a 503.
    FailClosed(&'static str),
}

/// A limiter whose buckets live in the host's shared state, shared by
/// everything that uses the same state.
pub(crate) struct SharedLimiter {
    store: Box<dyn Store>,
    instance: String,
    quota: RemoteQuota,
    policy: SharedPolicy,
    outage: Outage,
    /// Set for good once the state answered `eval` with Unsupported.
    without_eval: AtomicBool,
}

impl SharedLimiter {
    /// A limiter for instance `instance` (its buckets' names), one request
    /// every `interval` with `burst` at once.
    pub fn new(store: Box<dyn Store>, instance: &str, interval: Duration, burst: u32, policy: SharedPolicy) -> Self {
        let quota = RemoteQuota::new(interval, burst);
        let outage = Outage::new(instance);
        let without_eval = AtomicBool::new(false);
        SharedLimiter { store, instance: instance.to_owned(), quota, policy, outage, without_eval }
    }

    /// Takes one request out of `key`'s bucket in the shared state, or applies `on_error`.
    pub async fn check(&self, key: &BucketKey) -> Verdict {
        match self.ask(key).await {
            Ok(decision) => {
                self.outage.answered(self.store_word());
                Verdict::Decided(decision)
            }
            Err(error) => {
                self.outage.failed(self.policy.on_error, self.store_word(), &error.message);
                match self.policy.on_error {
                    OnError::Allow => Verdict::FailOpen(error.kind),
                    OnError::Deny => Verdict::FailClosed(error.kind),
                }
            }
        }
    }

    /// Requests decided without the shared state so far.
    #[cfg(test)]
    pub fn outage_totals(&self) -> crate::outage::Counts {
        self.outage.totals()
    }

    /// Whether this instance has switched to get + compare-and-set.
    #[cfg(test)]
    pub fn uses_compare_and_set(&self) -> bool {
        self.without_eval.load(Ordering::Relaxed)
    }

    /// The decision, or a `timeout` error once `policy.timeout` has passed.
    async fn ask(&self, key: &BucketKey) -> Result<Decision, StoreError> {
        let call = Box::pin(self.decide(bucket_name(&self.instance, key)));
        match first(call, self.store.sleep(self.policy.timeout)).await {
            First::Left(result) => result,
            First::Right(()) => Err(StoreError {
                kind: "timeout",
                message: format!(
                    "no answer within shared.timeout ({})",
                    humantime::format_duration(self.policy.timeout)
                ),
            }),
        }
    }

    /// One `eval` of the script, or get + compare-and-set once the state has
    /// said it has no `eval` (then also for the request that learnt it).
    async fn decide(&self, bucket: String) -> Result<Decision, StoreError> {
        if self.without_eval.load(Ordering::Relaxed) {
            return cas::decide(self.store.as_ref(), &bucket, &self.quota).await;
        }
        let keys = [bucket];
        match self.store.eval(SCRIPT, &keys, self.quota.args()).await {
            Ok(reply) => decision(&reply).map_err(|message| StoreError { kind: "reply", message }),
            Err(error) if error.kind == UNSUPPORTED => {
                self.give_up_eval(&error.message);
                let [bucket] = keys;
                cas::decide(self.store.as_ref(), &bucket, &self.quota).await
            }
            Err(error) => Err(error),
        }
    }

    /// The log's word for the store: `Redis` while `eval` is used (as the
    /// lines read before other backends were shared), else `the shared state`.
    fn store_word(&self) -> &'static str {
        match self.without_eval.load(Ordering::Relaxed) {
            false => "Redis",
            true => "the shared state",
        }
    }

    /// Remembers that the state has no `eval`; says so in the log once.
    fn give_up_eval(&self, why: &str) {
        if !self.without_eval.swap(true, Ordering::Relaxed) {
            eprintln!(
                "rate-limit `{}`: the host's shared state runs no scripts ({why}); buckets are kept with get + compare_and_set from now on",
                self.instance
            );
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
