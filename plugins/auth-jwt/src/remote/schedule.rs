//! When to fetch a remote key set: the pure state machine behind the refresh
//! loop and the unknown-kid refresh, with the clock passed in.
//!
//! - After a good fetch, the next one is due after `refresh_interval`, or
//!   sooner when the response's `Cache-Control: max-age` says so (never
//!   sooner than `min_refresh_interval`).
//! - After a failed fetch, retries back off from `min_refresh_interval`,
//!   doubling, up to `refresh_interval`.
//! - A token with an unknown kid may start a fetch at most once per
//!   `min_refresh_interval` (counted from the last fetch of any kind).

use std::time::{Duration, Instant};

/// The refresh timing of one [`super::RemoteKeys`].
#[derive(Debug, Clone)]
pub struct Schedule {
    refresh: Duration,
    min: Duration,
    last_start: Option<Instant>,
    next_due: Instant,
    consecutive_failures: u32,
}

impl Schedule {
    /// A schedule whose first fetch is due at `now`.
    pub fn new(refresh: Duration, min: Duration, now: Instant) -> Schedule {
        Schedule { refresh, min: min.min(refresh), last_start: None, next_due: now, consecutive_failures: 0 }
    }

    /// Whether an unknown kid may start a fetch at `now`.
    pub fn unknown_kid_may_fetch(&self, now: Instant) -> bool {
        self.last_start.is_none_or(|last| now.saturating_duration_since(last) >= self.min)
    }

    /// A fetch starts at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
    }

    /// The fetch that started last succeeded at `now`; `max_age` from its response.
    pub fn succeeded(&mut self, now: Instant, max_age: Option<Duration>) {
        self.consecutive_failures = 0;
        let wait = max_age.map_or(self.refresh, |age| age.clamp(self.min, self.refresh));
        self.next_due = now + wait;
    }

    /// The fetch that started last failed at `now`: retry with back-off.
    pub fn failed(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let doublings = self.consecutive_failures.saturating_sub(1).min(20);
        let wait = self.min.saturating_mul(1 << doublings).min(self.refresh);
        self.next_due = now + wait;
    }

    /// How long the refresh loop sleeps from `now` before the next fetch.
    pub fn wait(&self, now: Instant) -> Duration {
        self.next_due.saturating_duration_since(now)
    }

    /// Failed fetches since the last good one.
    #[cfg(test)]
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(10);
    const REFRESH: Duration = Duration::from_secs(300);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn first_fetch_is_due_at_once_and_then_every_refresh_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(REFRESH, MIN, t0);
        assert_eq!(s.wait(t0), Duration::ZERO);
        s.started(t0);
        s.succeeded(t0 + secs(1), None);
        assert_eq!(s.wait(t0 + secs(1)), REFRESH);
        assert_eq!(s.wait(t0 + secs(100)), secs(201));
    }

    #[test]
    fn max_age_is_honoured_within_the_bounds() {
        let t0 = Instant::now();
        let mut s = Schedule::new(REFRESH, MIN, t0);
        s.succeeded(t0, Some(secs(60)));
        assert_eq!(s.wait(t0), secs(60));
        s.succeeded(t0, Some(secs(1)));
        assert_eq!(s.wait(t0), MIN, "max-age below the minimum");
        s.succeeded(t0, Some(secs(86_400)));
        assert_eq!(s.wait(t0), REFRESH, "max-age above refresh_interval");
    }

    #[test]
    fn unknown_kid_fetches_at_most_once_per_min_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(REFRESH, MIN, t0);
        assert!(s.unknown_kid_may_fetch(t0), "nothing fetched yet");
        s.started(t0);
        assert!(!s.unknown_kid_may_fetch(t0 + secs(9)));
        assert!(s.unknown_kid_may_fetch(t0 + secs(10)));
        s.started(t0 + secs(12));
        assert!(!s.unknown_kid_may_fetch(t0 + secs(15)));
    }

    #[test]
    fn failures_back_off_from_the_minimum_up_to_the_refresh_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(REFRESH, MIN, t0);
        let waits: Vec<u64> = (0..7)
            .map(|_| {
                s.failed(t0);
                s.wait(t0).as_secs()
            })
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(s.consecutive_failures(), 7);
        s.succeeded(t0, None);
        assert_eq!((s.consecutive_failures(), s.wait(t0)), (0, REFRESH));
        for _ in 0..100 {
            s.failed(t0);
        }
        assert_eq!(s.wait(t0), REFRESH, "no overflow after many failures");
    }
}
