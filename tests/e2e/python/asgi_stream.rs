//! ASGI request bodies streamed through `receive` (`request_body: stream`):
//! chunks reach the app as the client sends them (the app answers after the
//! first one while the client still holds the rest), `limits.max_body` cuts
//! the stream off with a 413, an HTTP/3 body (buffered by the listener) is
//! one chunk, and the same app with the default (buffered) body gets one
//! `http.request` message.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use covet_e2e::{Host, Reply, certs::Ca, secure::H3Conn};
use http::Request;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;

use crate::{
    common::{PATIENCE, assert_problem},
    tls::{SITE_TLS, with_site},
};

/// Records every `receive()` message. `/s/early` answers (head and a first
/// chunk) after the first message, then reads the rest; `/…/all` reads it
/// all first. Both end with the messages as JSON.
const RECORDER: &str = r#"
import json

async def app(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("no lifespan here")
    early = scope["path"].endswith("/early")
    seen, body = [], b""
    while True:
        message = await receive()
        seen.append({"type": message["type"], "len": len(message.get("body", b"")), "more_body": message.get("more_body", False)})
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if early and len(seen) == 1:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"early|", "more_body": True})
        if not message.get("more_body", False):
            break
    print("receive saw: " + ",".join(m["type"] for m in seen))
    if seen[-1]["type"] == "http.disconnect":
        return
    out = json.dumps({"messages": seen, "body": body.decode()}).encode()
    if not early:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})
"#;

fn manifest() -> String {
    "listen: [{ addr: 127.0.0.1:0 }]\n\
     limits: { max_body: 64 }\n\
     plugins:\n  \
       streamed: { kind: python, asgi: rec.py:app, request_body: stream }\n  \
       buffered: { kind: python, asgi: rec.py:app }\n\
     routes:\n  \
       - { path: \"/s/{*rest}\", handler: streamed }\n  \
       - { path: \"/b/{*rest}\", handler: buffered }\n"
        .to_owned()
}

async fn recorder_host() -> Host {
    let host = Host::builder(manifest()).file("rec.py", RECORDER).start();
    host.wait_ready().await;
    host
}

/// A request body fed chunk by chunk from a channel (no length: chunked).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// The response to a request in flight.
type Pending = tokio::task::JoinHandle<hyper::Result<http::Response<Incoming>>>;

/// Starts a POST to `path` over a fresh HTTP/1.1 (or h2c) connection; the
/// body is what is sent on the returned sender, until it is dropped.
async fn post_streaming(host: &Host, path: &str, h2: bool) -> (mpsc::Sender<Bytes>, Pending) {
    let tcp = TokioIo::new(tokio::net::TcpStream::connect(host.addr()).await.unwrap());
    let (tx, rx) = mpsc::channel(1);
    let uri = format!("http://{}{path}", host.addr());
    let mut req = Request::post(uri).body(ChannelBody(rx)).unwrap();
    if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), tcp).await.unwrap();
        tokio::spawn(conn);
        return (tx, tokio::spawn(sender.send_request(req)));
    }
    // hyper's connection-level client sends no `host` of its own (HTTP/1.1 needs one).
    req.headers_mut().insert(http::header::HOST, host.addr().to_string().parse().unwrap());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    (tx, tokio::spawn(sender.send_request(req)))
}

