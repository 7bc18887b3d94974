//! Host metrics: request counters and latency, per-plugin counters (kept on
//! the registry's slots), and their Prometheus text exposition.

pub mod cache;
mod histogram;

use std::sync::atomic::{AtomicU64, Ordering};

pub use histogram::{Histogram, Snapshot};

/// Host-wide request metrics.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    pub by_class: [AtomicU64; 5],
    /// Request latency, from the head read to the response handed to hyper.
    pub latency: Histogram,
}

impl RequestMetrics {
    /// Counts one finished request.
    pub fn record(&self, status: u16, elapsed: std::time::Duration) {
        self.record_ns(status, u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// [`Self::record`] with the latency in nanoseconds ([`crate::clock`]).
    pub fn record_ns(&self, status: u16, elapsed_ns: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.latency.observe_ns(elapsed_ns);
    }
}
