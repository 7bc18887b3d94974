//! Graceful shutdown: SIGTERM stops accepting, lets requests in flight
//! finish, shuts plugins down after their last request, and exits 0.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use covet_e2e::{Client, Host, Manifest, Route};
use serde_json::json;

use crate::common::PATIENCE;

/// How long the slow handler takes.
const SLOW: Duration = Duration::from_millis(1500);

/// `/slow` sleeps [`SLOW`]; the plugin appends to `shutdown_file` when shut down.
fn slow_gateway(shutdown_file: &Path) -> Manifest {
    let config = json!({ "label": "slow", "sleep_ms": SLOW.as_millis() as u64, "shutdown_file": shutdown_file });
    Manifest::new().plugin("slow", "covet-test-plugin", config).route(Route::new("/slow").handler("slow"))
}

/// Starts `GET /slow` on its own connection and gives it time to reach the handler.
async fn slow_request_in_flight(host: &Host) -> tokio::task::JoinHandle<Result<covet_e2e::Reply, String>> {
    slow_request_on(host.http1()).await
}

async fn slow_request_on(client: Client) -> tokio::task::JoinHandle<Result<covet_e2e::Reply, String>> {
    let request = tokio::spawn(async move { client.get("/slow").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!request.is_finished(), "the slow request finished early");
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let files = tempfile::tempdir().unwrap();
    let marker = files.path().join("shutdown.txt");
    let mut host = Host::start(slow_gateway(&marker)).await;
    let sent = SystemTime::now();
    let request = slow_request_in_flight(&host).await;

    host.terminate();
    let reply = request.await.unwrap().expect("the request in flight completes");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["label"], "slow");

    let status = host.wait_for_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "logs:\n{}", host.logs());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "shutdown slow\n", "shutdown ran exactly once");
    // The handler cannot return before `sent + SLOW`; a shutdown that did not
    // wait for it would have written the file about 1 s earlier. (50 ms for
    // the file system's coarse clock.)
    let written = std::fs::metadata(&marker).unwrap().modified().unwrap();
    assert!(
        written + Duration::from_millis(50) >= sent + SLOW,
        "the plugin was shut down {:?} before its request could have finished",
        (sent + SLOW).duration_since(written).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_http2_request_in_flight_finish() {
    let files = tempfile::tempdir().unwrap();
    let mut host = Host::start(slow_gateway(&files.path().join("shutdown.txt"))).await;
    let request = slow_request_on(host.http2()).await;

    host.terminate();
    let reply = request.await.unwrap().expect("the stream in flight completes");
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(host.wait_for_exit(PATIENCE).code(), Some(0), "logs:\n{}", host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connection_after_sigterm_is_not_served() {
    let files = tempfile::tempdir().unwrap();
    let host = Host::start(slow_gateway(&files.path().join("shutdown.txt"))).await;
    let request = slow_request_in_flight(&host).await;

    host.terminate();
    let noticed = host.log_line(&["SIGTERM"]).await;
    assert!(noticed.is_some(), "the host never logged the signal; logs:\n{}", host.logs());
    let late = Client::http1(host.addr()).get("/slow").await;
    assert!(late.is_err(), "a connection opened after SIGTERM was served: {late:?}");

    let reply = request.await.unwrap().expect("the request in flight completes");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn sigterm_on_an_idle_host_exits_0_and_shuts_plugins_down() {
    let files = tempfile::tempdir().unwrap();
    let marker = files.path().join("shutdown.txt");
    let host = Host::start(slow_gateway(&marker)).await;
    let status = host.stop(PATIENCE);
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "shutdown slow\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_wait_for_a_stuck_request() {
    let config = json!({ "label": "stuck", "sleep_ms": 60_000 });
    let manifest = Manifest::new()
        .limit("shutdown_timeout", "1s")
        .plugin("stuck", "covet-test-plugin", config)
        .route(Route::new("/stuck").handler("stuck"));
    let mut host = Host::start(manifest).await;
    let client = host.http1();
    let request = tokio::spawn(async move { client.get("/stuck").await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    host.terminate();
    // Panics when the host is still running after PATIENCE (10 s), far
    // below the request's 60 s.
    host.wait_for_exit(PATIENCE);
    let cut = request.await.unwrap();
    assert!(cut.is_err(), "the stuck request cannot have completed: {cut:?}");
}
