//! W3C trace context (<https://www.w3.org/TR/trace-context/>): the ids a
//! span is known by across processes, read from `traceparent` and
//! `tracestate` and written back into outbound requests.
//!
//! `tracestate` is carried as the raw header value: covet adds no entry of
//! its own, so it is passed on byte for byte (and only parsed when a sampled
//! span is exported).

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanId, TraceId};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The identity of a span as it crosses processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace it belongs to (never zero).
    pub trace_id: TraceId,
    /// This span (never zero).
    pub span_id: SpanId,
    /// Whether the trace is sampled (the `01` flag).
    pub sampled: bool,
    /// The `tracestate` received with the trace, passed on unchanged.
    pub tracestate: Option<HeaderValue>,
}

/// A parent read from an incoming request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    /// The caller's trace.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the server span.
    pub span_id: SpanId,
    /// The caller's sampled flag.
    pub sampled: bool,
    /// The caller's `tracestate`.
    pub tracestate: Option<HeaderValue>,
}

impl Remote {
    /// The parent in `headers`, when `traceparent` is present and valid
    /// (an invalid one is ignored, as the specification asks: a new trace starts).
    #[inline]
    pub fn extract(headers: &HeaderMap) -> Option<Remote> {
        let (trace_id, span_id, sampled) = parse_traceparent(find(headers, &TRACEPARENT)?.as_bytes())?;
        let tracestate = find(headers, &TRACESTATE).filter(|v| !v.is_empty() && v.len() <= 512).cloned();
        Some(Remote { trace_id, span_id, sampled, tracestate })
    }
}

/// Most header names looked through one by one before asking the map.
const SCAN_UP_TO: usize = 12;

/// `headers.get(name)`, by comparing the names of a small map one by one:
/// a custom name is unequal to every standard one at the first compare,
/// cheaper than hashing `traceparent` (~130 instructions) on every request.
/// The names are scanned as a slice (`keys`), not with the map's iterator
/// (which also walks the extra values: ~50 instructions for one header);
/// only a name found is then looked up.
#[inline(always)]
fn find<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    if headers.keys_len() > SCAN_UP_TO || headers.keys().any(|n| n == name) {
        return headers.get(name);
    }
    None
}

impl SpanContext {
    /// `00-{trace}-{span}-{flags}`.
    pub fn traceparent(&self) -> HeaderValue {
        traceparent(&self.trace_id.to_bytes(), self.span_id, self.sampled)
    }

    /// Sets `traceparent` (and `tracestate`, when the trace has one) on an
    /// outbound request, replacing what was there: the receiver's parent is this span.
    pub fn inject(&self, headers: &mut HeaderMap) {
        inject(headers, self.traceparent(), self.tracestate.as_ref());
    }
}

/// `00-{trace}-{span}-{flags}`. Written digit by digit into a stack
/// buffer: through `format!` (`{:032x}` of a `u128`) it cost ~3,300
/// instructions per outbound request, nine tenths of a client span.
pub(crate) fn traceparent(trace_id: &[u8; 16], span_id: SpanId, sampled: bool) -> HeaderValue {
    let mut text = [0u8; 55];
    text[..3].copy_from_slice(b"00-");
    hex_into(&mut text[3..35], trace_id);
    text[35] = b'-';
    hex_into(&mut text[36..52], &span_id.to_bytes());
    text[52] = b'-';
    text[53..].copy_from_slice(if sampled { b"01" } else { b"00" });
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
}

/// Sets `traceparent` and `tracestate` (removed when there is none).
pub(crate) fn inject(headers: &mut HeaderMap, traceparent: HeaderValue, tracestate: Option<&HeaderValue>) {
    headers.insert(TRACEPARENT, traceparent);
    match tracestate {
        Some(state) => {
            headers.insert(TRACESTATE, state.clone());
        }
        None => {
            headers.remove(TRACESTATE);
        }
    }
}

/// Parses a `traceparent` value: version `00` exactly (55 bytes); a higher
/// version is read by its first four fields, as the specification asks;
/// version `ff`, zero ids, upper-case hex and bad lengths are refused.
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex_u8(&value[0..2])?;
    if version == 0xff || (version == 0 && value.len() != 55) || (version > 0 && value.len() > 55 && value[55] != b'-') {
        return None;
    }
    let trace_id = u128::from_str_radix(lower_hex(&value[3..35])?, 16).ok()?;
    let span_id = u64::from_str_radix(lower_hex(&value[36..52])?, 16).ok()?;
    let flags = hex_u8(&value[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some((TraceId::from(trace_id), SpanId::from(span_id), flags & 1 == 1))
}

/// Writes `bytes` as lower-case hex into `out` (twice their length).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

fn lower_hex(bytes: &[u8]) -> Option<&str> {
    bytes.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)).then(|| std::str::from_utf8(bytes).ok()).flatten()
}

fn hex_u8(bytes: &[u8]) -> Option<u8> {
    u8::from_str_radix(lower_hex(bytes)?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses_and_formats_back_the_same() {
        let (trace_id, span_id, sampled) = parse_traceparent(VALID.as_bytes()).unwrap();
        assert!(sampled);
        let ctx = SpanContext { trace_id, span_id, sampled, tracestate: None };
        assert_eq!(ctx.traceparent(), VALID);
    }

    #[test]
    fn traceparent_writes_every_digit_with_leading_zeros() {
        let ctx = SpanContext {
            trace_id: TraceId::from(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128),
            span_id: SpanId::from(0x00a0_0000_0000_000fu64),
            sampled: false,
            tracestate: None,
        };
        assert_eq!(ctx.traceparent(), "00-0123456789abcdeffedcba9876543210-00a000000000000f-00");
        assert_eq!(ctx.traceparent(), format!("00-{:032x}-{:016x}-00", ctx.trace_id, ctx.span_id).as_str());
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_future_version_is_read_by_its_first_fields() {
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        let (_, _, sampled) = parse_traceparent(future.as_bytes()).unwrap();
        assert!(!sampled);
    }

    #[test]
    fn extract_finds_the_headers_in_small_and_large_maps() {
        for others in [0, 3, 20] {
            let mut headers = HeaderMap::new();
            for i in 0..others {
                headers.insert(HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(), HeaderValue::from_static("v"));
            }
            headers.insert(http::header::HOST, HeaderValue::from_static("example"));
            assert_eq!(Remote::extract(&headers), None, "{others} other headers");
            headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
            headers.insert(TRACESTATE, HeaderValue::from_static("a=1"));
            let remote = Remote::extract(&headers).unwrap();
            assert_eq!(remote.span_id, SpanId::from(0x00f0_67aa_0ba9_02b7u64), "{others} other headers");
            assert_eq!(remote.tracestate.unwrap(), "a=1");
        }
    }

    #[test]
    fn inject_replaces_the_callers_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.insert(TRACESTATE, HeaderValue::from_static("a=1"));
        let ctx = SpanContext { trace_id: TraceId::from(7u128), span_id: SpanId::from(9u64), sampled: false, tracestate: None };
        ctx.inject(&mut headers);
        assert_eq!(headers[TRACEPARENT], "00-00000000000000000000000000000007-0000000000000009-00");
        assert!(headers.get(TRACESTATE).is_none());
    }
}
