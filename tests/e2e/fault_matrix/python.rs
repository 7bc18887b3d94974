//! Python faults under load, from one decorator app: an exception, an
//! infinite loop in a sync handler (its pool thread is lost for good), an
//! infinite loop in an async handler (the event loop thread is lost for
//! good: cancelling cannot stop code that never awaits), and a memory bomb.
//! Python has no memory limit of its own, so the bomb tested is one the OS
//! refuses (a 1 EiB `bytearray`: `MemoryError`, nothing touched); a bomb
//! that grows within what the OS grants is stopped by nothing short of the
//! kernel's OOM killer, which takes the whole host (docs/hardening.md).
//! Each test asserts what docs/python-runtime.md promises for the other
//! Python routes after the fault, and that the native route never failed.

use covet_e2e::{Host, plugin};

use super::{NativeLoad, SHOTS, assert_all, assert_survived, counter, fire, report};
use crate::common::assert_problem;

const APP: &str = r#"
import asyncio, time
from covet import Covet

app = Covet()

@app.get("/py/boom")
def boom():
    raise RuntimeError("fault-matrix-boom")

@app.get("/py/spin", blocking=True)
def spin():
    while True:
        pass

@app.get("/py/ispin")
def ispin():
    while True:
        pass

@app.get("/py/bok", blocking=True)
def bok():
    return {"ok": True}

@app.get("/py/aspin")
@app.get("/patient/aspin")
async def aspin():
    while True:
        pass

HOLDS_STARTED = [0]

@app.get("/py/hold", blocking=True)
def hold():
    HOLDS_STARTED[0] += 1
    time.sleep(1.0)
    return {"ok": True}

@app.get("/py/started")
async def started():
    return {"ok": True, "started": HOLDS_STARTED[0]}

@app.get("/py/bomb")
def bomb():
    hoard = bytearray(1 << 60)
    return {"len": len(hoard)}

@app.get("/py/ok")
@app.get("/patient/ok")
def ok():
    return {"ok": True}

@app.get("/py/aok")
@app.get("/patient/aok")
async def aok():
    await asyncio.sleep(0)
    return {"ok": True}
"#;

/// `/native` static-response; `/py/*` the app with a 300 ms time limit
/// (the faults, and what must time out), `/patient/*` the same app with
/// 10 s (what must answer, however busy the machine); two pool threads,
/// shared by both plugins as is the event loop.
fn manifest() -> String {
    let native = plugin("covet-static-response");
    format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\n\
         log: {{ access: false }}\n\
         python: {{ threads: 2 }}\n\
         plugins:\n\
         \x20 native:\n    kind: native\n    path: {}\n    config: {{ body: {} }}\n\
         \x20 py:\n    kind: python\n    app: app.py:app\n    limits: {{ timeout: 300ms }}\n\
         \x20 patient:\n    kind: python\n    app: app.py:app\n    limits: {{ timeout: 10s }}\n\
         routes:\n\
         \x20 - path: /native\n    handler: native\n\
         \x20 - path: /py/{{*rest}}\n    handler: py\n\
         \x20 - path: /patient/{{*rest}}\n    handler: patient\n",
        native.display(),
        super::NATIVE_BODY,
    )
}

async fn host() -> Host {
    let host = Host::builder(manifest()).file("app.py", APP).start();
    host.wait_ready().await;
    host
}

/// `path` answers 200 `{"ok": true}`.
async fn answers(host: &Host, path: &str) {
    let reply = host.http1().get(path).await.expect("a response");
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    assert_eq!(reply.json()["ok"], true);
}

/// `path` answers 504 `PLUGIN_TIMEOUT`.
async fn times_out(host: &Host, path: &str) {
    let reply = host.http1().get(path).await.expect("a response");
    assert_problem(&reply, 504, "PLUGIN_TIMEOUT");
}

/// The host's resident memory in KiB, from `/proc/PID/status`.
fn rss_kib(host: &Host) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exception_under_load() {
    let host = host().await;
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/py/boom").await;
    assert_all(&replies, 500, "PLUGIN_ERROR", "py", None);
    assert!(replies.iter().all(|r| !r.text().contains("fault-matrix-boom")), "the exception text stays in the log");
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, "errors", "py").await, SHOTS as u64, "each exception counted");
    assert!(host.log_line(&["fault-matrix-boom"]).await.is_some(), "logs:\n{}", host.logs());
    answers(&host, "/patient/ok").await;
    answers(&host, "/patient/aok").await;
    report("python exception", &replies, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sync_infinite_loop_under_load() {
    let host = host().await;
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/py/spin").await;
    assert_all(&replies, 504, "PLUGIN_TIMEOUT", "py", None);
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, "errors", "py").await, SHOTS as u64, "each timeout counted as an error");
    assert!(host.log_line(&["py", "plugin timed out", "thread stays busy"]).await.is_some(), "logs:\n{}", host.logs());
    // Both pool threads spin for good: async handlers and inline sync ones
    // still answer, blocking ones wait in the queue until their time limit.
    answers(&host, "/patient/aok").await;
    answers(&host, "/py/ok").await;
    times_out(&host, "/py/bok").await;
    report("python sync infinite loop", &replies, served);
}

