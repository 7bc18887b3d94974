//! Trailers end to end: a client sends a request body with trailers to a
//! native handler (the `covet-async-plugin` fixture's `echo` mode) that
//! answers with the request body stream, and gets those trailers back on
//! the response, over HTTP/2 (trailers frame) and HTTP/1.1 (chunked
//! trailers, asked for with `te: trailers` and named by `trailer`).

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use covet_e2e::{Host, Manifest, Route};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;

const FIXTURE: &str = "covet-async-plugin";

fn gateway() -> Manifest {
    Manifest::new()
        .plugin("echo", FIXTURE, json!({ "mode": "echo" }))
        .route(Route::new("/echo").methods(["POST"]).handler("echo"))
}

/// A request body of fixed frames (data, then trailers).
struct Frames(VecDeque<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

fn body_with_trailers() -> Frames {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("c0ffee"));
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    Frames(VecDeque::from([
        Frame::data(Bytes::from_static(b"hello ")),
        Frame::data(Bytes::from_static(b"world")),
        Frame::trailers(trailers),
    ]))
}

fn request(uri: String) -> Request<Frames> {
    Request::post(uri)
        .header("te", "trailers")
        .header("trailer", "x-checksum, grpc-status")
        .body(body_with_trailers())
        .unwrap()
}

/// What came back: status, body, trailers.
async fn read(resp: hyper::Response<hyper::body::Incoming>) -> (u16, Bytes, Option<HeaderMap>) {
    let status = resp.status().as_u16();
    let collected = resp.into_body().collect().await.expect("the response body");
    let trailers = collected.trailers().cloned();
    (status, collected.to_bytes(), trailers)
}

fn assert_echoed((status, body, trailers): (u16, Bytes, Option<HeaderMap>), over: &str) {
    assert_eq!((status, &body[..]), (200, &b"hello world"[..]), "{over}");
    let trailers = trailers.unwrap_or_else(|| panic!("{over}: the response had no trailers"));
    assert_eq!(trailers.get("x-checksum").map(|v| v.as_bytes()), Some(&b"c0ffee"[..]), "{over}: {trailers:?}");
    assert_eq!(trailers.get("grpc-status").map(|v| v.as_bytes()), Some(&b"0"[..]), "{over}: {trailers:?}");
}

#[tokio::test]
async fn trailers_cross_a_native_handler_over_http2() {
    let host = Host::start(gateway()).await;
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(request(format!("http://{}/echo", host.addr()))).await.expect("a response");
    assert_echoed(read(resp).await, "HTTP/2");
}

#[tokio::test]
async fn trailers_cross_a_native_handler_over_http1_chunked() {
    let host = Host::start(gateway()).await;
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut req = request("/echo".to_string());
    req.headers_mut().insert("host", HeaderValue::from_static("covet.test"));
    let resp = sender.send_request(req).await.expect("a response");
    assert_eq!(resp.headers().get("transfer-encoding").map(|v| v.as_bytes()), Some(&b"chunked"[..]));
    assert_echoed(read(resp).await, "HTTP/1.1");
}
