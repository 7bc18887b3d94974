//! Lingering close (host/src/server/tracked_io.rs): a client that writes its
//! whole request before reading, as most HTTP/1 clients do, reads the answer
//! even when the host answered early and closes: a body over `max_body`
//! (413) or a head over `max_header_bytes` (431). Without the linger the
//! host's close with unread input is a reset: the client's write fails
//! with "broken pipe" or "connection reset" and the answer is lost. On both
//! I/O backends.

use covet_e2e::{Closed, Host, Manifest, RawConn, Route};

use crate::common::{PATIENCE, labelled};

fn echo_host(backend: &str) -> Host {
    let manifest = Manifest::new()
        .limit("max_body", "1KiB")
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/echo").handler("echo"));
    Host::builder(manifest).env("COVET_IO", backend).start()
}

/// Writes all of `request` (it must all be taken), then reads the answer
/// and the close: the status and the problem's code (none for hyper's bare
/// answers).
async fn send_whole_then_read(host: &Host, request: &[u8]) -> (u16, String) {
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send(request).await.expect("the host takes the whole request, answered or not");
    let resp = conn.response(PATIENCE).await;
    assert!(matches!(conn.closed_within(PATIENCE).await, Closed::After(_)), "the connection is closed after the answer");
    let code = if resp.body.is_empty() { String::new() } else { resp.json()["error"]["code"].as_str().unwrap_or_default().to_owned() };
    (resp.status, code)
}

fn big_post(len: usize) -> Vec<u8> {
    let mut request = format!("POST /echo HTTP/1.1\r\nhost: a\r\ncontent-length: {len}\r\n\r\n").into_bytes();
    request.resize(request.len() + len, b'x');
    request
}

fn big_chunked_post(chunks: usize) -> Vec<u8> {
    let mut request = b"POST /echo HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..chunks {
        request.extend_from_slice(b"4000\r\n");
        request.resize(request.len() + 0x4000, b'y');
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

fn big_head(len: usize) -> Vec<u8> {
    format!("GET /echo HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n", "h".repeat(len)).into_bytes()
}

async fn early_answers_reach_a_client_still_writing(backend: &str) {
    let host = echo_host(backend);
    host.wait_ready().await;
    let (status, code) = send_whole_then_read(&host, &big_post(8 << 20)).await;
    assert_eq!((status, code.as_str()), (413, "PAYLOAD_TOO_LARGE"), "{backend}: 8 MiB body, content-length");
    let (status, code) = send_whole_then_read(&host, &big_chunked_post(512)).await;
    assert_eq!((status, code.as_str()), (413, "PAYLOAD_TOO_LARGE"), "{backend}: 8 MiB chunked body");
    let (status, _) = send_whole_then_read(&host, &big_head(4 << 20)).await;
    assert_eq!(status, 431, "{backend}: a 4 MiB head");
    let mut fine = RawConn::connect(host.addr()).await;
    fine.send("GET /echo HTTP/1.1\r\nhost: a\r\n\r\n").await.unwrap();
    assert_eq!(fine.response(PATIENCE).await.status, 200, "{backend}: served after");
}

#[tokio::test]
async fn early_answers_reach_a_client_still_writing_on_epoll() {
    early_answers_reach_a_client_still_writing("epoll").await;
}

#[tokio::test]
async fn early_answers_reach_a_client_still_writing_on_uring() {
    early_answers_reach_a_client_still_writing("uring").await;
}
