//! Tunnels and streams through the `proxy` plugin (issue 12): WebSocket echo
//! over an HTTP/1.1 upgrade (`websocket.rs`) and over HTTP/2 extended CONNECT
//! (RFC 8441) to an HTTP/1.1 upstream (`extended_connect.rs`), gRPC unary and
//! server streaming to an h2c upstream with statuses in trailers (`grpc.rs`),
//! WebSockets on a TLS listener (`tls.rs`), both again on the io_uring
//! backend (`uring.rs`), 100 swaps of the proxy under load while WebSockets
//! stay open (`swap.rs`), and swaps to other builds of the proxy while a
//! response streams and a WebSocket is open (`new_build.rs`).
//!
//! Every upstream is a real server started by the test on 127.0.0.1:0
//! (tokio-tungstenite, tonic, hyper); covet runs the real `covet-proxy`
//! library with the manifest's `upstreams:` block.

mod extended_connect;
mod grpc;
mod new_build;
mod swap;
mod tls;
mod upstream;
mod uring;
mod websocket;

use std::{net::SocketAddr, time::Duration};

use covet_e2e::{Host, plugin};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use crate::common::PATIENCE;

/// The upstream's name in the manifests.
pub const UPSTREAM: &str = "backend";
/// The proxy plugin's name in the manifests.
pub const PROXY: &str = "proxy";

/// A manifest proxying every path (`/{*rest}`) through plugin `proxy` to
/// upstream `backend` (`upstream` is its settings); `extra` keys are added
/// to the proxy's config (`{ upstream: backend }`).
pub fn manifest(upstream: Value, extra: Value) -> String {
    json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "log": { "access": false },
        "upstreams": { UPSTREAM: upstream },
        "plugins": { PROXY: proxy_entry(extra) },
        "routes": [{ "path": "/{*rest}", "handler": PROXY }],
    })
    .to_string()
}

/// The proxy plugin's manifest entry.
fn proxy_entry(extra: Value) -> Value {
    json!({
        "kind": "native",
        "path": plugin("covet-proxy").display().to_string(),
        "capabilities": { "upstreams": [UPSTREAM] },
        "config": proxy_config(extra),
    })
}

/// The proxy's config: `{ upstream: backend }` plus the keys of `extra`.
pub fn proxy_config(extra: Value) -> Value {
    let mut config = json!({ "upstream": UPSTREAM });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    config
}

/// An HTTP/1.1 upstream at `addr` (one endpoint).
pub fn http1_upstream(addr: SocketAddr) -> Value {
    json!({ "endpoints": [addr.to_string()], "protocol": "http1" })
}

/// Starts covet on [`manifest`] and waits until it is ready.
pub async fn start(upstream: Value, extra: Value) -> Host {
    Host::start(manifest(upstream, extra)).await
}

/// `future`, or a panic naming `what` when it takes longer than
/// [`PATIENCE`] (a guard against hangs, not a timing assertion).
pub async fn patiently<F: std::future::Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: nothing after {PATIENCE:?}"),
    }
}

/// A WebSocket client connection through covet at `addr` to `path`
/// (an HTTP/1.1 upgrade); asserts the 101.
pub async fn ws_connect(addr: SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect to covet");
    let handshake = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp);
    let (ws, response) = patiently("WebSocket handshake", handshake).await.expect("WebSocket handshake through covet");
    assert_eq!(response.status(), 101, "switching protocols");
    ws
}

/// Sends `message` and asserts the next data message is the same.
pub async fn assert_echo<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, message: Message) {
    let what = describe(&message);
    patiently("send", ws.send(message.clone())).await.unwrap_or_else(|e| panic!("send {what}: {e}"));
    let echoed = patiently("echo", next_data(ws)).await;
    assert!(echoed == message, "the echo of {what} differs: {}", describe(&echoed));
}

/// The next text or binary message (pings and pongs are skipped).
async fn next_data<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    loop {
        match ws.next().await {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => return message,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("expected an echo, got {}", describe(&other)),
            Some(Err(e)) => panic!("expected an echo, got an error: {e}"),
            None => panic!("expected an echo, the connection ended"),
        }
    }
}

/// Closes `ws` with the close handshake: sends a Close, expects the peer's
/// Close back and then the end of the stream, with no error.
pub async fn close_cleanly<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    patiently("send close", ws.close(None)).await.expect("send a close frame");
    let mut closed_by_peer = false;
    loop {
        match patiently("close handshake", ws.next()).await {
            Some(Ok(Message::Close(_))) => closed_by_peer = true,
            Some(Ok(other)) => panic!("after our close, got {}", describe(&other)),
            Some(Err(e)) => panic!("the close handshake failed: {e}"),
            None => break,
        }
    }
    assert!(closed_by_peer, "the peer answered our close frame with its own");
}

/// A short description of a message for assertion messages (not its 1 MiB body).
fn describe(message: &Message) -> String {
    match message {
        Message::Text(text) if text.len() <= 64 => format!("text {:?}", text.as_str()),
        Message::Text(text) => format!("text of {} bytes", text.len()),
        Message::Binary(data) => format!("binary of {} bytes", data.len()),
        other => format!("{other:?}"),
    }
}

/// `len` bytes of a pattern that shows misordered or lost bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// How long load tasks pause between rounds when told to (kept short).
pub const TICK: Duration = Duration::from_millis(10);
