//! A swap to another build of the proxy while traffic is in the old one: a
//! response is streaming through the old instance and a WebSocket is open
//! when the proxy is swapped to a copy of its library with bytes appended
//! (another sha256, so the host loads it as new code), and back again. The
//! response completes intact, the WebSocket echoes on and closes cleanly,
//! the replaced instances shut down, and the host keeps serving. (The host
//! never unloads a library, so this is about instances, not code.)

use std::{path::PathBuf, time::Instant};

use bytes::{Bytes, BytesMut};
use covet_e2e::{Host, plugin};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::{net::TcpStream, sync::mpsc};
use tokio_tungstenite::tungstenite::Message;

use super::{
    PROXY, TICK, assert_echo, close_cleanly, http1_upstream, patiently, start, upstream::mixed_upstream, ws_connect,
};
use crate::{
    common::PATIENCE,
    swap::{status, swap},
};

/// A copy of the proxy library with `tag` appended (ignored by the loader,
/// but a different file hash).
fn another_build(dir: &tempfile::TempDir, tag: &str) -> PathBuf {
    let copy = dir.path().join(format!("libcovet_proxy_{tag}.so"));
    let mut bytes = std::fs::read(plugin("covet-proxy")).expect("read the proxy library");
    bytes.extend_from_slice(format!("\0covet-e2e build {tag}\0").as_bytes());
    std::fs::write(&copy, bytes).expect("write the copy");
    copy
}

/// `GET path` through covet on its own HTTP/1.1 connection; asserts the
/// 200 and returns the body still streaming.
async fn get_streaming(host: &Host, path: &str) -> Incoming {
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.expect("handshake");
    tokio::spawn(connection);
    let request = Request::get(path).header("host", "covet.test").body(Empty::<Bytes>::new()).unwrap();
    let response = patiently("the response head", sender.send_request(request)).await.expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

/// The next data frame of `body`.
async fn next_chunk(body: &mut Incoming) -> Bytes {
    loop {
        let frame = patiently("a chunk", body.frame()).await.expect("the body goes on").expect("a body frame");
        if let Ok(data) = frame.into_data() {
            return data;
        }
    }
}

/// Swaps the proxy to `path`; asserts the host loaded it as new code and
/// runs it. Returns its sha256.
async fn swap_to(host: &Host, path: &PathBuf) -> String {
    let reply = swap(host, PROXY, json!({ "path": path })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let outcome = reply.json();
    assert_eq!(outcome["new_code"], true, "another build is new code: {outcome}");
    let live = status(host, PROXY).await;
    assert_eq!(live["sha256"], outcome["sha256"], "the new build is live");
    live["sha256"].as_str().expect("sha256").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_and_a_websocket_outlive_swaps_to_other_builds() {
    let (feed, chunks) = mpsc::channel(4);
    let host = start(http1_upstream(mixed_upstream(Some(chunks)).await), json!({})).await;
    let first_sha = status(&host, PROXY).await["sha256"].clone();
    let mut ws = ws_connect(host.addr(), "/ws/across").await;
    assert_echo(&mut ws, Message::text("before the swaps")).await;
    let mut body = get_streaming(&host, "/stream").await;
    feed.send(Bytes::from_static(b"chunk 0|")).await.unwrap();
    assert_eq!(next_chunk(&mut body).await, "chunk 0|");

    let dir = tempfile::tempdir().unwrap();
    let b = swap_to(&host, &another_build(&dir, "b")).await;
    assert_ne!(json!(b), first_sha, "build b hashes differently");
    assert_echo(&mut ws, Message::text("after the swap to b")).await;
    swap_to(&host, &another_build(&dir, "c")).await;
    assert_echo(&mut ws, Message::text("after the swap to c")).await;

    let mut expected = BytesMut::from(&b"chunk 0|"[..]);
    for i in 1..=20 {
        let chunk = Bytes::from(format!("chunk {i}|"));
        expected.extend_from_slice(&chunk);
        feed.send(chunk).await.unwrap();
    }
    drop(feed);
    let rest = patiently("the rest of the body", body.collect()).await.expect("the body ends cleanly").to_bytes();
    let mut received = BytesMut::from(&b"chunk 0|"[..]);
    received.extend_from_slice(&rest);
    assert_eq!(received, expected, "the response streamed across the swaps is whole");
    close_cleanly(ws).await;

    assert_retired(&host, 2).await;
    let reply = host.http1().get("/after").await.expect("the host still serves");
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "ok /after".to_string()));
}

/// Waits until `count` instances have shut down (panics after PATIENCE).
async fn assert_retired(host: &Host, count: usize) {
    let retired = || host.logs().matches("plugin instance retired").count();
    let deadline = Instant::now() + PATIENCE;
    while retired() < count && Instant::now() < deadline {
        tokio::time::sleep(TICK).await;
    }
    assert_eq!(retired(), count, "both replaced instances shut down:\n{}", host.logs());
}
