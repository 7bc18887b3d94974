//! A failed upstream call as the client sees it: the host's structured error
//! body (`{"error": {"code", "message", "details", ...}}`) with a status that
//! says whose fault it is. Details name the upstream and the error kind,
//! never the endpoints (those are the operator's business); the host's full
//! message goes to the log for misconfiguration (rate-limited: a broken
//! grant would otherwise log once per request).
//!
//! | kind | status | code |
//! |---|---|---|
//! | `unavailable`, `connect` | 502 | `UPSTREAM_UNAVAILABLE` |
//! | `timeout` | 504 | `UPSTREAM_TIMEOUT` |
//! | `overloaded` | 503 + `retry-after` | `UPSTREAM_OVERLOADED` |
//! | `http`, `tls` | 502 | `UPSTREAM_ERROR` |
//! | anything else (`denied`, `config`, ...) | 500 | `PROXY_MISCONFIGURED` |

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use covet_plugin_api::{
    JsonValue, Response,
    host::{ServiceError, ServiceErrorKind},
};
use serde_json::json;

/// The response for `error` from upstream `upstream`; `retry_after` is the
/// `retry-after` of an overload when the host's message names none.
pub fn upstream_error(error: &ServiceError, upstream: &str, request_id: &str, retry_after: Duration) -> Response {
    let kind = kind_name(error.kind);
    let details = |extra: Option<u64>| {
        let mut d = json!({ "upstream": upstream, "kind": kind });
        if let (Some(secs), JsonValue::Object(map)) = (extra, &mut d) {
            map.insert("retry_after_seconds".into(), secs.into());
        }
        d
    };
    match error.kind {
        ServiceErrorKind::Unavailable | ServiceErrorKind::Connect => {
            let message = format!("no endpoint of upstream `{upstream}` could be reached");
            Response::error(502, "UPSTREAM_UNAVAILABLE", &message, details(None), request_id)
        }
        ServiceErrorKind::Timeout => {
            let message = format!("upstream `{upstream}` did not answer in time");
            Response::error(504, "UPSTREAM_TIMEOUT", &message, details(None), request_id)
        }
        ServiceErrorKind::Overloaded => {
            let secs = whole_seconds(retry_after_in(&error.message).unwrap_or(retry_after));
            let message = format!("upstream `{upstream}` is overloaded; retry later");
            Response::error(503, "UPSTREAM_OVERLOADED", &message, details(Some(secs)), request_id)
                .with_header("retry-after", secs.to_string())
        }
        ServiceErrorKind::Http | ServiceErrorKind::Tls => {
            let message = format!("upstream `{upstream}` failed to answer properly");
            Response::error(502, "UPSTREAM_ERROR", &message, details(None), request_id)
        }
        _ => {
            warn_misconfigured(upstream, error);
            let message = format!("the proxy to upstream `{upstream}` is misconfigured; see the host's log");
            Response::error(500, "PROXY_MISCONFIGURED", &message, details(None), request_id)
        }
    }
}

/// The FFI name of a kind (`timeout`, `overloaded`, ...).
pub fn kind_name(kind: ServiceErrorKind) -> &'static str {
    match kind {
        ServiceErrorKind::Denied => "denied",
        ServiceErrorKind::Timeout => "timeout",
        ServiceErrorKind::Connect => "connect",
        ServiceErrorKind::Tls => "tls",
        ServiceErrorKind::Http => "http",
        ServiceErrorKind::Unsupported => "unsupported",
        ServiceErrorKind::Backend => "backend",
        ServiceErrorKind::Config => "config",
        ServiceErrorKind::ShutDown => "shut_down",
        ServiceErrorKind::Unavailable => "unavailable",
        ServiceErrorKind::Overloaded => "overloaded",
        _ => "other",
    }
}

/// A duration named in the host's message after `retry after` (`... retry after 2s`).
fn retry_after_in(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("retry after ").or_else(|| lower.find("retry_after "))? + "retry after ".len();
    let word = message[at..].split_whitespace().next()?.trim_end_matches([')', ',', '.', ';']);
    humantime::parse_duration(word).ok().or_else(|| {
        // `1.5s`: the host writes fractional seconds, which humantime does not read.
        Duration::try_from_secs_f64(word.strip_suffix('s')?.parse().ok()?).ok()
    })
}

/// Seconds for `retry-after`: rounded up, at least 1.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// When the last misconfiguration warning was written (seconds since the epoch).
static LAST_WARNING: AtomicU64 = AtomicU64::new(0);

/// Logs the host's message at most once per 10 s (all instances together).
fn warn_misconfigured(upstream: &str, error: &ServiceError) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if now >= last + 10 && LAST_WARNING.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        eprintln!("WARN covet-proxy: upstream `{upstream}` refused the request ({}): {error}", kind_name(error.kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: ServiceErrorKind, message: &str) -> (Response, JsonValue) {
        let r = upstream_error(&ServiceError::new(kind, message), "users", "req-1", Duration::from_secs(1));
        let body = serde_json::from_slice(&r.body).unwrap();
        (r, body)
    }

    #[test]
    fn each_kind_has_its_status_and_code() {
        let cases = [
            (ServiceErrorKind::Unavailable, 502, "UPSTREAM_UNAVAILABLE"),
            (ServiceErrorKind::Connect, 502, "UPSTREAM_UNAVAILABLE"),
            (ServiceErrorKind::Timeout, 504, "UPSTREAM_TIMEOUT"),
            (ServiceErrorKind::Overloaded, 503, "UPSTREAM_OVERLOADED"),
            (ServiceErrorKind::Http, 502, "UPSTREAM_ERROR"),
            (ServiceErrorKind::Tls, 502, "UPSTREAM_ERROR"),
            (ServiceErrorKind::Denied, 500, "PROXY_MISCONFIGURED"),
            (ServiceErrorKind::Config, 500, "PROXY_MISCONFIGURED"),
            (ServiceErrorKind::Unsupported, 500, "PROXY_MISCONFIGURED"),
        ];
        for (kind, status, code) in cases {
            let (r, body) = reply(kind, "connecting to 10.0.0.7:8080 failed");
            assert_eq!((r.status, body["error"]["code"].as_str()), (status, Some(code)), "{kind:?}");
            assert_eq!(body["error"]["details"]["upstream"], "users");
            assert_eq!(body["error"]["details"]["kind"], kind_name(kind));
            assert_eq!(body["error"]["request_id"], "req-1");
            assert!(!String::from_utf8_lossy(&r.body).contains("10.0.0.7"), "the endpoint leaked: {kind:?}");
        }
    }

    #[test]
    fn overloaded_carries_retry_after() {
        let (r, body) = reply(ServiceErrorKind::Overloaded, "upstream 'users' is overloaded: retry after 2500ms");
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(body["error"]["details"]["retry_after_seconds"], 3);
        let (r, _) = reply(ServiceErrorKind::Overloaded, "upstream 'users' is overloaded");
        assert_eq!(r.header("retry-after"), Some("1"));
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(retry_after_in("full (retry after 2s)"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_in("Retry after 1m."), Some(Duration::from_secs(60)));
        assert_eq!(retry_after_in("upstream 'u' is overloaded: retry after 1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after_in("upstream 'u' is overloaded: retry after 250ms"), Some(Duration::from_millis(250)));
        assert_eq!(retry_after_in("retry after soon"), None);
        assert_eq!(retry_after_in("nothing"), None);
        assert_eq!(whole_seconds(Duration::from_millis(10)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(4)), 4);
    }
}
