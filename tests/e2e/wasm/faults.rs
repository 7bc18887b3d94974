//! Faults inside a WASM plugin fail only the request that hit them, with
//! the structured error body and the status of the fault — a trap or
//! exhausted memory or fuel 500, a run past the time limit 504 — while a
//! request on another route, sent meanwhile, is answered at once. Each is
//! counted on the plugin and logged with its name.

use std::time::{Duration, Instant};

use covet_e2e::{Host, Reply};
use serde_json::{Value, json};

use super::Gateway;
use crate::common::{PATIENCE, assert_problem};

/// `/bad` is the probe misbehaving with `fault` under `limits`; `/ok` a
/// healthy WASM handler.
async fn gateway(fault: Value, limits: Value) -> Host {
    Gateway::new()
        .wasm_with("bad", "covet_wasm_probe", fault, json!({ "limits": limits }))
        .wasm("ok", "covet_wasm_noop", Value::Null)
        .route("/bad", &[], "bad")
        .route("/ok", &[], "ok")
        .start()
        .await
}

/// Sends `/bad`, and `/ok` while it is in flight: `/ok` must be answered
/// first, with a 200. Returns `/bad`'s reply and how long it took.
async fn bad_while_ok_is_served(host: &Host) -> (Reply, Duration) {
    let client = host.http1();
    let started = Instant::now();
    let bad = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/bad").await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let ok = client.get("/ok").await.expect("the other route answers");
    assert_eq!((ok.status.as_u16(), ok.text().as_str()), (200, "ok"));
    let reply = tokio::time::timeout(PATIENCE, bad).await.expect("bounded").unwrap().expect("a response, not a reset");
    (reply, started.elapsed())
}

/// The plugin's counters from the admin API.
async fn counters(host: &Host) -> (u64, u64) {
    let live = crate::swap::status(host, "bad").await;
    (live["errors"].as_u64().unwrap(), live["panics"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_a_500_and_the_host_keeps_serving() {
    let host = gateway(json!({ "fault": "trap" }), json!({})).await;
    let (reply, _) = bad_while_ok_is_served(&host).await;
    let error = assert_problem(&reply, 500, "PLUGIN_PANIC");
    assert_eq!(error["details"], json!({ "plugin": "bad", "phase": "handle" }));
    assert!(!reply.text().contains("probe traps"), "the guest's message stays in the log: {}", reply.text());
    assert!(host.log_line(&["bad", "plugin panicked", "wasm trap", "unreachable"]).await.is_some(), "logs:\n{}", host.logs());
    let again = host.http1().get("/bad").await.unwrap();
    assert_problem(&again, 500, "PLUGIN_PANIC");
    assert_eq!(counters(&host).await, (0, 2), "each trap is counted as a panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_cut_at_the_time_limit_with_a_504() {
    let host = gateway(json!({ "fault": "loop" }), json!({ "timeout": "300ms" })).await;
    let (reply, took) = bad_while_ok_is_served(&host).await;
    let error = assert_problem(&reply, 504, "PLUGIN_TIMEOUT");
    assert_eq!(error["details"], json!({ "plugin": "bad", "phase": "handle" }));
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "cut at the limit: {took:?}");
    assert!(host.log_line(&["bad", "timed out", "300 ms"]).await.is_some(), "logs:\n{}", host.logs());
    assert_eq!(counters(&host).await, (1, 0), "a timeout is counted as an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_waiting_past_its_time_limit_gets_a_504() {
    let host = gateway(json!({ "fault": "sleep", "sleep_ms": 10_000 }), json!({ "timeout": "200ms" })).await;
    let (reply, took) = bad_while_ok_is_served(&host).await;
    assert_problem(&reply, 504, "PLUGIN_TIMEOUT");
    assert!(took < Duration::from_secs(3), "not the 10 s it asked for: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit_with_a_500() {
    let host = gateway(json!({ "fault": "memory" }), json!({ "memory": "16MiB" })).await;
    let (reply, _) = bad_while_ok_is_served(&host).await;
    assert_problem(&reply, 500, "PLUGIN_PANIC");
    let line = host.log_line(&["bad", "ran out of memory", "16777216"]).await;
    assert!(line.is_some(), "logs:\n{}", host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_fuel_is_a_500() {
    let host = gateway(json!({ "fault": "loop" }), json!({ "fuel": 5_000_000, "timeout": "10s" })).await;
    let (reply, took) = bad_while_ok_is_served(&host).await;
    assert_problem(&reply, 500, "PLUGIN_PANIC");
    assert!(took < Duration::from_secs(5), "fuel ends it long before the time limit: {took:?}");
    assert!(host.log_line(&["bad", "ran out of fuel"]).await.is_some(), "logs:\n{}", host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_in_a_wasm_filter_names_its_phase_and_skips_the_handler() {
    let host = Gateway::new()
        .wasm("guard", "covet_wasm_probe", json!({ "fault": "trap", "fault_in": "on_request" }))
        .native("echo", "covet-test-plugin", json!({ "label": "echo" }))
        .route("/guarded", &["guard"], "echo")
        .route("/open", &[], "echo")
        .start()
        .await;
    let reply = host.http1().get("/guarded").await.expect("response");
    let error = assert_problem(&reply, 500, "PLUGIN_PANIC");
    assert_eq!(error["details"], json!({ "plugin": "guard", "phase": "on_request" }));
    assert_eq!(host.http1().get("/open").await.unwrap().status, 200);
}

#[test]
fn a_plugin_whose_init_refuses_its_config_stops_the_host_at_its_line() {
    let manifest = Gateway::new()
        .wasm("ab", "ab_tagger", json!({ "variants": {} }))
        .wasm("ok", "covet_wasm_noop", Value::Null)
        .route("/", &["ab"], "ok");
    let exited = Host::builder(manifest).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("plugin \"ab\" refused its config"), "{}", exited.stderr);
    assert!(exited.stderr.contains("`variants` needs at least one variant"), "{}", exited.stderr);
}

#[test]
fn a_file_that_is_not_a_component_is_refused_at_load() {
    let manifest = json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "plugins": { "fake": { "kind": "wasm", "path": covet_e2e::plugin("covet-test-plugin") } },
        "routes": [{ "path": "/", "handler": "fake" }],
    });
    let exited = Host::builder(manifest.to_string()).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("not a WebAssembly component"), "{}", exited.stderr);
}
