//! Which traces are recorded: parent-based with a ratio (OpenTelemetry's
//! `ParentBased(TraceIdRatioBased)`), with a per-route ratio that replaces
//! the default one. The ratio decision is a function of the trace id, so
//! every service using the same ratio agrees on a trace.

use opentelemetry::trace::TraceId;

/// The sampling policy (`telemetry.tracing` in the manifest).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    /// Share of new traces recorded, 0.0..=1.0.
    pub ratio: f64,
    /// Follow the caller's sampled flag when the request has a `traceparent`.
    pub parent_based: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler { ratio: 0.01, parent_based: true }
    }
}

impl Sampler {
    /// Whether a trace is recorded: the parent's flag when there is a parent
    /// and the sampler is parent-based, else the ratio (`route_ratio` when
    /// the route sets one) applied to the trace id.
    pub fn decide(&self, parent_sampled: Option<bool>, trace_id: TraceId, route_ratio: Option<f64>) -> bool {
        match parent_sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => by_ratio(route_ratio.unwrap_or(self.ratio), trace_id),
        }
    }
}

/// `TraceIdRatioBased`: the low 63 bits of the trace id against the ratio.
pub fn by_ratio(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    let low = u128::from_be_bytes(trace_id.to_bytes()) as u64;
    (low >> 1) < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_records_about_that_share_of_traces() {
        let sampler = Sampler { ratio: 0.1, parent_based: true };
        let kept = (0..20_000).filter(|_| sampler.decide(None, crate::ids::trace_and_span_id().0, None)).count();
        assert!((1_600..2_400).contains(&kept), "{kept}");
    }

    #[test]
    fn a_parent_decides_unless_the_sampler_ignores_parents() {
        let id = TraceId::from(5u128);
        assert!(Sampler { ratio: 0.0, parent_based: true }.decide(Some(true), id, None));
        assert!(!Sampler { ratio: 1.0, parent_based: true }.decide(Some(false), id, None));
        assert!(Sampler { ratio: 1.0, parent_based: false }.decide(Some(false), id, None));
    }

    #[test]
    fn a_route_ratio_replaces_the_default() {
        let sampler = Sampler { ratio: 0.0, parent_based: true };
        assert!(sampler.decide(None, TraceId::from(5u128), Some(1.0)));
        assert!(!Sampler { ratio: 1.0, parent_based: true }.decide(None, TraceId::from(5u128), Some(0.0)));
    }
}
