//! WebSockets over HTTP/2 extended CONNECT (RFC 8441) through the proxy: a
//! hyper h2c client opens `CONNECT` streams with `:protocol websocket`,
//! covet answers 200 and turns each into an HTTP/1.1 upgrade to the same
//! tokio-tungstenite echo server as `websocket.rs`, and tungstenite speaks
//! WebSocket over the upgraded stream.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::{client::conn::http2::SendRequest, upgrade::Upgraded};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{Message, protocol::Role},
};

use crate::common::assert_problem;

use super::{assert_echo, close_cleanly, http1_upstream, patiently, pattern, start, websocket::echo_server};

/// A WebSocket over one HTTP/2 stream.
pub(super) type H2Ws = WebSocketStream<TokioIo<Upgraded>>;

/// An h2c connection to covet at `addr` on which covet's SETTINGS have
/// been read and allow extended CONNECT.
pub(super) async fn h2_connection(addr: SocketAddr) -> SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    h2_connection_over(tcp, &format!("http://{addr}")).await
}

/// An HTTP/2 connection to covet over `io` (plain or TLS) on which covet's
/// SETTINGS have been read and allow extended CONNECT; `origin` is its
/// `scheme://authority`.
pub(super) async fn h2_connection_over<T>(io: T, origin: &str) -> SendRequest<Empty<Bytes>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake =
        hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake::<_, Empty<Bytes>>(TokioIo::new(io));
    let (mut sender, mut connection) = handshake.await.expect("HTTP/2 handshake with covet");
    // One plain request first, driving the connection here, so the host's
    // SETTINGS have been read when we ask whether it allows extended CONNECT.
    let ready = Request::get(format!("{origin}/_covet/ready")).body(Empty::new()).unwrap();
    let ready = sender.send_request(ready);
    let ready = patiently("GET /_covet/ready", async {
        tokio::select! {
            response = ready => response.expect("h2 request"),
            closed = &mut connection => panic!("covet closed the h2 connection: {closed:?}"),
        }
    });
    assert_eq!(ready.await.status(), StatusCode::OK);
    assert!(
        connection.is_extended_connect_protocol_enabled(),
        "covet advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)"
    );
    tokio::spawn(connection);
    sender
}

/// A WebSocket to `path` over a new extended CONNECT stream of `sender`
/// (a connection to `origin`, `scheme://authority`).
pub(super) async fn h2_websocket(sender: &mut SendRequest<Empty<Bytes>>, origin: &str, path: &str) -> H2Ws {
    let mut connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("{origin}{path}"))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    connect.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
    let response = patiently("extended CONNECT", sender.send_request(connect)).await.expect("CONNECT answered");
    assert_eq!(response.status(), StatusCode::OK, "an h2 WebSocket is accepted with 200, not 101");
    assert!(response.headers().get("sec-websocket-accept").is_none(), "no HTTP/1.1 handshake headers on h2");
    let upgraded = patiently("upgrade", hyper::upgrade::on(response)).await.expect("the CONNECT stream as a tunnel");
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await
}

/// `http://<addr>` of covet's first listener.
pub(super) fn origin(host: &covet_e2e::Host) -> String {
    format!("http://{}", host.addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http2_extended_connect_reaches_an_http1_upstream() {
    let (upstream, seen) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;
    let mut sender = h2_connection(host.addr()).await;

    let mut ws = h2_websocket(&mut sender, &origin(&host), "/h2/chat?room=7").await;
    assert_echo(&mut ws, Message::text("hello over h2")).await;
    assert_echo(&mut ws, Message::binary(pattern(256 * 1024))).await;
    close_cleanly(ws).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("/h2/chat?room=7".to_string(), "13".to_string())],
        "the upstream got an HTTP/1.1 upgrade for the target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_websockets_share_one_http2_connection() {
    let (upstream, seen) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;
    let mut sender = h2_connection(host.addr()).await;

    let mut sockets = Vec::new();
    for i in 0..3 {
        sockets.push(h2_websocket(&mut sender, &origin(&host), &format!("/h2/{i}")).await);
    }
    for round in 0..3 {
        for (i, ws) in sockets.iter_mut().enumerate() {
            assert_echo(ws, Message::text(format!("stream {i} round {round}"))).await;
        }
    }
    // Closing one tunnel leaves the others and the connection working.
    let first = sockets.remove(0);
    close_cleanly(first).await;
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_echo(ws, Message::binary(pattern(70_000 + i))).await;
    }
    let ready = Request::get(format!("http://{}/_covet/ready", host.addr())).body(Empty::new()).unwrap();
    let ready = patiently("a plain request beside the tunnels", sender.send_request(ready)).await.expect("h2 request");
    assert_eq!(ready.status(), StatusCode::OK);
    for ws in sockets {
        close_cleanly(ws).await;
    }
    assert_eq!(seen.lock().unwrap().len(), 3, "three upgrades reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_connect_to_an_unreachable_upstream_is_a_structured_502() {
    // Nothing listens on port 1: every connection is refused.
    let host = start(json!({ "endpoints": ["127.0.0.1:1"], "protocol": "http1" }), json!({})).await;
    let mut sender = h2_connection(host.addr()).await;
    let mut connect = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("{}/chat", origin(&host)))
        .header("sec-websocket-version", "13")
        .body(Empty::<Bytes>::new())
        .unwrap();
    connect.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
    let response = patiently("extended CONNECT", sender.send_request(connect)).await.expect("CONNECT answered");
    let (parts, body) = response.into_parts();
    let body = patiently("the error body", body.collect()).await.expect("the body").to_bytes();
    let reply = covet_e2e::Reply { status: parts.status, headers: parts.headers, body, version: parts.version };
    assert_problem(&reply, 502, "UPSTREAM_UNAVAILABLE");
    // The connection still serves a tunnel-less request.
    let ready = Request::get(format!("{}/_covet/ready", origin(&host))).body(Empty::new()).unwrap();
    let ready = patiently("GET /_covet/ready", sender.send_request(ready)).await.expect("h2 request");
    assert_eq!(ready.status(), StatusCode::OK);
}
