//! Fault injection under load: one test per fault kind. Each test starts
//! the real host with a native route (`/native`, static-response) and a
//! faulty plugin's route (`/bad`), keeps [`CLIENTS`] clients requesting
//! `/native` for the whole test, fires the fault [`SHOTS`] times (in rounds
//! of [`VOLLEY`] at once, over HTTP/1.1 and HTTP/2), and asserts that every
//! faulty request got its structured 5xx naming the plugin, that the native
//! clients saw no failure, that the host still serves afterwards and that
//! the fault counters in `/metrics` moved by exactly the shots.
//!
//! - [`native`]: a native plugin panicking in `on_request`, `handle`, `on_response`;
//! - [`wasm`]: a trap, an infinite loop, a memory bomb, a stack overflow;
//! - [`python`]: an exception, an infinite loop in a sync and an async
//!   handler, a memory bomb (an allocation the OS refuses: there is no
//!   memory limit for Python, see docs/hardening.md "Faults");
//! - [`fatal`]: what still kills the host (a segfault, an abort).
//!
//! No timing is asserted: waits have deadlines ([`PATIENCE`]) and progress
//! is counted, not clocked.

mod fatal;
mod native;
mod python;
mod wasm;

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
};
use std::time::Duration;

use covet_e2e::{Client, Host, Reply};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::common::{PATIENCE, assert_problem};

/// Clients requesting the native route throughout.
const CLIENTS: usize = 4;
/// Faulty requests per test.
const SHOTS: usize = 20;
/// Faulty requests sent at once.
const VOLLEY: usize = 4;
/// The native route's body.
const NATIVE_BODY: &str = "native-ok";

/// The native route's plugin, as a manifest entry config.
fn native_config() -> Value {
    json!({ "body": NATIVE_BODY })
}

/// [`CLIENTS`] keep-alive clients (half HTTP/1.1, half HTTP/2) looping on
/// `/native` until stopped, counting what they got.
struct NativeLoad {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<Vec<String>>>,
}

impl NativeLoad {
    /// Starts the clients and waits until they have been served once.
    async fn start(host: &Host) -> NativeLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let tasks = (0..CLIENTS)
            .map(|i| {
                let client = if i % 2 == 0 { host.http1() } else { host.http2() };
                tokio::spawn(native_client(client, stop.clone(), served.clone()))
            })
            .collect();
        let load = NativeLoad { stop, served, tasks };
        load.wait_for(1, host).await;
        load
    }

    /// Requests served so far.
    fn served(&self) -> u64 {
        self.served.load(Relaxed)
    }

    /// Waits until `more` requests beyond those served now were served
    /// (panics after [`PATIENCE`]: the native route stopped being served).
    async fn wait_for(&self, more: u64, host: &Host) {
        let target = self.served() + more;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.served() < target {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the native route stalled at {} requests; logs:\n{}",
                self.served(),
                host.logs()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the clients, whatever they saw (the host may be dead).
    async fn stop(self) {
        self.stop.store(true, Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Stops the clients; asserts none of their requests failed and
    /// returns how many were served.
    async fn finish(self) -> u64 {
        self.stop.store(true, Relaxed);
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(task.await.expect("a native client"));
        }
        let served = self.served.load(Relaxed);
        assert!(
            failures.is_empty(),
            "{} native requests failed (of {}), first: {:?}",
            failures.len(),
            served + failures.len() as u64,
            failures.first()
        );
        served
    }
}

/// One native client: requests `/native` until `stop`, returning failures.
async fn native_client(client: Client, stop: Arc<AtomicBool>, served: Arc<AtomicU64>) -> Vec<String> {
    let mut failures = Vec::new();
    while !stop.load(Relaxed) {
        match tokio::time::timeout(PATIENCE, client.get("/native")).await {
            Ok(Ok(reply)) if reply.status == 200 && reply.body == NATIVE_BODY.as_bytes() => {
                served.fetch_add(1, Relaxed);
            }
            Ok(Ok(reply)) => failures.push(format!("{} {}", reply.status, reply.text())),
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push(format!("no answer within {PATIENCE:?}")),
        }
    }
    failures
}

/// Sends [`SHOTS`] requests to `path`, [`VOLLEY`] at once, alternating
/// HTTP/1.1 and HTTP/2; every one must be answered (each within [`PATIENCE`]).
async fn fire(host: &Host, path: &'static str) -> Vec<Reply> {
    let clients = [host.http1(), host.http2()];
    let mut replies = Vec::with_capacity(SHOTS);
    for round in 0..SHOTS.div_ceil(VOLLEY) {
        let volley: Vec<_> = (0..VOLLEY.min(SHOTS - round * VOLLEY))
            .map(|i| {
                let client = clients[i % 2].clone();
                tokio::spawn(async move { tokio::time::timeout(PATIENCE, client.get(path)).await })
            })
            .collect();
        for shot in volley {
            let reply = shot.await.expect("a shot").unwrap_or_else(|_| panic!("{path} unanswered within {PATIENCE:?}"));
            replies.push(reply.unwrap_or_else(|e| panic!("{path}: a response, not a dropped connection: {e}")));
        }
    }
    replies
}

/// Asserts every reply is the structured `status`/`code` error naming
/// `plugin` (and `phase` when given).
fn assert_all(replies: &[Reply], status: u16, code: &str, plugin: &str, phase: Option<&str>) {
    assert_eq!(replies.len(), SHOTS);
    for reply in replies {
        let error = assert_problem(reply, status, code);
        assert_eq!(error["details"]["plugin"], plugin, "the body names the plugin: {error}");
        if let Some(phase) = phase {
            assert_eq!(error["details"]["phase"], phase, "the body names the phase: {error}");
        }
    }
}

/// `covet_plugin_<counter>_total{plugin="<plugin>"}` from `/metrics`.
async fn counter(host: &Host, counter: &str, plugin: &str) -> u64 {
    let scrape = Client::http1(host.admin_addr()).get("/metrics").await.expect("/metrics").text();
    let series = format!("covet_plugin_{counter}_total{{plugin=\"{plugin}\"}} ");
    let line = scrape.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in:\n{scrape}"));
    line[series.len()..].trim().parse().expect("a count")
}

/// The host after the faults: the native clients must still be served,
/// then they stop with no failure; the process has not exited and answers
/// a fresh client.
async fn assert_survived(host: &Host, load: NativeLoad) -> u64 {
    load.wait_for(CLIENTS as u64 * 5, host).await;
    let served = load.finish().await;
    let reply = host.http1().get("/native").await.expect("the host still serves");
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, NATIVE_BODY));
    assert!(std::path::Path::new(&format!("/proc/{}", host.pid())).exists(), "the host process is gone");
    served
}

/// Prints one matrix row for the report (`--nocapture`).
fn report(kind: &str, replies: &[Reply], served: u64) {
    let status = replies.first().map(|r| r.status.as_u16()).unwrap_or_default();
    let code = replies.first().map(|r| r.json()["error"]["code"].clone()).unwrap_or_default();
    println!("fault matrix | {kind} | {} x {status} {code} | native served {served}, failed 0 | alive", replies.len());
}
