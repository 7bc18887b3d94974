//! The one place errors become responses: every error the host itself
//! produces has the same JSON body,
//! `{"error": {"code", "message", "details", "request_id", "timestamp"}}`.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::{exchange::HostResponse, runtime::Fault};

/// Builds a structured error response.
pub fn error(status: StatusCode, code: &str, message: &str, details: Value, request_id: &str) -> HostResponse {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "request_id": request_id,
            "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    });
    let mut resp = HostResponse::new(status);
    resp.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.body = Bytes::from(body.to_string());
    resp
}

/// 404: no route for this path.
pub fn not_found(path: &str, request_id: &str) -> HostResponse {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "no route matches this path", json!({ "path": path }), request_id)
}

/// 405 with an `Allow` header.
pub fn method_not_allowed(method: &str, allowed: &[http::Method], request_id: &str) -> HostResponse {
    let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    let details = json!({ "method": method, "allowed": allow });
    let mut resp =
        error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed on this path", details, request_id);
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        resp.headers.insert(header::ALLOW, v);
    }
    resp
}

/// 413: the body is larger than `limits.max_body`.
pub fn payload_too_large(limit: u64, request_id: &str) -> HostResponse {
    let message = format!("request body exceeds the limit of {limit} bytes");
    error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &message, json!({ "max_body": limit }), request_id)
}

/// 431: too many header fields or too many header bytes.
pub fn headers_too_large(what: &str, limit: usize, request_id: &str) -> HostResponse {
    let message = format!("request headers exceed the limit: {what} > {limit}");
    let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    error(status, "HEADERS_TOO_LARGE", &message, json!({ "limit": what, "max": limit }), request_id)
}

/// 408: the request body came too slowly (`limits.body_read_timeout`,
/// `limits.body_min_rate`).
pub fn body_timeout(reason: &str, request_id: &str) -> HostResponse {
    let message = "the request body was not received in time";
    error(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", message, json!({ "reason": reason }), request_id)
}

/// 400: the body could not be read.
pub fn bad_body(reason: &str, request_id: &str) -> HostResponse {
    error(StatusCode::BAD_REQUEST, "BAD_REQUEST", "could not read the request body", json!({ "reason": reason }), request_id)
}

/// 503: plugins are still initialising.
pub fn not_ready(request_id: &str) -> HostResponse {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    error(status, "NOT_READY", "the host is starting: plugins are still initialising", Value::Null, request_id)
}

/// 500: a plugin panicked (or trapped) or failed; 504: it ran past its time
/// limit; 503 with `Retry-After`: its runtime is saturated. The details name the plugin, never its internals.
pub fn plugin_fault(plugin: &str, phase: &str, fault: &Fault, request_id: &str) -> HostResponse {
    let (status, code, message) = match fault {
        Fault::Panic(_) => (StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_PANIC", "a plugin failed while handling the request"),
        Fault::Error(_) => (StatusCode::INTERNAL_SERVER_ERROR, "PLUGIN_ERROR", "a plugin returned an invalid result"),
        Fault::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "PLUGIN_TIMEOUT", "a plugin ran past its time limit"),
        Fault::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "PLUGIN_OVERLOADED", "the plugin is saturated; retry shortly"),
    };
    let details = json!({ "plugin": plugin, "phase": phase });
    let mut resp = error(status, code, message, details, request_id);
    if matches!(fault, Fault::Overloaded(_)) {
        resp.headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// 400 for a request whose head is malformed in a way hyper lets through
/// (missing or repeated `Host`, `Content-Length` with `Transfer-Encoding`):
/// `code` names the flaw, `reason` explains it. Closes the connection
/// ([`closing`]): after a framing error the next request's start is unknown.
pub fn malformed(code: &str, reason: &str, request_id: &str) -> HostResponse {
    closing(error(StatusCode::BAD_REQUEST, code, reason, Value::Null, request_id))
}

/// 414: the request target is longer than `limit` bytes.
pub fn uri_too_long(len: usize, limit: usize, request_id: &str) -> HostResponse {
    let message = format!("request target of {len} bytes exceeds the limit of {limit} bytes");
    closing(error(StatusCode::URI_TOO_LONG, "URI_TOO_LONG", &message, json!({ "max": limit }), request_id))
}

/// 505: an HTTP/1 request line named a version other than 1.0 / 1.1.
pub fn version_not_supported(version: &str, request_id: &str) -> HostResponse {
    let message = "only HTTP/1.0 and HTTP/1.1 are supported on an HTTP/1 connection";
    let details = json!({ "version": version });
    closing(error(StatusCode::HTTP_VERSION_NOT_SUPPORTED, "HTTP_VERSION_NOT_SUPPORTED", message, details, request_id))
}

/// 501: a transfer coding other than `chunked` (covet decodes no other).
pub fn coding_not_implemented(coding: &str, request_id: &str) -> HostResponse {
    let message = "only the chunked transfer coding is implemented";
    let details = json!({ "transfer_encoding": coding });
    closing(error(StatusCode::NOT_IMPLEMENTED, "TRANSFER_CODING_NOT_IMPLEMENTED", message, details, request_id))
}

/// Marks `resp` as the last on its HTTP/1 connection (`connection: close`;
/// the service drops the header again on HTTP/2 and HTTP/3, where it is not allowed).
pub fn closing(mut resp: HostResponse) -> HostResponse {
    resp.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