async fn collect(resp: http::Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(PATIENCE, body.collect()).await.expect("the body in time").unwrap().to_bytes();
    Reply { status: parts.status, headers: parts.headers, body, version: parts.version }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_reach_the_app_as_they_arrive_over_http1() {
    chunks_reach_the_app_as_they_arrive(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_reach_the_app_as_they_arrive_over_http2() {
    chunks_reach_the_app_as_they_arrive(true).await;
}

async fn chunks_reach_the_app_as_they_arrive(h2: bool) {
    let host = recorder_host().await;
    let (tx, response) = post_streaming(&host, "/s/early", h2).await;
    let chunks = ["first chunk|", "second|", "and the third"];
    tx.send(Bytes::from(chunks[0])).await.unwrap();
    // The app starts its response only after its first receive(); the rest
    // of the body has not been sent yet, so the head proves incrementality.
    let resp = tokio::time::timeout(PATIENCE, response).await.expect("the head after the first chunk").unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    for chunk in &chunks[1..] {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(Bytes::from(*chunk)).await.unwrap();
    }
    drop(tx);
    let text = collect(resp).await.text();
    let json = text.strip_prefix("early|").unwrap_or_else(|| panic!("early chunk first: {text}"));
    let seen: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(seen["body"], chunks.concat());
    let messages = seen["messages"].as_array().unwrap();
    assert!(messages.len() > 1, "more than one http.request: {messages:?}");
    assert!(messages.iter().all(|m| m["type"] == "http.request"), "{messages:?}");
    assert_eq!(messages[0]["len"], chunks[0].len(), "the first receive() is the first chunk alone");
    let (last, rest) = messages.split_last().unwrap();
    assert_eq!(last["more_body"], false);
    assert!(rest.iter().all(|m| m["more_body"] == true), "{messages:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_past_max_body_is_413_and_a_disconnect() {
    let host = recorder_host().await;
    let (tx, response) = post_streaming(&host, "/s/all", false).await;
    let forty = Bytes::from("x".repeat(40));
    tx.send(forty.clone()).await.unwrap();
    tx.send(forty).await.unwrap();
    drop(tx);
    let resp = tokio::time::timeout(PATIENCE, response).await.expect("an answer").unwrap().unwrap();
    let reply = collect(resp).await;
    let error = assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert_eq!(error["details"]["max_body"], 64);
    let said = host.log_line(&["receive saw:"]).await.unwrap_or_else(|| panic!("{}", host.logs()));
    assert!(said.contains("receive saw: http.request,http.disconnect"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_past_max_body_is_413_before_the_app_runs() {
    let host = recorder_host().await;
    let reply = host.http1().send(http::Method::POST, "/s/all", &[], "y".repeat(65)).await.unwrap();
    assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert!(!host.logs().contains("receive saw:"), "{}", host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_buffered_body_is_one_message() {
    let host = recorder_host().await;
    let (tx, response) = post_streaming(&host, "/b/all", false).await;
    for chunk in ["one|", "two|", "three"] {
        tx.send(Bytes::from(chunk)).await.unwrap();
    }
    drop(tx);
    let resp = tokio::time::timeout(PATIENCE, response).await.expect("an answer").unwrap().unwrap();
    let seen = collect(resp).await.json();
    assert_eq!(seen["body"], "one|two|three");
    assert_eq!(seen["messages"], serde_json::json!([{ "type": "http.request", "len": 13, "more_body": false }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http3_body_is_streamed_as_one_chunk() {
    let ca = Ca::new("test CA");
    let text = manifest().replacen(
        "listen: [{ addr: 127.0.0.1:0 }]\n",
        &format!("listen:\n  - addr: 127.0.0.1:0\n  - addr: 127.0.0.1:0\n    tls: {SITE_TLS}\n    http3: true\n"),
        1,
    );
    let host = with_site(Host::builder(text), &ca.server(&["localhost"])).file("rec.py", RECORDER).start();
    host.wait_ready().await;
    let config = ca.client_config(&[b"h3"], &[&rustls::version::TLS13], None);
    let mut conn = H3Conn::connect(host.addrs[1], "localhost", config).await.expect("HTTP/3 connect");
    let reply = conn.request(http::Method::POST, "/s/all", b"over quic").await.expect("POST");
    assert_eq!(reply.version, http::Version::HTTP_3);
    let seen = reply.json();
    assert_eq!(seen["body"], "over quic");
    assert_eq!(seen["messages"], serde_json::json!([{ "type": "http.request", "len": 9, "more_body": false }]));
    let reply = conn.request(http::Method::POST, "/s/all", &[b'z'; 65]).await.expect("POST");
    assert_eq!(reply.status, 413, "{}", reply.text());
}
