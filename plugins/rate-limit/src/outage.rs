//! Counting and reporting the requests decided without the shared state
//! (Redis, or the supervisor's): while the store fails, every request is let
//! through (`on_error: allow`) or refused (`deny`); both are counted, and
//! the failure is logged at most once per [`REPORT_EVERY`] (not once per
//! request) with the counts since the last report, plus one line when the
//! state answers again.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::backend::OnError;

/// The shortest time between two log lines about the same outage.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The counts one report carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Requests let through unlimited (fail-open).
    pub allowed: u64,
    /// Requests refused with a 503 (fail-closed).
    pub denied: u64,
}

/// The failure counters of one plugin instance.
pub(crate) struct Outage {
    instance: String,
    failing: AtomicBool,
    allowed: AtomicU64,
    denied: AtomicU64,
    total_allowed: AtomicU64,
    total_denied: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

impl Outage {
    pub fn new(instance: &str) -> Outage {
        Outage {
            instance: instance.to_owned(),
            failing: AtomicBool::new(false),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            total_allowed: AtomicU64::new(0),
            total_denied: AtomicU64::new(0),
            last_report: Mutex::new(None),
        }
    }

    /// Counts one request decided by `policy` because `store` (`Redis`,
    /// `the shared state`: the log's word for it) failed with `error`; logs
    /// when the last report is [`REPORT_EVERY`] old.
    pub fn failed(&self, policy: OnError, store: &str, error: &str) {
        self.failing.store(true, Ordering::Relaxed);
        let (window, total) = match policy {
            OnError::Allow => (&self.allowed, &self.total_allowed),
            OnError::Deny => (&self.denied, &self.total_denied),
        };
        window.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(1, Ordering::Relaxed);
        if let Some(counts) = self.take_if_due(Instant::now()) {
            eprintln!(
                "rate-limit `{}`: {store} failed: {error}; on_error: {policy}: {} requests let through unlimited and {} refused (503) since the last report",
                self.instance, counts.allowed, counts.denied
            );
        }
    }

    /// Notes a request `store` answered; logs once when that ends an outage.
    pub fn answered(&self, store: &str) {
        // One relaxed load per request while all is well.
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            let counts = self.take();
            *self.last_report.lock().unwrap_or_else(PoisonError::into_inner) = None;
            eprintln!(
                "rate-limit `{}`: {store} answers again; {} requests let through unlimited and {} refused (503) since the last report",
                self.instance, counts.allowed, counts.denied
            );
        }
    }

    /// Every request decided without the shared state since the instance started.
    #[cfg(test)]
    pub fn totals(&self) -> Counts {
        Counts { allowed: self.total_allowed.load(Ordering::Relaxed), denied: self.total_denied.load(Ordering::Relaxed) }
    }

    /// The window's counts when a report is due at `now` (then the window restarts).
    fn take_if_due(&self, now: Instant) -> Option<Counts> {
        let mut last = self.last_report.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < REPORT_EVERY) {
            return None;
        }
        *last = Some(now);
        Some(self.take())
    }

    fn take(&self) -> Counts {
        Counts { allowed: self.allowed.swap(0, Ordering::Relaxed), denied: self.denied.swap(0, Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_failure_then_at_most_once_per_period() {
        let outage = Outage::new("limiter");
        let start = Instant::now();
        outage.allowed.fetch_add(1, Ordering::Relaxed);
        assert_eq!(outage.take_if_due(start), Some(Counts { allowed: 1, denied: 0 }));
        outage.denied.fetch_add(4, Ordering::Relaxed);
        assert_eq!(outage.take_if_due(start + Duration::from_secs(1)), None, "too soon");
        let due = start + REPORT_EVERY;
        assert_eq!(outage.take_if_due(due), Some(Counts { allowed: 0, denied: 4 }), "the window's counts");
    }

    #[test]
    fn totals_count_every_decision_and_recovery_resets_the_window() {
        let outage = Outage::new("limiter");
        for _ in 0..3 {
            outage.failed(OnError::Allow, "Redis", "redis EVALSHA timed out after 30ms");
        }
        outage.failed(OnError::Deny, "the shared state", "connecting to the state server failed");
        assert_eq!(outage.totals(), Counts { allowed: 3, denied: 1 });
        outage.answered("Redis");
        assert!(!outage.failing.load(Ordering::Relaxed));
        assert_eq!(outage.take(), Counts::default(), "the recovery line took the window");
        assert!(outage.take_if_due(Instant::now()).is_some(), "the next failure is reported at once");
        assert_eq!(outage.totals(), Counts { allowed: 3, denied: 1 });
    }
}
