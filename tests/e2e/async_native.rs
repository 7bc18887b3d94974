//! Async native plugins (ABI 0.2) and streaming bodies across the native ABI,
//! against the `covet-async-plugin` fixture: pending phases under concurrent
//! load, cancellation when the client goes away (HTTP/1.1 close, HTTP/2
//! RST_STREAM), a panic in a pending future, a swap while requests are
//! pending, a 100 MB upload through a native filter and handler in bounded
//! memory, `max_body` enforced mid-stream, and a streamed download.

use std::time::{Duration, Instant};

use covet_e2e::{Host, Manifest, RawConn, Route};
use http::Method;
use serde_json::{Value, json};

use crate::common::{PATIENCE, assert_problem};
use crate::swap::swap;

const FIXTURE: &str = "covet-async-plugin";

fn mode(mode: &str, extra: Value) -> Value {
    let mut config = json!({ "mode": mode });
    config.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    config
}

fn gateway() -> Manifest {
    gateway_with_max_body("200MiB")
}

fn gateway_with_max_body(max_body: &str) -> Manifest {
    Manifest::new()
        .limit("max_body", max_body)
        .plugin("slow-filter", FIXTURE, mode("delay", json!({ "ms": 50, "label": "f" })))
        .plugin("slow-handler", FIXTURE, mode("delay", json!({ "ms": 50, "label": "h" })))
        .plugin("hang", FIXTURE, mode("hang", json!({ "ms": 600_000, "label": "v1" })))
        .plugin("stats", FIXTURE, mode("stats", json!({})))
        .plugin("boom", FIXTURE, mode("panic", json!({ "ms": 20 })))
        .plugin("upper", FIXTURE, mode("upper", json!({})))
        .plugin("count", FIXTURE, mode("count", json!({})))
        .plugin("download", FIXTURE, mode("download", json!({ "bytes": 8 << 20 })))
        .route(Route::new("/delay").filters(["slow-filter"]).handler("slow-handler"))
        .route(Route::new("/hang").handler("hang"))
        .route(Route::new("/stats").handler("stats"))
        .route(Route::new("/boom").handler("boom"))
        .route(Route::new("/upload").methods(["POST"]).filters(["upper"]).handler("count"))
        .route(Route::new("/download").handler("download"))
}

async fn stats(host: &Host) -> (u64, u64) {
    let reply = host.http1().get("/stats").await.expect("stats");
    let json = reply.json();
    (json["started"].as_u64().unwrap(), json["dropped"].as_u64().unwrap())
}

/// Waits until `check` holds on the fixture's counters.
async fn wait_stats(host: &Host, what: &str, check: impl Fn((u64, u64)) -> bool) -> (u64, u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = stats(host).await;
        if check(now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: counters stuck at (started, dropped) = {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn async_filter_and_handler_serve_concurrent_requests() {
    let host = Host::start(gateway()).await;
    for client in [host.http1(), host.http2()] {
        let calls = (0..64).map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/delay").await })
        });
        for call in calls.collect::<Vec<_>>() {
            let reply = call.await.unwrap().expect("a response");
            assert_eq!((reply.status.as_u16(), reply.text()), (200, "handler=h filter=f".to_string()));
        }
    }
}

#[tokio::test]
async fn http1_client_close_drops_the_pending_phase() {
    let host = Host::start(gateway()).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send("GET /hang HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    wait_stats(&host, "the handler starts", |(started, _)| started == 1).await;
    drop(conn);
    wait_stats(&host, "closing the connection drops the future", |(_, dropped)| dropped == 1).await;
}

#[tokio::test]
async fn http2_stream_reset_drops_the_pending_phase() {
    let host = Host::start(gateway()).await;
    let client = host.http2();
    let keep = client.clone();
    let pending = tokio::spawn(async move { client.get("/hang").await });
    wait_stats(&host, "the handler starts", |(started, _)| started == 1).await;
    pending.abort(); // drops the response future: the client resets the stream
    wait_stats(&host, "RST_STREAM drops the future", |(_, dropped)| dropped == 1).await;
    let reply = keep.get("/delay").await.expect("the connection still serves");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_panic_in_a_pending_future_is_a_500_and_the_host_keeps_serving() {
    let host = Host::start(gateway()).await;
    let reply = host.http1().get("/boom").await.expect("a response");
    let error = assert_problem(&reply, 500, "PLUGIN_PANIC");
    assert_eq!(error["details"], json!({ "plugin": "boom", "phase": "handle" }));
    let healthy = host.http1().get("/delay").await.expect("still serving");
    assert_eq!(healthy.status, 200);
}

#[tokio::test]
async fn requests_pending_across_a_swap_finish_on_the_old_instance() {
    let manifest = gateway().plugin("short", FIXTURE, mode("hang", json!({ "ms": 1500, "label": "v1" })));
    let host = Host::start(manifest.route(Route::new("/short").handler("short"))).await;
    let client = host.http1();
    let pending = tokio::spawn(async move { client.get("/short").await });
    wait_stats(&host, "the v1 handler starts", |(started, _)| started == 1).await;
    let swapped = swap(&host, "short", json!({ "config": mode("hang", json!({ "ms": 10, "label": "v2" })) })).await;
    assert_eq!(swapped.status, 200, "{}", swapped.text());
    let fresh = host.http1().get("/short").await.expect("a response");
    assert_eq!(fresh.text(), "finished on v2");
    let old = pending.await.unwrap().expect("the pending request completes");
    assert_eq!((old.status.as_u16(), old.text()), (200, "finished on v1".to_string()));
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_100_mb_upload_streams_through_a_native_filter_and_handler_in_bounded_memory() {
    let host = Host::start(gateway()).await;
    let warm = host.http1().send(Method::POST, "/upload", &[], "warm-up a").await.unwrap();
    assert_eq!(warm.text(), "bytes=9 a=0 A=2");
    let before = vm_hwm_kib(host.pid());
    let body = bytes::Bytes::from(vec![b'a'; 100 << 20]);
    let reply = host.http1().send(Method::POST, "/upload", &[], body).await.expect("a response");
    assert_eq!(reply.text(), format!("bytes={} a=0 A={}", 100 << 20, 100 << 20));
    let grown = vm_hwm_kib(host.pid()).saturating_sub(before);
    assert!(grown < 16 * 1024, "peak RSS grew by {grown} KiB for a 100 MiB upload");
}

#[tokio::test]
async fn max_body_is_enforced_mid_stream() {
    let host = Host::start(gateway_with_max_body("1MiB")).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send("POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = vec![b'a'; 64 << 10];
    for _ in 0..24 {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if conn.send(&framed).await.is_err() {
            break; // the host answered and closed: the rest is not needed
        }
    }
    let _ = conn.send("0\r\n\r\n").await;
    let resp = conn.response(PATIENCE).await;
    assert_eq!(resp.status, 413, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.json()["error"]["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_handler_streams_a_large_response_with_its_exact_length() {
    let host = Host::start(gateway()).await;
    for client in [host.http1(), host.http2()] {
        let reply = client.get("/download").await.expect("a response");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), 8 << 20);
        assert!(reply.body.iter().all(|&b| b == b'x'));
        assert_eq!(reply.header("content-length"), Some("8388608"));
    }
}
