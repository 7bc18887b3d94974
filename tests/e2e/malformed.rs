//! Malformed HTTP/1.1 requests over raw sockets, on both I/O backends: each
//! gets an answer with the right status, then the connection is closed.
//! Where covet answers (Host, framing, limits) the body is the structured
//! problem with `connection: close`; where hyper's parser refuses the head it
//! answers with a bare status line (see docs/http1-errors.md). A version
//! other than 1.0 / 1.1 and a target longer than hyper's buffer would be
//! hyper's too; the head scan hands them to covet (505, 414). The same
//! matrix is in bench/malformed.py, which compares covet with hyper and nginx.

use covet_e2e::{Closed, Host, Manifest, RawConn, Route};

use crate::common::{PATIENCE, labelled};

/// Default `limits.max_header_bytes`.
const HEAD_LIMIT: usize = 16 * 1024;

/// One row: what is sent, the status answered, and the problem code when
/// covet (not hyper's parser) answers.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    status: u16,
    code: Option<&'static str>,
}

fn case(name: &'static str, text: &str, status: u16, code: Option<&'static str>) -> Case {
    Case { name, bytes: text.as_bytes().to_vec(), status, code }
}

fn post(name: &'static str, headers: &str, body: &str, status: u16, code: Option<&'static str>) -> Case {
    case(name, &format!("POST /echo HTTP/1.1\r\nhost: a\r\n{headers}\r\n{body}"), status, code)
}

