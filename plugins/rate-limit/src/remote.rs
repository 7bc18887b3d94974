//! GCRA in the host's shared state: the bucket of a request lives there, so
//! everything sharing that state draws from the same bucket. With Redis, one
//! `eval` of [`SCRIPT`] per request reads the bucket, decides and writes it
//! back atomically, on Redis's own clock; a state without `eval` gets the
//! same arithmetic over get + compare-and-set (`cas.rs`). Both keep the
//! bucket as one key, named by [`bucket_name`], holding its theoretical
//! arrival time in decimal microseconds since the Unix epoch.

use std::time::Duration;

use crate::limiter::{BucketKey, Decision};

/// The Lua script (see its header for the arguments and the reply).
pub(crate) const SCRIPT: &str = include_str!("gcra.lua");

/// The fastest rate the script can express: its times are whole microseconds,
/// so the emission interval is at least 1 µs.
pub(crate) const MAX_RATE_PER_SECOND: u64 = 1_000_000;

/// The limit as the script takes it (its two arguments, formatted once),
/// and as numbers for the compare-and-set path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteQuota {
    /// `[interval_us, burst]`, the script's ARGV.
    args: [String; 2],
    interval_us: u64,
    burst: u32,
}

impl RemoteQuota {
    /// The quota for one request every `interval` with `burst` at once.
    /// `interval` is rounded to the microsecond (at least 1 µs; the config
    /// refuses rates that would need less).
    pub fn new(interval: Duration, burst: u32) -> RemoteQuota {
        let micros = u64::try_from(interval.as_nanos().div_ceil(1000).max(1)).unwrap_or(u64::MAX);
        RemoteQuota { args: [micros.to_string(), burst.to_string()], interval_us: micros, burst }
    }

    /// The script's ARGV.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The emission interval (one request's share of the bucket), in whole microseconds.
    pub fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// The Redis key of a bucket, `{<instance>/<client key>}` (the shared bucket
/// of keyless requests is `{<instance>}`). The braces are a Redis Cluster hash
/// tag: the whole bucket name picks the slot, so buckets spread over the
/// cluster while each script call touches one key of one slot. The host adds
/// its own prefix and the namespace in front (`covet:ratelimit:{…}`).
pub(crate) fn bucket_name(instance: &str, key: &BucketKey) -> String {
    match key {
        Some(key) => format!("{{{instance}/{key}}}"),
        None => format!("{{{instance}}}"),
    }
}

/// Reads the script's reply `{allowed, remaining, wait_us}`.
pub(crate) fn decision(reply: &[i64]) -> Result<Decision, String> {
    let &[allowed, remaining, wait_us] = reply else {
        return Err(format!("the rate-limit script answered {reply:?}, expected 3 integers"));
    };
    match allowed {
        1 => Ok(Decision::Allowed { remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX) }),
        0 => Ok(Decision::Limited { wait: Duration::from_micros(u64::try_from(wait_us.max(0)).unwrap_or(0)) }),
        other => Err(format!("the rate-limit script answered allowed={other}, expected 0 or 1")),
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
