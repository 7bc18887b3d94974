//! Swaps under load (the short version of `bench/swap.sh`, without timing
//! assertions): 50 keep-alive connections keep requesting while the handler
//! is swapped between two builds 20 times. No request may fail, every
//! response carries exactly one build stamp, and a request sent after a swap
//! returned always sees the new build.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use covet_e2e::{Client, Host, Manifest, Route, plugin};
use serde_json::json;

use crate::swap::{build_of, swap};

const CONNECTIONS: usize = 50;
const SWAPS: usize = 20;

/// What the load connections saw: responses per build, and failures.
#[derive(Default)]
pub struct Tally {
    /// 200s stamped v1 and v2.
    pub ok: [AtomicU64; 2],
    /// Failed requests (bad status, stamps or transport).
    pub failures: AtomicU64,
    /// The first failure, for the assertion message.
    pub first_failure: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().unwrap().get_or_insert(what);
    }
}

/// One keep-alive connection requesting `/app` until `stop` (also used by
/// `python::swap`).
pub async fn load(client: Client, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::Relaxed) {
        match client.get("/app").await {
            Ok(reply) if reply.status == 200 => {
                let stamps: Vec<_> = reply.headers.get_all("x-plugin-build").iter().collect();
                match stamps.as_slice() {
                    [one] if *one == "v1" => tally.ok[0].fetch_add(1, Ordering::Relaxed),
                    [one] if *one == "v2" => tally.ok[1].fetch_add(1, Ordering::Relaxed),
                    other => {
                        tally.fail(format!("stamps {other:?}"));
                        0
                    }
                };
            }
            Ok(reply) => tally.fail(format!("status {}: {}", reply.status, reply.text())),
            Err(e) => tally.fail(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_under_load_fails_no_request() {
    let manifest = Manifest::new()
        .access_log(false)
        .plugin("app", "covet-versioned-v1", json!({}))
        .route(Route::new("/app").handler("app"));
    let host = Host::start(manifest).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(load(Client::http1(host.addr()), stop.clone(), tally.clone())))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let probe = host.http1();
    for i in 0..SWAPS {
        let build = if i % 2 == 0 { 2 } else { 1 };
        let reply = swap(&host, "app", json!({ "path": plugin(&format!("covet-versioned-v{build}")) })).await;
        assert_eq!(reply.status, 200, "swap {i}: {}", reply.text());
        assert_eq!(build_of(&probe, "/app").await, format!("v{build}"), "swap {i} is live when it returns");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let failures = tally.failures.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "first failure: {:?}", tally.first_failure.lock().unwrap());
    let (v1, v2) = (tally.ok[0].load(Ordering::Relaxed), tally.ok[1].load(Ordering::Relaxed));
    assert!(v1 > 0 && v2 > 0, "both builds served: v1 {v1}, v2 {v2}");
    let retired = || host.logs().matches("plugin instance retired").count();
    let deadline = std::time::Instant::now() + crate::common::PATIENCE;
    while retired() < SWAPS && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(retired(), SWAPS, "every replaced instance shut down once:\n{}", host.logs());
}