fn cases() -> Vec<Case> {
    let bad = Some("BAD_REQUEST");
    let big = |size: usize| "a".repeat(size);
    let version = Some("HTTP_VERSION_NOT_SUPPORTED");
    vec![
        case("no-host-http11", "GET /echo HTTP/1.1\r\n\r\n", 400, Some("MISSING_HOST")),
        case("two-hosts", "GET /echo HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", 400, Some("MULTIPLE_HOST")),
        case("host-with-space", "GET /echo HTTP/1.1\r\nhost: a b\r\n\r\n", 400, Some("INVALID_HOST")),
        post("cl-then-te", "content-length: 5\r\ntransfer-encoding: chunked\r\n", "0\r\n\r\n", 400, Some("CONFLICTING_FRAMING")),
        post("te-then-cl", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", 400, Some("CONFLICTING_FRAMING")),
        post("two-cl-differ", "content-length: 5\r\ncontent-length: 6\r\n", "hello!", 400, None),
        post("cl-list-differ", "content-length: 5, 6\r\n", "hello!", 400, None),
        post("cl-not-number", "content-length: abc\r\n", "", 400, None),
        post("cl-negative", "content-length: -1\r\n", "", 400, None),
        post("cl-plus-sign", "content-length: +5\r\n", "hello", 400, None),
        post("te-chunked-not-last", "transfer-encoding: chunked, gzip\r\n", "0\r\n\r\n", 400, None),
        post("te-unknown-only", "transfer-encoding: foo\r\n", "", 400, None),
        post("te-unknown-coding", "transfer-encoding: gzip, chunked\r\n", "0\r\n\r\n", 501, Some("TRANSFER_CODING_NOT_IMPLEMENTED")),
        case("te-in-http10", "POST /echo HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 400, None),
        post("chunk-size-not-hex", "transfer-encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n", 400, bad),
        post("chunk-size-overflow", "transfer-encoding: chunked\r\n", "fffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400, bad),
        case("method-bad-token", "G(T /echo HTTP/1.1\r\nhost: a\r\n\r\n", 400, None),
        case("space-in-target", "GET /a b HTTP/1.1\r\nhost: a\r\n\r\n", 400, None),
        case("ctl-in-target", "GET /\x01 HTTP/1.1\r\nhost: a\r\n\r\n", 400, None),
        case("asterisk-form-get", "GET * HTTP/1.1\r\nhost: a\r\n\r\n", 400, Some("INVALID_TARGET")),
        case("asterisk-form-post", "POST * HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n", 400, Some("INVALID_TARGET")),
        case("http09-no-version", "GET /echo\r\n\r\n", 400, None),
        case("version-lowercase", "GET /echo http/1.1\r\nhost: a\r\n\r\n", 400, None),
        case("version-garbage", "GET /echo FOO/1.1\r\nhost: a\r\n\r\n", 400, None),
        case("version-http2-over-h1", "GET /echo HTTP/2.0\r\nhost: a\r\n\r\n", 505, version),
        case("version-http2-no-host", "GET /echo HTTP/2.0\r\n\r\n", 505, version),
        case("version-http30", "POST /echo HTTP/3.0\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi", 505, version),
        case("version-http09", "GET /echo HTTP/0.9\r\nhost: a\r\n\r\n", 505, version),
        case("version-no-minor", "GET /echo HTTP/2\r\nhost: a\r\n\r\n", 400, None),
        case("header-name-space", "GET /echo HTTP/1.1\r\nhost: a\r\nbad name: x\r\n\r\n", 400, None),
        case("space-before-colon", "GET /echo HTTP/1.1\r\nhost : a\r\n\r\n", 400, None),
        case("header-no-colon", "GET /echo HTTP/1.1\r\nhost: a\r\nnocolon\r\n\r\n", 400, None),
        case("header-name-bad-char", "GET /echo HTTP/1.1\r\nhost: a\r\nx(a): 1\r\n\r\n", 400, None),
        case("nul-in-value", "GET /echo HTTP/1.1\r\nhost: a\r\nx-a: a\0b\r\n\r\n", 400, None),
        case("obs-fold", "GET /echo HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n  folded\r\n\r\n", 400, None),
        case("leading-ws-first-header", "GET /echo HTTP/1.1\r\n x-a: 1\r\nhost: a\r\n\r\n", 400, None),
        case("uri-over-limit", &format!("GET /echo?{} HTTP/1.1\r\nhost: a\r\n\r\n", big(HEAD_LIMIT + 4096)), 414, Some("URI_TOO_LONG")),
        case("header-over-limit", &format!("GET /echo HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n", big(HEAD_LIMIT + 4096)), 431, Some("HEADERS_TOO_LARGE")),
        case("uri-over-buffer", &format!("GET /echo?{} HTTP/1.1\r\nhost: a\r\n\r\n", big(3 * HEAD_LIMIT)), 414, Some("URI_TOO_LONG")),
        case("uri-far-over-buffer", &format!("GET /echo?{} HTTP/1.1\r\nhost: a\r\n\r\n", big(1 << 20)), 414, Some("URI_TOO_LONG")),
        case("header-over-buffer", &format!("GET /echo HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n", big(3 * HEAD_LIMIT)), 431, None),
        case("header-far-over-buffer", &format!("GET /echo HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n", big(1 << 20)), 431, None),
        case("too-many-headers", &format!("GET /echo HTTP/1.1\r\nhost: a\r\n{}\r\n", (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect::<String>()), 431, None),
        post("body-over-max-body", "content-length: 2000000000\r\n", "", 413, Some("PAYLOAD_TOO_LARGE")),
    ]
}

fn echo_host(backend: &str) -> Host {
    let manifest = Manifest::new().plugin("echo", "covet-test-plugin", labelled("echo")).route(Route::new("/echo").handler("echo"));
    Host::builder(manifest).env("COVET_IO", backend).start()
}

/// Sends `case` on a fresh connection; the failure, if any, as text.
async fn run(host: &Host, case: &Case) -> Result<(), String> {
    let mut conn = RawConn::connect(host.addr()).await;
    // The host may answer and close before taking every byte of a huge head.
    let _ = conn.send(&case.bytes).await;
    let resp = match conn.try_response(PATIENCE).await {
        Some(Ok(resp)) => resp,
        Some(Err(e)) => return Err(format!("no response: {e}")),
        None => return Err("no response; the connection stayed open".into()),
    };
    if resp.status != case.status {
        return Err(format!("status {} (want {}), body {}", resp.status, case.status, String::from_utf8_lossy(&resp.body)));
    }
    if let Some(code) = case.code {
        let body = resp.json();
        if body["error"]["code"] != code || body["error"]["request_id"].as_str() != resp.header("x-request-id") {
            return Err(format!("problem body {body} (want code {code} and the x-request-id)"));
        }
        if resp.header("connection") != Some("close") {
            return Err(format!("no `connection: close`: {:?}", resp.headers));
        }
    }
    match conn.closed_within(PATIENCE).await {
        Closed::After(_) => Ok(()),
        Closed::StillOpen => Err("the connection stayed open after the answer".into()),
    }
}

async fn every_case_is_answered_then_closed(backend: &str) {
    let host = echo_host(backend);
    host.wait_ready().await;
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run(&host, case).await {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "{backend}: {} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn malformed_requests_are_answered_and_closed_on_epoll() {
    every_case_is_answered_then_closed("epoll").await;
}

#[tokio::test]
async fn malformed_requests_are_answered_and_closed_on_uring() {
    every_case_is_answered_then_closed("uring").await;
}

/// What looks like framing inside a body is not taken for the next head, and
/// well-formed requests around it are served on the same connection.
#[tokio::test]
async fn malformed_checks_leave_valid_requests_alone() {
    let host = echo_host("epoll");
    host.wait_ready().await;
    let mut conn = RawConn::connect(host.addr()).await;
    let body = "x: 1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
    let first = format!("POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    conn.send(first).await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!((resp.status, resp.json()["body_len"].as_u64()), (200, Some(body.len() as u64)));
    conn.send("POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!((resp.status, resp.json()["body_len"].as_u64()), (200, Some(3)));
    let mut old = RawConn::connect(host.addr()).await;
    old.send("GET /echo HTTP/1.0\r\n\r\n").await.unwrap();
    assert_eq!(old.response(PATIENCE).await.status, 200, "HTTP/1.0 may omit Host");
    let mut later = RawConn::connect(host.addr()).await;
    later.send("GET /echo HTTP/1.2\r\nhost: a\r\n\r\n").await.unwrap();
    assert_eq!(later.response(PATIENCE).await.status, 200, "a later 1.x is served as 1.1 (RFC 9110 6.2)");
    // `*` is OPTIONS' own target: not malformed, routed like any other (no route here).
    let mut options = RawConn::connect(host.addr()).await;
    options.send("OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n").await.unwrap();
    assert_eq!(options.response(PATIENCE).await.status, 404, "OPTIONS * is routed, not refused");
}
