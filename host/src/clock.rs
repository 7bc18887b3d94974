//! The monotonic clock the request path times plugin calls with, read as
//! nanoseconds in a `u64`.
//!
//! `std::time::Instant` reads the same clock (`CLOCK_MONOTONIC`), but
//! turning two of them into a `Duration` and that into nanoseconds
//! (`Timespec` subtraction with its checks, a `u128` product) cost about as
//! much as the clock read itself: per plugin call, twice per filter. Here
//! the difference of two readings is one subtraction.

/// Nanoseconds on the monotonic clock (since boot; only differences mean
/// anything). `u64` nanoseconds last 584 years.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on
    // every system covet runs on, so the call cannot fail (and if it did,
    // `ts` stays zero: a zero duration, never undefined behaviour).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nanoseconds_forward() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now_ns();
        assert!(b >= a + 20_000_000, "slept 20 ms, the clock moved {} ns", b - a);
    }
}
