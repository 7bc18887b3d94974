//! WebSocket echo through the proxy: a tokio-tungstenite server
//! (`accept_hdr_async`, which checks the handshake strictly) behind covet,
//! reached by a tokio-tungstenite client over an HTTP/1.1 upgrade: messages
//! of every kind and size, several sockets at once, a close or a dropped
//! connection from the upstream, and an upgrade the upstream refuses.
//! (The same server over HTTP/2 extended CONNECT: `extended_connect.rs`.)

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{
    Error as WsError, Message,
    handshake::server::{Request as WsRequest, Response as WsResponse},
    protocol::{CloseFrame, frame::coding::CloseCode},
};

use crate::common::assert_problem;

use super::{assert_echo, close_cleanly, http1_upstream, patiently, pattern, start, ws_connect};

/// What the echo server saw of each handshake: the target and the
/// `sec-websocket-version`.
pub(super) type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A WebSocket echo server on 127.0.0.1:0: every text and binary message is
/// sent back; a close is answered by tungstenite.
pub(super) async fn echo_server() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(echo_connection(socket, record.clone()));
        }
    });
    (addr, seen)
}

/// Paths under this prefix are refused with 403 at the handshake.
const FORBIDDEN: &str = "/forbidden";
/// A text message that makes the server close with [`BYE`].
const CLOSE_ME: &str = "close me";
/// The reason of the server's close.
const BYE: &str = "server says bye";
/// A text message that makes the server drop the TCP connection, no close frame.
const DROP_ME: &str = "drop me";

// The callback's error type is tungstenite's (an HTTP response), not ours.
#[allow(clippy::result_large_err)]
async fn echo_connection(socket: TcpStream, seen: Seen) {
    let callback = |request: &WsRequest, response: WsResponse| {
        let version = request.headers().get("sec-websocket-version").and_then(|v| v.to_str().ok()).unwrap_or("");
        let target = request.uri().path_and_query().map_or("", |p| p.as_str());
        seen.lock().unwrap().push((target.to_string(), version.to_string()));
        if target.starts_with(FORBIDDEN) {
            return Err(http::Response::builder().status(StatusCode::FORBIDDEN).body(Some("not here".into())).unwrap());
        }
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(socket, callback).await else { return };
    while let Some(Ok(message)) = ws.next().await {
        let written = match message {
            Message::Text(text) if text.as_str() == DROP_ME => return,
            Message::Text(text) if text.as_str() == CLOSE_ME => {
                ws.close(Some(CloseFrame { code: CloseCode::Away, reason: BYE.into() })).await
            }
            message if message.is_text() || message.is_binary() => ws.send(message).await,
            _ => Ok(()),
        };
        if written.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_text_binary_and_a_mebibyte_through_the_proxy() {
    let (upstream, seen) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;

    let mut ws = ws_connect(host.addr(), "/chat/room-1?user=ann").await;
    assert_echo(&mut ws, Message::text("hello through covet")).await;
    assert_echo(&mut ws, Message::binary(vec![0u8, 1, 2, 253, 254, 255])).await;
    assert_echo(&mut ws, Message::binary(pattern(1 << 20))).await;
    assert_echo(&mut ws, Message::text("é".repeat(40_000))).await;
    assert_echo(&mut ws, Message::text("still open after the big one")).await;
    close_cleanly(ws).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("/chat/room-1?user=ann".to_string(), "13".to_string())],
        "one handshake reached the upstream, target kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_websockets_at_once_keep_their_own_messages() {
    let (upstream, _) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;

    let mut sockets = Vec::new();
    for i in 0..4 {
        sockets.push(ws_connect(host.addr(), &format!("/socket/{i}")).await);
    }
    for round in 0..3 {
        for (i, ws) in sockets.iter_mut().enumerate() {
            assert_echo(ws, Message::text(format!("socket {i} round {round}"))).await;
        }
    }
    for ws in sockets {
        close_cleanly(ws).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_upstream_reaches_the_client_with_its_code_and_reason() {
    let (upstream, _) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;
    let mut ws = ws_connect(host.addr(), "/closing").await;
    assert_echo(&mut ws, Message::text("first")).await;
    patiently("send", ws.send(Message::text(CLOSE_ME))).await.expect("send");
    match patiently("the server's close", ws.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Away);
            assert_eq!(frame.reason.as_str(), BYE);
        }
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    // tungstenite answered the close; the stream then ends without error.
    let end = patiently("the end of the tunnel", ws.next()).await;
    assert!(end.is_none(), "after the close handshake: {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_dropping_the_connection_ends_the_client_tunnel() {
    let (upstream, _) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;
    let mut ws = ws_connect(host.addr(), "/dropping").await;
    assert_echo(&mut ws, Message::text("first")).await;
    patiently("send", ws.send(Message::text(DROP_ME))).await.expect("send");
    // No close frame comes: the tunnel must end (EOF or reset), not hang
    // (`patiently` panics after PATIENCE) and not yield data.
    match patiently("the end of the tunnel", ws.next()).await {
        None | Some(Err(WsError::Protocol(_) | WsError::Io(_) | WsError::ConnectionClosed)) => {}
        other => panic!("expected the tunnel to end, got {other:?}"),
    }
    // The proxy still serves new tunnels.
    let mut again = ws_connect(host.addr(), "/after-drop").await;
    assert_echo(&mut again, Message::text("still proxying")).await;
    close_cleanly(again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_upstream_refuses_reaches_the_client_as_its_answer() {
    let (upstream, seen) = echo_server().await;
    let host = start(http1_upstream(upstream), json!({})).await;
    let handshake = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    let path = format!("{FORBIDDEN}/room");
    let refused =
        patiently("the refused upgrade", host.http1().send(Method::GET, &path, &handshake, Bytes::new())).await;
    let refused = refused.expect("an answer");
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "the upstream's status: {}", refused.text());
    assert_eq!(refused.text(), "not here", "the upstream's body");
    assert_eq!(seen.lock().unwrap().len(), 1, "the handshake reached the upstream once (no retry)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_an_unreachable_upstream_is_a_structured_502() {
    // Nothing listens on port 1: every connection is refused.
    let host = start(json!({ "endpoints": ["127.0.0.1:1"], "protocol": "http1" }), json!({})).await;
    let handshake = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    let reply = patiently("the upgrade", host.http1().send(Method::GET, "/chat", &handshake, Bytes::new())).await;
    let reply = reply.expect("an answer");
    assert_problem(&reply, 502, "UPSTREAM_UNAVAILABLE");
    assert!(reply.header("upgrade").is_none(), "no upgrade offered: {:?}", reply.headers);
}
