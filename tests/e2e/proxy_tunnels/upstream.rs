//! The upstream of the swap tests, one server for everything they send
//! through the proxy: plain requests get `ok <path>` (and the `via` they
//! carried in `x-seen-via`), WebSocket upgrades an echo (hyper for HTTP,
//! tungstenite for the frames), and `GET /stream` a body the test feeds
//! chunk by chunk through a channel.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{body::Frame, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role},
};

/// A response body of this upstream.
type Body = BoxBody<Bytes, Infallible>;
/// The chunks of the one `/stream` response, until the test drops the sender.
type Feed = Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>;

/// Starts the upstream on 127.0.0.1:0; `/stream` answers with the chunks
/// sent on `feed` (once; a 404 when there is none).
pub(super) async fn mixed_upstream(feed: Option<mpsc::Receiver<Bytes>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let feed: Feed = Arc::new(Mutex::new(feed));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let feed = feed.clone();
            let service = service_fn(move |request| {
                let feed = feed.clone();
                async move { Ok::<_, Infallible>(answer(request, &feed)) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(socket), service).with_upgrades();
            tokio::spawn(connection);
        }
    });
    addr
}

fn answer(request: Request<Incoming>, feed: &Feed) -> Response<Body> {
    if is_upgrade(&request) {
        return websocket(request);
    }
    if request.uri().path() == "/stream" {
        return streamed(feed.lock().unwrap().take());
    }
    let via = request.headers().get(header::VIA).cloned().unwrap_or(header::HeaderValue::from_static("none"));
    let mut response = Response::new(Full::new(Bytes::from(format!("ok {}", request.uri().path()))).boxed());
    response.headers_mut().insert("x-seen-via", via);
    response
}

/// A 101 and an echo on the upgraded connection.
fn websocket(mut request: Request<Incoming>) -> Response<Body> {
    let key = request.headers().get("sec-websocket-key").map(|k| derive_accept_key(k.as_bytes())).unwrap_or_default();
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", key)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

/// A body of the chunks `feed` yields.
fn streamed(feed: Option<mpsc::Receiver<Bytes>>) -> Response<Body> {
    let Some(feed) = feed else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"no stream")).boxed());
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let chunks = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), feed))
    });
    Response::new(BodyExt::boxed(StreamBody::new(chunks)))
}

fn is_upgrade(request: &Request<Incoming>) -> bool {
    let has = |name, value: &str| {
        request.headers().get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains(value)))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}