/// A sync endpoint runs inline on the event loop's thread (I/O worker 0)
/// unless marked `blocking`: spinning there holds the loop and that worker
/// until the loop's watchdog stops it at the plugin's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_inline_infinite_loop_under_load() {
    let host = host().await;
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/py/ispin").await;
    assert_all(&replies, 504, "PLUGIN_TIMEOUT", "py", None);
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, "errors", "py").await, SHOTS as u64, "each timeout counted as an error");
    assert!(host.log_line(&["held the event loop", "it was cancelled"]).await.is_some(), "logs:\n{}", host.logs());
    answers(&host, "/py/ok").await;
    answers(&host, "/py/aok").await;
    answers(&host, "/py/bok").await;
    report("python inline sync infinite loop", &replies, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_async_infinite_loop_under_load() {
    let host = host().await;
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/py/aspin").await;
    assert_all(&replies, 504, "PLUGIN_TIMEOUT", "py", None);
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, "errors", "py").await, SHOTS as u64, "each timeout counted as an error");
    assert!(host.log_line(&["py", "plugin timed out", "task was cancelled"]).await.is_some(), "logs:\n{}", host.logs());
    // The watchdog cancels a coroutine that holds the event loop past its
    // plugin's limit: coroutines are served again, as is the sync pool.
    answers(&host, "/py/aok").await;
    answers(&host, "/patient/ok").await;
    assert!(host.log_line(&["held the event loop", "it was cancelled"]).await.is_some(), "logs:\n{}", host.logs());
    report("python async infinite loop", &replies, served);
}

/// A coroutine that never awaits holds the event loop (within its plugin's
/// 10 s limit, so the watchdog lets it), and the Python plugins' shutdown
/// hooks (which run on that loop) cannot run: SIGTERM must still end the
/// host, the hooks bounded by `shutdown_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_host_while_a_coroutine_holds_the_event_loop() {
    let manifest = manifest().replacen("log: {", "limits: { shutdown_timeout: 2s }\nlog: {", 1);
    let mut host = Host::builder(manifest).file("app.py", APP).start();
    host.wait_ready().await;
    let client = host.http1();
    let spinning = tokio::spawn(async move { client.get("/patient/aspin").await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    host.terminate();
    let status = host.wait_for_exit(crate::common::PATIENCE);
    assert!(status.success(), "exits 0 once the hooks' time is up: {status:?}; logs:\n{}", host.logs());
    // The spinning request holds the drain to its deadline; hooks get no time.
    let bounded = host.log_line(&["shutdown deadline passed"]).await.is_some() || host.log_line(&["shutdown hooks did not finish"]).await.is_some();
    assert!(bounded, "logs:\n{}", host.logs());
    spinning.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_memory_bomb_under_load() {
    let host = host().await;
    let before = rss_kib(&host);
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/py/bomb").await;
    assert_all(&replies, 500, "PLUGIN_ERROR", "py", None);
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, "errors", "py").await, SHOTS as u64, "each MemoryError counted");
    assert!(host.log_line(&["MemoryError"]).await.is_some(), "logs:\n{}", host.logs());
    let grown = rss_kib(&host).saturating_sub(before);
    assert!(grown < 256 * 1024, "the refused allocation took no memory, yet RSS grew {grown} KiB");
    answers(&host, "/patient/ok").await;
    answers(&host, "/patient/aok").await;
    report("python memory bomb (refused allocation)", &replies, served);
}

/// A call queued behind busy pool threads is not started once its request
/// has timed out: with both threads held by calls that outlive their 300 ms
/// limit (they sleep 1 s), three more queued meanwhile are answered 504
/// and never run, so the pool is free again when the two holders return.
/// (Before, every queued call ran in turn once a thread freed, and a
/// volley of slow calls made later requests time out too.) The loop's
/// queue skips such calls the same way (`runtime/python/mod.rs` `Due`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_requests_timed_out_in_the_queue_are_not_started() {
    let host = host().await;
    let began = tokio::time::Instant::now();
    let send = |host: &Host| {
        let client = host.http1();
        tokio::spawn(async move { client.get("/py/hold").await })
    };
    let mut calls: Vec<_> = (0..2).map(|_| send(&host)).collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    calls.extend((0..3).map(|_| send(&host)));
    for reply in calls {
        let reply = reply.await.expect("a request task").expect("a response");
        assert_problem(&reply, 504, "PLUGIN_TIMEOUT");
    }
    // Past the holders' 1 s: a queued call that was going to run has started.
    tokio::time::sleep_until(began + std::time::Duration::from_millis(1500)).await;
    let started = host.http1().get("/py/started").await.expect("started").json()["started"].as_u64().expect("a count");
    assert_eq!(started, 2, "only the two calls that found a free thread ran");
    answers(&host, "/py/bok").await;
}
