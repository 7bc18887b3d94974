//! GCRA over `get` + `compare_and_set`, for a shared state without `eval`
//! (the host's in-process state, and the process backend that serves it to
//! the children of a multi-process host): the same bucket key and value as
//! `gcra.lua` (the theoretical arrival time, TAT, in decimal microseconds
//! since the Unix epoch) and the same arithmetic, on the host's wall clock
//! (every process of one host reads the same one).
//!
//! Each decision reads the bucket, computes what the script would, and, when
//! the request is allowed, writes the new TAT only if the bucket still holds
//! what was read. A lost race reads again, at most [`MAX_ATTEMPTS`] times;
//! a refusal writes nothing, as the script does.

use std::time::Duration;

use crate::{
    limiter::Decision,
    remote::RemoteQuota,
    shared::{Store, StoreError},
};

/// Reads and swaps one decision may take before it gives up as a `backend`
/// error (which goes through `on_error`): only a bucket hammered by more
/// concurrent requests than this, each winning a race, gets there.
pub(crate) const MAX_ATTEMPTS: usize = 16;

/// What GCRA decides for one request, given the bucket as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Refused; the next request fits in `wait_us`. The bucket is not written.
    Limited { wait_us: u64 },
    /// Allowed with `remaining` more fitting now: write `tat`, expiring after `ttl`.
    Allowed { remaining: u64, tat: u64, ttl: Duration },
}

/// `gcra.lua`'s arithmetic: the request at `now` (µs) against a bucket
/// holding `stored` (its TAT, `None`: absent), one request per `interval`
/// µs (at least 1), `burst` at once.
pub(crate) fn step(now: u64, stored: Option<u64>, interval: u64, burst: u32) -> Step {
    let (now, interval) = (i128::from(now), i128::from(interval.max(1)));
    let tat = i128::from(stored.unwrap_or(0)).max(now);
    let new_tat = tat + interval;
    let allow_at = new_tat - interval * i128::from(burst);
    if now < allow_at {
        return Step::Limited { wait_us: clamp(allow_at - now) };
    }
    // The key expires exactly when the bucket is full again, in whole milliseconds rounded up.
    let ttl = Duration::from_millis(clamp(new_tat - now).div_ceil(1000));
    Step::Allowed { remaining: clamp((now - allow_at) / interval), tat: clamp(new_tat), ttl }
}

fn clamp(value: i128) -> u64 {
    u64::try_from(value.max(0)).unwrap_or(u64::MAX)
}

/// Takes one request out of `bucket` in `store`: read, decide, swap; again
/// when another request swapped first.
pub(crate) async fn decide(store: &dyn Store, bucket: &str, quota: &RemoteQuota) -> Result<Decision, StoreError> {
    for _ in 0..MAX_ATTEMPTS {
        let stored = store.get(bucket).await?;
        let tat = stored.as_deref().map(|value| parse_tat(bucket, value)).transpose()?;
        match step(store.now_micros(), tat, quota.interval_us(), quota.burst()) {
            Step::Limited { wait_us } => return Ok(Decision::Limited { wait: Duration::from_micros(wait_us) }),
            Step::Allowed { remaining, tat, ttl } => {
                let new = tat.to_string().into_bytes();
                if store.compare_and_set(bucket, stored.as_deref(), new, ttl).await? {
                    return Ok(Decision::Allowed { remaining: u32::try_from(remaining).unwrap_or(u32::MAX) });
                }
            }
        }
    }
    Err(StoreError {
        kind: "backend",
        message: format!(
            "the bucket `{bucket}` changed under {MAX_ATTEMPTS} compare-and-set attempts in a row (too many concurrent requests on one key)"
        ),
    })
}

/// A bucket's value: decimal microseconds, as the script writes them.
fn parse_tat(bucket: &str, value: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(value).ok().and_then(|text| text.parse().ok()).ok_or_else(|| StoreError {
        kind: "backend",
        message: format!(
            "the bucket `{bucket}` holds {:?}, not a time in microseconds; delete it or use another namespace",
            String::from_utf8_lossy(value)
        ),
    })
}

#[cfg(test)]
#[path = "cas_tests.rs"]
mod tests;
