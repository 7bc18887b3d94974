//! WASM faults under load, each from the probe fixture
//! (`wasm-plugins/fixtures/probe`, `fault:`): a trap (a guest panic), an
//! infinite loop cut at `limits.timeout` (epoch deadline), a memory bomb
//! stopped at `limits.memory` and unbounded recursion stopped by the stack
//! guard. Each costs only its own request, with the status docs/wasm.md
//! gives it; the native route next to it never fails.

use covet_e2e::Host;
use serde_json::{Value, json};

use super::{NativeLoad, SHOTS, assert_all, assert_survived, counter, fire, native_config, report};
use crate::wasm::Gateway;

/// `/bad` is the probe doing `fault` in `handle` under `limits`.
async fn gateway(fault: &str, limits: Value) -> Host {
    Gateway::new()
        .native("native", "covet-static-response", native_config())
        .wasm_with("bad", "covet_wasm_probe", json!({ "fault": fault }), json!({ "limits": limits }))
        .route("/native", &[], "native")
        .route("/bad", &[], "bad")
        .start()
        .await
}

/// Fires `fault` under load and checks status, code, counter and log.
async fn fault_under_load(fault: &str, limits: Value, (status, code): (u16, &str), (stat, log): (&str, &[&str])) {
    let host = gateway(fault, limits).await;
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/bad").await;
    assert_all(&replies, status, code, "bad", Some("handle"));
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, stat, "bad").await, SHOTS as u64, "each fault counted in {stat}");
    let mut needles = vec!["bad"];
    needles.extend_from_slice(log);
    let line = host.log_line(&needles).await;
    assert!(line.is_some(), "no log line with {needles:?}; logs:\n{}", host.logs());
    println!("fault matrix | wasm {fault} log | {}", line.unwrap_or_default());
    report(&format!("wasm {fault}"), &replies, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_trap_under_load() {
    fault_under_load("trap", json!({}), (500, "PLUGIN_PANIC"), ("panics", &["plugin panicked", "wasm trap"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_infinite_loop_under_load() {
    let limits = json!({ "timeout": "200ms" });
    fault_under_load("loop", limits, (504, "PLUGIN_TIMEOUT"), ("errors", &["plugin timed out", "200 ms"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_memory_bomb_under_load() {
    let limits = json!({ "memory": "16MiB" });
    fault_under_load("memory", limits, (500, "PLUGIN_PANIC"), ("panics", &["ran out of memory", "16777216"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_stack_overflow_under_load() {
    fault_under_load("stack", json!({}), (500, "PLUGIN_PANIC"), ("panics", &["plugin panicked", "wasm trap"])).await;
}
