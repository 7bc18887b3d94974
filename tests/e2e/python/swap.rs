//! Hot swap of Python plugins: under load from several keep-alive
//! connections a decorator app is swapped v1 ↔ v2 through the admin API
//! several times with no failed request, every response stamped by exactly
//! one version, each version seen right after its swap, and every retired
//! instance's shutdown hook run. A reload of a rewritten file runs the new
//! code in a fresh namespace (module globals start over).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use covet_e2e::Host;
use serde_json::json;

use crate::{
    common::PATIENCE,
    swap::{admin_post, build_of, swap},
    swap_load::{Tally, load},
};

const CONNECTIONS: usize = 8;
const SWAPS: usize = 6;

/// A decorator app stamping `version`; its shutdown hook appends to `shutdowns.log`.
fn app(version: &str) -> String {
    format!(
        r#"
import os
from covet import Covet, Response

app = Covet()
calls = 0

@app.get("/app")
def handle():
    global calls
    calls += 1
    return Response(b"{version} %d" % calls, 200, [("x-plugin-build", "{version}")])

@app.on_shutdown
def bye():
    with open(os.path.join(os.path.dirname(__file__), "shutdowns.log"), "a") as log:
        log.write("{version}\n")
"#
    )
}

fn manifest() -> String {
    "listen: [{ addr: 127.0.0.1:0 }]\nlog: { access: false }\n\
     plugins:\n  app:\n    kind: python\n    app: v1.py:app\n\
     routes:\n  - path: /app\n    handler: app\n"
        .to_owned()
}

async fn shutdowns(host: &Host, at_least: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(host.path("shutdowns.log")).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= at_least || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_python_app_under_load_fails_no_request() {
    let host = Host::builder(manifest()).file("v1.py", app("v1")).file("v2.py", app("v2")).start();
    host.wait_ready().await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers: Vec<_> =
        (0..CONNECTIONS).map(|_| tokio::spawn(load(host.http1(), stop.clone(), tally.clone()))).collect();
    let probe = host.http1();
    for i in 0..SWAPS {
        let version = if i % 2 == 0 { "v2" } else { "v1" };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = swap(&host, "app", json!({ "path": format!("{version}.py") })).await;
        assert_eq!(reply.status, 200, "swap {i}: {}", reply.text());
        assert_eq!(build_of(&probe, "/app").await, version, "swap {i}: the next request runs {version}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let failures = tally.failures.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "failed requests, first: {:?}", tally.first_failure.lock().unwrap());
    let (v1, v2) = (tally.ok[0].load(Ordering::Relaxed), tally.ok[1].load(Ordering::Relaxed));
    assert!(v1 > 0 && v2 > 0, "both versions served under load: v1 {v1}, v2 {v2}");
    let retired = shutdowns(&host, SWAPS).await;
    assert_eq!(retired.len(), SWAPS, "every retired instance ran its shutdown hook: {retired:?}");
    assert_eq!(retired.iter().filter(|v| *v == "v1").count(), SWAPS / 2, "{retired:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_a_rewritten_file_runs_new_code_in_a_fresh_namespace() {
    let host = Host::builder(manifest()).file("v1.py", app("v1")).start();
    host.wait_ready().await;
    let client = host.http1();
    assert_eq!(client.get("/app").await.unwrap().text(), "v1 1");
    assert_eq!(client.get("/app").await.unwrap().text(), "v1 2", "module state lives within an instance");
    std::fs::write(host.path("v1.py"), app("v2")).unwrap();
    let reply = admin_post(&host, "/v1/plugins/app/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["new_code"], true, "{}", reply.text());
    let reply = client.get("/app").await.unwrap();
    assert_eq!(reply.text(), "v2 1", "new code, and its globals start over");
    assert_eq!(shutdowns(&host, 1).await, vec!["v1".to_owned()]);
}
