//! The same tunnels and streams on the io_uring backend (`COVET_IO=uring`),
//! whose connections run on per-core tokio-uring runtimes rather than the
//! main runtime: WebSockets over HTTP/2 extended CONNECT, gRPC server
//! streaming with its status in trailers, WebSockets over HTTP/1.1
//! upgrades (the upgraded io_uring connection stays on its thread), and
//! both kinds echoing across 20 reloads of the proxy.

use covet_e2e::Host;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{
    PROXY, assert_echo, close_cleanly,
    extended_connect::{h2_connection, h2_websocket, origin},
    grpc::{
        client, echo_server as grpc_server, h2c_upstream,
        pb::{CountRequest, SayRequest},
    },
    http1_upstream, manifest, patiently, pattern,
    websocket::echo_server as ws_server,
    ws_connect,
};
use crate::swap::admin_post;

/// covet on io_uring proxying to `upstream`; asserts the backend is io_uring.
async fn start_on_uring(upstream: Value) -> Host {
    let host = Host::builder(manifest(upstream, json!({}))).env("COVET_IO", "uring").start();
    host.wait_ready().await;
    let line = host.log_line(&["io backend: uring"]).await;
    assert!(line.is_some(), "the host serves on io_uring; logs:\n{}", host.logs());
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_over_http2_extended_connect_through_the_proxy_on_io_uring() {
    let (upstream, seen) = ws_server().await;
    let host = start_on_uring(http1_upstream(upstream)).await;
    let mut sender = h2_connection(host.addr()).await;
    let mut first = h2_websocket(&mut sender, &origin(&host), "/uring/h2/1").await;
    let mut second = h2_websocket(&mut sender, &origin(&host), "/uring/h2/2").await;
    assert_echo(&mut first, Message::text("hello over h2 on io_uring")).await;
    assert_echo(&mut second, Message::binary(pattern(1 << 20))).await;
    assert_echo(&mut first, Message::binary(pattern(300_000))).await;
    close_cleanly(first).await;
    assert_echo(&mut second, Message::text("the second one is still open")).await;
    close_cleanly(second).await;
    assert_eq!(seen.lock().unwrap().len(), 2, "both upgrades reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http1_upgrade_through_the_proxy_on_io_uring() {
    let (upstream, seen) = ws_server().await;
    let host = start_on_uring(http1_upstream(upstream)).await;
    // Several at once: connections land on different io_uring threads.
    let mut sockets = Vec::new();
    for i in 0..4 {
        sockets.push(ws_connect(host.addr(), &format!("/uring/h1/{i}")).await);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_echo(ws, Message::text(format!("hello over io_uring from {i}"))).await;
    }
    assert_echo(&mut sockets[0], Message::binary(pattern(1 << 20))).await;
    for ws in sockets {
        close_cleanly(ws).await;
    }
    assert_eq!(seen.lock().unwrap().len(), 4, "every upgrade reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_and_statuses_through_the_proxy_on_io_uring() {
    let host = start_on_uring(h2c_upstream(grpc_server().await)).await;
    let mut client = client(host.addr()).await;

    let reply = patiently("Say", client.say(SayRequest { text: "uring".into() })).await.expect("Say");
    assert_eq!(reply.into_inner().text, "echo: uring");

    let call = client.count(CountRequest { count: 100, fail_with: "done at 100".into() });
    let mut stream = patiently("Count", call).await.expect("Count starts").into_inner();
    let mut received = Vec::new();
    let status = loop {
        match patiently("next message", stream.message()).await {
            Ok(Some(reply)) => received.push(reply.n),
            Ok(None) => {
                panic!("the stream ended with status OK after {} messages: the trailers were lost", received.len())
            }
            Err(status) => break status,
        }
    };
    assert_eq!(received, (1..=100).collect::<Vec<_>>(), "all messages, in order");
    assert_eq!((status.code(), status.message()), (tonic::Code::Aborted, "done at 100"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_on_io_uring_outlive_swaps_of_the_proxy() {
    let (upstream, _) = ws_server().await;
    let host = start_on_uring(http1_upstream(upstream)).await;
    let mut sockets = Vec::new();
    for i in 0..3 {
        sockets.push(ws_connect(host.addr(), &format!("/uring/swap/{i}")).await);
    }
    let mut sender = h2_connection(host.addr()).await;
    let mut h2 = h2_websocket(&mut sender, &origin(&host), "/uring/swap/h2").await;
    for swap in 0..20 {
        let reply = admin_post(&host, &format!("/v1/plugins/{PROXY}/reload"), json!({})).await;
        assert_eq!(reply.status, 200, "reload {swap}: {}", reply.text());
        for (i, ws) in sockets.iter_mut().enumerate() {
            assert_echo(ws, Message::text(format!("socket {i} after reload {swap}"))).await;
        }
        assert_echo(&mut h2, Message::text(format!("h2 socket after reload {swap}"))).await;
    }
    for ws in sockets {
        close_cleanly(ws).await;
    }
    close_cleanly(h2).await;
}
