//! Tests of tunnels: a real hyper server answers 101 and echoes bytes over
//! the upgraded connection, reached through the endpoint client.

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::tunnel;
use crate::http::{BoxError, RequestBody, ResponseBody};
use crate::upstream::Protocol;
use crate::upstream::client::EndpointClient;
use crate::upstream::client::tests::{ServerBody, certs, config, serve, text, tls};

/// Upgrades to `echo` and sends back every byte it reads until EOF, then closes.
async fn echo_server(mut request: http::Request<Incoming>) -> http::Response<ServerBody> {
    if request.headers().get("upgrade").is_none() {
        return http::Response::builder().status(426).body(text("upgrade required")).expect("response");
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
        let _ = tokio::io::copy(&mut read, &mut write).await;
        use tokio::io::AsyncWriteExt;
        let _ = write.shutdown().await;
    });
    http::Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(text(Bytes::new()))
        .expect("response")
}

/// A request body fed by the returned sender; it ends when the sender is dropped.
fn channel_body() -> (mpsc::Sender<Bytes>, RequestBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|data| (Ok::<_, BoxError>(Frame::data(data)), rx))
    });
    (tx, StreamBody::new(stream).boxed_unsync())
}

async fn upgrade(client: &EndpointClient) -> http::Response<Incoming> {
    let request = http::Request::get(client.uri("/tunnel").expect("uri"))
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(crate::http::empty())
        .expect("request");
    client.send(request).await.expect("upgrade answer")
}

/// Reads from `body` until `want` bytes arrived.
async fn read_exactly(body: &mut ResponseBody, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let frame = body.frame().await.expect("more bytes").expect("no error");
        let data = frame.into_data().expect("data");
        assert!(data.len() <= 16 * 1024, "chunks are at most 16 KiB");
        got.extend_from_slice(&data);
    }
    got
}

#[tokio::test]
async fn bytes_flow_both_ways_until_the_client_ends() {
    let addr = serve(None, echo_server).await;
    let client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Http1, None)).expect("client");
    let response = upgrade(&client).await;
    assert_eq!(response.status(), 101);
    let (tx, client_bytes) = channel_body();
    let response = tunnel(response, Some(client_bytes));
    assert_eq!(response.headers()["upgrade"], "echo", "the 101's headers are kept");
    let mut body = response.into_body();

    tx.send(Bytes::from_static(b"hello")).await.expect("send");
    assert_eq!(read_exactly(&mut body, 5).await, b"hello");
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    tx.send(Bytes::from(big.clone())).await.expect("send");
    assert_eq!(read_exactly(&mut body, big.len()).await, big);

    drop(tx);
    assert!(body.frame().await.is_none(), "the endpoint closed after our write side shut down");
}

#[tokio::test]
async fn a_tunnel_without_client_bytes_only_reads() {
    let addr = serve(None, echo_server).await;
    let client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Http1, None)).expect("client");
    let response = tunnel(upgrade(&client).await, None);
    let mut body = response.into_body();
    assert!(body.frame().await.is_none(), "our side shut down at once, so the echo ends");
}

#[tokio::test]
async fn a_response_that_is_not_an_upgrade_fails_the_body() {
    let addr = serve(None, |_request| async { http::Response::new(text("plain")) }).await;
    let addr_client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Http1, None)).expect("client");
    let request = http::Request::get(addr_client.uri("/").expect("uri")).body(crate::http::empty()).expect("request");
    let response = addr_client.send(request).await.expect("answer");
    let (_tx, client_bytes) = channel_body();
    let mut body = tunnel(response, Some(client_bytes)).into_body();
    let error = body.frame().await.expect("a frame").expect_err("no upgrade happened");
    assert!(error.to_string().contains("upgraded"), "{error}");
}

#[tokio::test]
async fn upgrades_go_over_http1_whatever_the_protocol() {
    let certs = certs();
    let h2c = serve(None, echo_server).await;
    let tls_addr = serve(Some(certs.acceptor.clone()), echo_server).await;
    let clients = [
        EndpointClient::new(h2c, "127.0.0.1", &config(Protocol::Http2, None)).expect("h2c client"),
        EndpointClient::new(tls_addr, "localhost", &config(Protocol::Auto, tls(Some(&certs.ca_pem), None, false)))
            .expect("TLS client"),
    ];
    for client in &clients {
        let response = upgrade(client).await;
        assert_eq!(response.status(), 101, "{client:?}");
        let (tx, client_bytes) = channel_body();
        let mut body = tunnel(response, Some(client_bytes)).into_body();
        tx.send(Bytes::from_static(b"ping")).await.expect("send");
        assert_eq!(read_exactly(&mut body, 4).await, b"ping", "{client:?}");
        drop(tx);
        assert!(body.frame().await.is_none());
    }
}
