//! Assertions and fixtures shared by the test files.

use std::time::Duration;

use covet_e2e::Reply;
use serde_json::{Value, json};

/// A generous bound for anything that should take a moment at most.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The test plugin's config with just a label (an echo handler, a tagging filter).
pub fn labelled(label: &str) -> Value {
    json!({ "label": label })
}

/// Asserts `reply` is one of covet's structured errors with `status` and
/// `code`: JSON, a `request_id` equal to the `x-request-id` header and an
/// RFC 3339 UTC timestamp. Returns the `error` object.
pub fn assert_problem(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "status; body: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"), "content-type");
    let body = reply.json();
    let error = &body["error"];
    assert_eq!(error["code"], code, "code in {body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "a message in {body}");
    let id = reply.header("x-request-id").expect("x-request-id header");
    assert_eq!(error["request_id"], id, "body request_id matches the header");
    let timestamp = error["timestamp"].as_str().unwrap_or_else(|| panic!("timestamp in {body}"));
    assert!(looks_like_rfc3339_utc(timestamp), "timestamp {timestamp:?}");
    error.clone()
}

/// `2025-01-02T03:04:05.678Z` and the like.
fn looks_like_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && text.ends_with('Z')
}
