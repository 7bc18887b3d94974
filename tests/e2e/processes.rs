//! Process mode (`processes: 2`, docs/python-runtime.md "Every core"): a
//! supervisor runs two child hosts on one port. Python requests are served
//! by both interpreters; `/metrics` counts the host's requests whichever
//! process served them; a swap answers only when every process runs the
//! new build (and a refused one changes nothing anywhere); a Python C
//! extension that segfaults costs its process, which is replaced while the
//! native routes keep answering; a rate limit with `backend: shared` is one
//! limit for the host; a child that cannot start stops the supervisor with
//! its error; `--watch` is refused.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use covet_e2e::{Client, Host, plugin};
use http::Method;
use serde_json::{Value, json};

use crate::{
    common::{PATIENCE, labelled},
    swap::{admin, build_of, swap},
    swap_load::{Tally, load},
};

/// A decorator app stamping `version`: `/app` (the swap tests' path),
/// `/pid` (which interpreter answered) and `/crash` (a segfault in C code).
fn app(version: &str) -> String {
    format!(
        r#"
import ctypes, os
from covet import Covet, Response

app = Covet()

@app.get("/app")
def handle():
    return Response(b"{version}", 200, [("x-plugin-build", "{version}")])

@app.get("/pid")
def pid():
    return Response(str(os.getpid()).encode(), 200, [("x-plugin-build", "{version}")])

@app.get("/crash")
def crash():
    ctypes.string_at(0)
"#
    )
}

fn manifest(extra: &str) -> String {
    let echo = Value::String(plugin("covet-test-plugin").display().to_string());
    format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\nlog: {{ access: false }}\nprocesses: 2\n\
         plugins:\n  app:\n    kind: python\n    app: v1.py:app\n\
         \x20 echo:\n    kind: native\n    path: {echo}\n    config: {}\n{extra}\
         routes:\n  - path: /app\n    handler: app\n  - path: /pid\n    handler: app\n  - path: /crash\n    handler: app\n\
         \x20 - path: /echo\n    handler: echo\n",
        labelled("echo")
    )
}

async fn start(extra: &str) -> Host {
    let host = Host::builder(manifest(extra)).file("v1.py", app("v1")).file("v2.py", app("v2")).start();
    host.wait_ready().await;
    host
}

/// `GET path` on a connection of its own (so the kernel picks a process).
async fn fresh(host: &Host, path: &str) -> Result<covet_e2e::Reply, String> {
    Client::http1(host.addr()).get(path).await
}

/// The Python interpreters (process ids) that answer `/pid` over `n` connections.
async fn interpreters(host: &Host, n: usize) -> BTreeSet<String> {
    let mut pids = BTreeSet::new();
    for _ in 0..n {
        let reply = fresh(host, "/pid").await.expect("/pid answers");
        assert_eq!(reply.status, 200, "{}", reply.text());
        pids.insert(reply.text());
    }
    pids
}

