//! The retry budget of an upstream (Finagle's token budget): every request
//! deposits `percent / 100` of a token, every retry withdraws one, and both
//! expire after a 10 s window, so retries add at most `percent` % to the
//! traffic of the last 10 s. A reserve of `min_per_sec × 10` tokens keeps a
//! few retries possible when traffic is low.
//!
//! Tokens are kept in thousandths in ten one-second slices behind a mutex
//! held for a few additions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Slices in the window.
const SLICES: usize = 10;
/// One slice.
const SLICE: Duration = Duration::from_secs(1);
/// A token, in the integer unit the budget counts in.
const TOKEN: i64 = 1000;

/// An upstream's retry budget (see the module docs).
pub(crate) struct RetryBudget {
    inner: Mutex<Inner>,
    retries: AtomicU64,
    exhausted: AtomicU64,
}

struct Inner {
    origin: Instant,
    /// `(slice number, net deposits minus withdrawals)`, at `slice % SLICES`.
    slices: [(u64, i64); SLICES],
    /// What one request deposits.
    deposit: i64,
    /// Tokens always there (`min_per_sec` × window).
    reserve: i64,
}

impl Inner {
    fn slice(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        elapsed.as_secs() / SLICE.as_secs()
    }

    /// Adds `amount` to the current slice, clearing it first if it is stale.
    fn add(&mut self, now: Instant, amount: i64) {
        let n = self.slice(now);
        let slot = &mut self.slices[(n % SLICES as u64) as usize];
        if slot.0 != n {
            *slot = (n, 0);
        }
        slot.1 += amount;
    }

    /// Tokens available at `now`: the reserve plus the window's net deposits.
    fn balance(&self, now: Instant) -> i64 {
        let n = self.slice(now);
        let live = |&&(slice, _): &&(u64, i64)| slice <= n && n - slice < SLICES as u64;
        self.reserve + self.slices.iter().filter(live).map(|&(_, net)| net).sum::<i64>()
    }
}

fn deposit(percent: f64) -> i64 {
    (percent.max(0.0) * TOKEN as f64 / 100.0).round() as i64
}

fn reserve(min_per_sec: u32) -> i64 {
    i64::from(min_per_sec) * SLICES as i64 * TOKEN
}

impl RetryBudget {
    /// Retries may add `percent` % of requests, and `min_per_sec` per second always.
    pub(crate) fn new(percent: f64, min_per_sec: u32) -> RetryBudget {
        let inner = Inner {
            origin: Instant::now(),
            slices: [(0, 0); SLICES],
            deposit: deposit(percent),
            reserve: reserve(min_per_sec),
        };
        RetryBudget { inner: Mutex::new(inner), retries: AtomicU64::new(0), exhausted: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the budget (a reload); the window's deposits stay.
    pub(crate) fn set(&self, percent: f64, min_per_sec: u32) {
        let mut inner = self.lock();
        inner.deposit = deposit(percent);
        inner.reserve = reserve(min_per_sec);
    }

    /// Counts a request (first attempts only).
    pub(crate) fn on_request(&self) {
        self.on_request_at(Instant::now());
    }

    pub(crate) fn on_request_at(&self, now: Instant) {
        let mut inner = self.lock();
        let amount = inner.deposit;
        inner.add(now, amount);
    }

    /// Takes a token for one retry; `false` (counted) when the budget is spent.
    pub(crate) fn try_retry(&self) -> bool {
        self.try_retry_at(Instant::now())
    }

    pub(crate) fn try_retry_at(&self, now: Instant) -> bool {
        let mut inner = self.lock();
        if inner.balance(now) < TOKEN {
            drop(inner);
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        inner.add(now, -TOKEN);
        drop(inner);
        self.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Retries allowed since the budget was made.
    pub(crate) fn retries_total(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Retries refused because the budget was spent.
    pub(crate) fn exhausted_total(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
