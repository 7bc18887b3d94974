//! Request checks hyper's HTTP/1 parser leaves to the server, run before
//! routing so a malformed request never reaches a plugin (RFC 9112):
//!
//! - `Host`: an HTTP/1.1 request without one, any request with more than
//!   one, or one that is not a valid `host[:port]` → 400 (§3.2). HTTP/1.0
//!   may omit it; HTTP/2 and HTTP/3 carry `:authority` instead.
//! - framing: a head with both `Content-Length` and `Transfer-Encoding`
//!   (seen by [`super::headscan`], since hyper drops `Content-Length`) → 400
//!   (§6.3, request smuggling); a transfer coding other than `chunked` → 501
//!   (hyper already refuses one where `chunked` is not last).
//! - the request target longer than `limits.max_header_bytes` → 414; one
//!   longer than hyper's buffer too: [`super::headscan`] cuts it to one byte
//!   over the limit before hyper sees it.
//! - the asterisk-form target `*` on any method but `OPTIONS` → 400 (§3.2.4:
//!   it names the server as a whole, which only `OPTIONS` can ask about;
//!   hyper hands `GET *` to the service, where it would have been routed).
//! - a request line naming a version other than 1.0 / 1.1 (`HTTP/2.0`,
//!   `HTTP/1.2`; [`super::headscan`] rewrites it to 1.1 so hyper parses it)
//!   → 505 (RFC 9110 §15.6.6).
//!
//! Every answer carries the structured problem body and `connection: close`.
//! What hyper itself refuses (unparsable request lines and header fields, a
//! head over its buffer) it answers with a bare status line: see
//! `docs/http1-errors.md`.

use http::{HeaderMap, Method, Uri, Version, header, request::Parts};

use super::watchdog::ConnState;
use crate::{exchange::HostResponse, manifest::Limits, problem};

/// The first check a request fails, as its response.
pub fn check(parts: &Parts, state: &ConnState, limits: &Limits, request_id: &str) -> Option<HostResponse> {
    let target = target_len(&parts.uri);
    if target > limits.max_header_bytes {
        let sent = state.take_long_target().map_or(target, |len| len.max(target));
        return Some(problem::uri_too_long(sent, limits.max_header_bytes, request_id));
    }
    if parts.uri == "*" && parts.method != Method::OPTIONS {
        let reason = "the request target `*` (asterisk-form) is only allowed with OPTIONS";
        return Some(problem::malformed("INVALID_TARGET", reason, request_id));
    }
    if parts.version > Version::HTTP_11 {
        return None;
    }
    if let Some(version) = state.take_bad_version(parts.method.as_str(), &parts.uri) {
        return Some(problem::version_not_supported(&version, request_id));
    }
    if let Some(resp) = check_host(&parts.headers, parts.version, request_id) {
        return Some(resp);
    }
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return check_coding(&parts.headers, &parts.method, &parts.uri, state, request_id);
    }
    None
}

fn check_host(headers: &HeaderMap, version: Version, request_id: &str) -> Option<HostResponse> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some(problem::malformed("MULTIPLE_HOST", "more than one Host header field", request_id)),
        (None, _) if version == Version::HTTP_11 => {
            Some(problem::malformed("MISSING_HOST", "an HTTP/1.1 request must have a Host header field", request_id))
        }
        (Some(host), None) if !valid_host(host.as_bytes()) => {
            Some(problem::malformed("INVALID_HOST", "the Host header field is not a valid host[:port]", request_id))
        }
        _ => None,
    }
}

/// `uri-host [ ":" port ]` characters (RFC 3986 reg-name, IP literals, port);
/// empty is allowed (a target without an authority).
fn valid_host(host: &[u8]) -> bool {
    host.iter().all(|&b| HOST_BYTES[usize::from(b)])
}

/// The bytes [`valid_host`] allows, as a table (a search of the punctuation
/// list per byte cost ~170 instructions per request).
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"-._~!$&'()*+,;=:[]%";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

fn check_coding(headers: &HeaderMap, method: &Method, uri: &Uri, state: &ConnState, request_id: &str) -> Option<HostResponse> {
    if state.take_framing_conflict(method.as_str(), &uri.to_string()) {
        let reason = "both Content-Length and Transfer-Encoding are present";
        return Some(problem::malformed("CONFLICTING_FRAMING", reason, request_id));
    }
    let codings = headers.get_all(header::TRANSFER_ENCODING).iter().flat_map(|v| v.as_bytes().split(|&b| b == b','));
    for coding in codings {
        let coding = coding.trim_ascii();
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Some(problem::coding_not_implemented(&String::from_utf8_lossy(coding), request_id));
        }
    }
    None
}

/// Length of the request target as the client sent it (near enough: the
/// scheme's `://` and the authority of an absolute-form target are counted).
fn target_len(uri: &Uri) -> usize {
    let path = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    path + authority + scheme
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn host_bytes_are_the_reg_name_ip_literal_and_port_characters() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b);
            assert_eq!(valid_host(&[b]), expected, "byte {b:#04x}");
        }
        assert!(valid_host(b"api.example:8443") && valid_host(b"[::1]:80") && valid_host(b""));
        assert!(!valid_host(b"a b") && !valid_host(b"a/b") && !valid_host(b"a\x7fb"));
    }

    fn status(parts: &Parts) -> Option<u16> {
        check(parts, &ConnState::default(), &Limits::default(), "id").map(|r| r.status.as_u16())
    }

    #[test]
    fn host_rules() {
        let ok = parts(http::Request::get("/").header("host", "a.test:8080"));
        assert_eq!(status(&ok), None);
        assert_eq!(status(&parts(http::Request::get("/"))), Some(400));
        assert_eq!(status(&parts(http::Request::get("/").version(Version::HTTP_10))), None);
        assert_eq!(status(&parts(http::Request::get("/").version(Version::HTTP_2))), None);
        assert_eq!(status(&parts(http::Request::get("/").header("host", "a").header("host", "b"))), Some(400));
        assert_eq!(status(&parts(http::Request::get("/").header("host", "a b"))), Some(400));
    }

    #[test]
    fn only_chunked_is_implemented() {
        let chunked = parts(http::Request::post("/").header("host", "a").header("transfer-encoding", "chunked"));
        assert_eq!(status(&chunked), None);
        let gzip = parts(http::Request::post("/").header("host", "a").header("transfer-encoding", "gzip, chunked"));
        assert_eq!(status(&gzip), Some(501));
    }

    #[test]
    fn a_long_target_is_414() {
        let long = format!("/{}", "a".repeat(Limits::default().max_header_bytes));
        assert_eq!(status(&parts(http::Request::get(long.as_str()).header("host", "a"))), Some(414));
    }
}