/// The value of `series` in the supervisor's `/metrics` (0 when absent).
async fn metric(host: &Host, series: &str) -> f64 {
    let reply = admin(host).get("/metrics").await.expect("metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_are_served_by_every_process_and_counted_once_for_the_host() {
    let host = start("").await;
    let supervisor = host.pid().to_string();
    let before = metric(&host, "covet_requests_total{class=\"2xx\"}").await;
    let pids = interpreters(&host, 60).await;
    assert_eq!(pids.len(), 2, "two interpreters answered: {pids:?}");
    assert!(!pids.contains(&supervisor), "the supervisor runs no Python: {pids:?}");
    let after = metric(&host, "covet_requests_total{class=\"2xx\"}").await;
    assert_eq!(after - before, 60.0, "the merged /metrics counts every request once");
    assert_eq!(metric(&host, "covet_processes{state=\"serving\"}").await, 2.0);
    assert_eq!(metric(&host, "covet_processes{state=\"scraped\"}").await, 2.0);
    let list = admin(&host).get("/v1/plugins").await.unwrap();
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["plugins"].as_array().map(Vec::len), Some(2), "{}", list.text());
    assert!(host.stop(PATIENCE).success(), "SIGTERM stops the supervisor and its children cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_answers_once_every_process_runs_the_new_build_and_a_refused_one_changes_nothing() {
    let host = start("").await;
    let refused = swap(&host, "app", json!({ "path": "missing.py" })).await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    for _ in 0..20 {
        assert_eq!(build_of(&Client::http1(host.addr()), "/app").await, "v1", "a refused swap changed nothing");
    }
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let workers: Vec<_> = (0..4).map(|_| tokio::spawn(load(host.http1(), stop.clone(), tally.clone()))).collect();
    for i in 0..4 {
        let version = if i % 2 == 0 { "v2" } else { "v1" };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = swap(&host, "app", json!({ "path": format!("{version}.py") })).await;
        assert_eq!(reply.status, 200, "swap {i}: {}", reply.text());
        for _ in 0..20 {
            assert_eq!(build_of(&Client::http1(host.addr()), "/app").await, version, "swap {i}: every process runs {version}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let failures = tally.failures.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "failed requests, first: {:?}", tally.first_failure.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfault_in_python_costs_its_process_which_is_replaced_while_native_routes_keep_serving() {
    let host = start("").await;
    let pids = interpreters(&host, 40).await;
    assert_eq!(pids.len(), 2, "{pids:?}");
    let crashed = fresh(&host, "/crash").await;
    assert!(crashed.as_ref().map_or(true, |r| r.status.as_u16() >= 500), "the crashing request fails: {crashed:?}");
    let line = host.log_line(&["a host process died", "SIGSEGV"]).await;
    assert!(line.is_some(), "the supervisor logs the crash with its signal; logs:\n{}", host.logs());
    // While the crashed process is replaced, the native route answers on every new connection.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while Instant::now() < deadline {
        let reply = fresh(&host, "/echo").await.expect("the native route answers");
        assert_eq!(reply.status, 200, "{}", reply.text());
        answered += 1;
    }
    assert!(answered > 10, "{answered}");
    let deadline = Instant::now() + PATIENCE;
    let mut now = interpreters(&host, 40).await;
    while now.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = interpreters(&host, 40).await;
    }
    assert_eq!(now.len(), 2, "a replacement serves beside the survivor: {now:?}");
    assert_eq!(now.intersection(&pids).count(), 1, "one survivor, one new process: {pids:?} then {now:?}");
    assert_eq!(metric(&host, "covet_process_restarts_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_replays_the_swaps_made_before_it_so_it_never_serves_an_older_build() {
    let host = start("").await;
    assert_eq!(swap(&host, "app", json!({ "path": "v2.py" })).await.status, 200);
    let before = interpreters(&host, 40).await;
    let crashed = fresh(&host, "/crash").await;
    assert!(crashed.as_ref().map_or(true, |r| r.status.as_u16() >= 500), "{crashed:?}");
    // A swap made while the replacement starts waits for it, and reaches it too.
    let config = swap(&host, "app", json!({ "config": { "note": "after the crash" } })).await;
    assert_eq!(config.status, 200, "{}", config.text());
    let deadline = Instant::now() + PATIENCE;
    let mut now = interpreters(&host, 40).await;
    while now == before || now.len() < 2 {
        assert!(Instant::now() < deadline, "no replacement serving: {before:?} then {now:?}; logs:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = interpreters(&host, 40).await;
    }
    for _ in 0..40 {
        assert_eq!(build_of(&Client::http1(host.addr()), "/app").await, "v2", "the replacement replayed the swap to v2");
    }
    let line = host.log_line(&["replacement process serving", "replayed=2"]).await;
    assert!(line.is_some(), "the replacement replayed both changes; logs:\n{}", host.logs());
    assert_eq!(metric(&host, "covet_process_replay_failures_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_rate_limit_is_one_limit_for_the_host_not_per_process() {
    let limiter = Value::String(plugin("covet-rate-limit").display().to_string());
    let config = json!({ "rate": "10/m", "burst": 10, "key": "header:x-api-key", "backend": "shared" });
    let extra = format!("\x20 limit:\n    kind: native\n    path: {limiter}\n    config: {config}\n    capabilities: {{ state: [ratelimit] }}\n");
    let yaml = manifest(&extra).replace("  - path: /echo\n    handler: echo\n", "  - path: /echo\n    filters: [limit]\n    handler: echo\n");
    let host = Host::builder(yaml).file("v1.py", app("v1")).file("v2.py", app("v2")).start();
    host.wait_ready().await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let reply = Client::http1(host.addr()).send(Method::GET, "/echo", &[("x-api-key", "one")], "").await.unwrap();
        statuses.push(reply.status);
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((allowed, limited), (10, 20), "a burst of 10 for the whole host: {statuses:?}");
    assert_eq!(interpreters(&host, 40).await.len(), 2, "both processes were serving");
}

#[tokio::test]
async fn a_child_that_cannot_start_stops_the_supervisor_with_its_error() {
    let bad = manifest("").replace("app: v1.py:app", "app: broken.py:app");
    let exited = Host::builder(bad).file("broken.py", "raise RuntimeError('no start')\n").run_to_exit(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("no start"), "the child's own error is shown:\n{}", exited.stderr);
    assert!(exited.stderr.contains("process 0") || exited.stderr.contains("process 1"), "{}", exited.stderr);
}

#[tokio::test]
async fn watch_is_refused_in_process_mode() {
    let exited = Host::builder(manifest("")).file("v1.py", app("v1")).env("COVET_WATCH", "1").run_to_exit(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("--watch") && exited.stderr.contains("processes"), "{}", exited.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_keeps_the_token_policy_and_applies_grpc_swaps_to_every_process() {
    use crate::admin::pb::{self, admin_client::AdminClient};
    let host = Host::builder(manifest("")).file("v1.py", app("v1")).file("v2.py", app("v2")).env("COVET_ADMIN_TOKEN", "t0ken").start();
    host.wait_ready().await;
    let anonymous = admin(&host).get("/v1/plugins").await.unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let listed = admin(&host).send(Method::GET, "/v1/plugins", &[("authorization", "Bearer t0ken")], "").await.unwrap();
    assert_eq!(listed.status, 200, "{}", listed.text());
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", host.admin_addr())).unwrap().connect().await.unwrap();
    let mut grpc = AdminClient::new(channel);
    let missing = grpc.reload_plugin(authorised(pb::ReloadPluginRequest { name: "nobody".into() })).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{}", missing.message());
    let swap = pb::SwapPluginRequest { name: "app".into(), path: Some("v2.py".into()), config: None };
    let swapped = grpc.swap_plugin(authorised(swap)).await.expect("SwapPlugin through the supervisor").into_inner();
    assert_eq!(swapped.plugin, "app");
    for _ in 0..20 {
        assert_eq!(build_of(&Client::http1(host.addr()), "/app").await, "v2", "every process runs v2 after the gRPC answer");
    }
    let denied = grpc.list_plugins(pb::ListPluginsRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
}

/// `message` with the admin token.
fn authorised<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", "Bearer t0ken".parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_reload_reaches_every_process_and_a_new_process_count_waits_for_a_restart() {
    let host = start("").await;
    let yaml = std::fs::read_to_string(host.path("plugins.yaml")).unwrap();
    let edited = yaml.replace("processes: 2", "processes: 3").replace("app: v1.py:app", "app: v2.py:app");
    std::fs::write(host.path("plugins.yaml"), edited).unwrap();
    let reply = crate::swap::admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let warnings = reply.json()["warnings"].to_string();
    assert!(warnings.contains("`processes` changed: they take effect after a restart"), "{warnings}");
    for _ in 0..20 {
        assert_eq!(build_of(&Client::http1(host.addr()), "/app").await, "v2", "every process reloaded the manifest");
    }
    assert_eq!(interpreters(&host, 40).await.len(), 2, "still two processes until a restart");
}
