//! A lock-free latency histogram: fixed bucket bounds, one relaxed atomic
//! add per observation, read as Prometheus cumulative buckets.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Bucket upper bounds in nanoseconds: 10 µs … 10 s.
const BOUNDS_NS: [u64; 18] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Latency histogram with Prometheus' default-like buckets, in seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket counts (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// A copy of a histogram for exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Sum of observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// `(upper bound in seconds, cumulative count)`, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        self.observe_ns(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one observation of `ns` nanoseconds.
    pub fn observe_ns(&self, ns: u64) {
        let index = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Cumulative buckets, sum and count.
    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BOUNDS_NS.len() + 1);
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = BOUNDS_NS.get(i).map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
            buckets.push((bound, cumulative));
        }
        Snapshot { sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, count: cumulative, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.00001, 2), "5 µs and exactly 10 µs are ≤ 10 µs");
        let at_5ms = s.buckets.iter().find(|(b, _)| *b == 0.005).unwrap();
        assert_eq!(at_5ms.1, 3);
        assert_eq!(*s.buckets.last().unwrap(), (f64::INFINITY, 4));
        assert!((s.sum - 60.003015).abs() < 1e-9, "sum {}", s.sum);
    }
}
