//! What the plugin writes: the 429 and 400 answers (JSON error bodies) and
//! the IETF draft `RateLimit-*` headers on allowed responses.

use std::time::Duration;

use covet_plugin_api::{Response, ResponseMut};
use serde_json::json;

use crate::{key::KeySpec, limiter::ceil_secs};

/// The 429 for a client over its limit. `wait` is how long until its next
/// request is allowed, sent in whole seconds rounded up (at least 1).
pub(crate) fn too_many_requests(request_id: &str, burst: u32, wait: Duration) -> Response {
    let seconds = ceil_secs(wait).max(1);
    let message = format!("rate limit exceeded: {burst} requests allowed in a burst; retry in {seconds} s");
    let details = json!({ "retry_after_seconds": seconds });
    let seconds = seconds.to_string();
    Response::error(429, "RATE_LIMITED", &message, details, request_id)
        .with_header("retry-after", &seconds)
        .with_header("ratelimit-limit", burst.to_string())
        .with_header("ratelimit-remaining", "0")
        .with_header("ratelimit-reset", seconds)
}

/// The 503 of `on_error: deny` when the shared state failed or did not
/// answer in time. A 503, not a 429: the client did nothing wrong, and a 429
/// would tell it that it spent a quota it did not. `reason` is the kind of
/// failure (`timeout`, `connect`, ...), never the store's address.
pub(crate) fn unavailable(request_id: &str, reason: &str) -> Response {
    let message = "the rate limit cannot be checked right now: its shared store is unavailable; retry shortly";
    let details = json!({ "reason": reason, "retry_after_seconds": 1 });
    Response::error(503, "RATE_LIMIT_UNAVAILABLE", message, details, request_id).with_header("retry-after", "1")
}

/// The 400 for a request without the header or metadata it is limited by
/// (only with `missing_key: reject`).
pub(crate) fn missing_key(request_id: &str, key: &KeySpec) -> Response {
    let message = format!("this endpoint is rate-limited per `{key}`, which the request does not carry");
    let details = json!({ "key": key.to_string() });
    Response::error(400, "RATE_LIMIT_KEY_MISSING", &message, details, request_id)
}

/// Adds `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds until the
/// bucket is full again) to an allowed response.
pub(crate) fn add_headers(resp: &mut ResponseMut<'_>, burst: u32, remaining: u32, time_to_full: Duration) {
    // The values are digits, always valid header values: set_header cannot
    // refuse them. Formatted on the stack: this runs on every allowed request.
    let mut digits = itoa::Buffer::new();
    let _ = resp.set_header("ratelimit-limit", digits.format(burst));
    let _ = resp.set_header("ratelimit-remaining", digits.format(remaining));
    let _ = resp.set_header("ratelimit-reset", digits.format(ceil_secs(time_to_full)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(resp: &Response) -> serde_json::Value {
        serde_json::from_slice(&resp.body).unwrap()
    }

    #[test]
    fn too_many_requests_rounds_the_wait_up_to_at_least_a_second() {
        let resp = too_many_requests("r1", 5, Duration::from_millis(1));
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("retry-after"), Some("1"));
        assert_eq!(resp.header("ratelimit-reset"), Some("1"));
        let resp = too_many_requests("r1", 5, Duration::ZERO);
        assert_eq!(resp.header("retry-after"), Some("1"));
        let resp = too_many_requests("r1", 5, Duration::from_millis(2500));
        assert_eq!(resp.header("retry-after"), Some("3"));
        assert_eq!(body(&resp)["error"]["details"]["retry_after_seconds"], 3);
    }

    #[test]
    fn unavailable_is_a_503_naming_the_reason_with_retry_after() {
        let resp = unavailable("r3", "timeout");
        assert_eq!(resp.status, 503);
        assert_eq!(resp.header("retry-after"), Some("1"));
        let body = body(&resp);
        assert_eq!(body["error"]["code"], "RATE_LIMIT_UNAVAILABLE");
        assert_eq!(body["error"]["details"], json!({"reason": "timeout", "retry_after_seconds": 1}));
        assert_eq!(body["error"]["request_id"], "r3");
    }

    #[test]
    fn missing_key_names_the_key_in_a_json_400() {
        let resp = missing_key("r2", &KeySpec::Metadata("jwt.sub".into()));
        assert_eq!(resp.status, 400);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let mut body = body(&resp);
        assert!(body["error"].as_object_mut().unwrap().remove("timestamp").is_some());
        assert_eq!(
            body,
            json!({"error": {
                "code": "RATE_LIMIT_KEY_MISSING",
                "message": "this endpoint is rate-limited per `metadata:jwt.sub`, which the request does not carry",
                "details": {"key": "metadata:jwt.sub"},
                "request_id": "r2",
            }})
        );
    }
}
