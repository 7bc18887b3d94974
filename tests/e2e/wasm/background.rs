//! Background work of a WASM plugin (`covet:plugin/background@0.2.0`,
//! fixture `covet_wasm_services`, whose `tick` counts itself in shared state
//! and fails every third time): with `background: { every }` the host ticks
//! it with no request at all, logs a failed tick with the plugin's name and
//! keeps ticking; the ticks stop once the instance is retired by a reload
//! without `background:`; and a component without the export is refused.

use std::time::{Duration, Instant};

use covet_e2e::Host;
use serde_json::{Value, json};

use super::{Gateway, component};
use crate::swap::{admin_post, swap};

/// How often the test plugin ticks.
const EVERY: &str = "50ms";

/// `ticker`: the services fixture granted the `background` namespace,
/// ticking every [`EVERY`] when `background`; `/ticks` reads the counter.
fn ticker(background: bool) -> Gateway {
    let mut keys = json!({ "capabilities": { "state": ["background"] }, "limits": { "timeout": "5s" } });
    if background {
        keys["background"] = json!({ "every": EVERY });
    }
    Gateway::new().wasm_with("ticker", "covet_wasm_services", Value::Null, keys).route("/ticks/get", &[], "ticker")
}

/// The tick counter (0 before the first tick).
async fn ticks(host: &Host) -> i64 {
    let reply = host.http1().get("/ticks/get?ns=background&key=ticks").await.unwrap();
    assert_eq!(reply.status, 200, "{}\nlogs:\n{}", reply.text(), host.logs());
    let body = reply.json();
    assert_eq!(body["ok"], true, "{body}");
    body["value"].as_str().map_or(0, |n| n.parse().unwrap())
}

/// Polls the counter until it reaches `at_least` (panics after 30 s).
async fn wait_for_ticks(host: &Host, at_least: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = ticks(host).await;
        if now >= at_least {
            return now;
        }
        assert!(Instant::now() < deadline, "only {now} ticks, waiting for {at_least}; logs:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until the counter stays the same over a second (20 intervals);
/// panics when it is still moving after 30 s.
async fn wait_until_still(host: &Host) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = ticks(host).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = ticks(host).await;
        if before == after {
            return after;
        }
        assert!(Instant::now() < deadline, "still ticking ({before} → {after}); logs:\n{}", host.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_run_without_requests_survive_failures_and_stop_when_retired() {
    let host = ticker(true).start().await;

    // Seven ticks: past two that failed on purpose (3 and 6).
    wait_for_ticks(&host, 7).await;
    let failed = host.log_line(&["background tick failed", "fails on purpose", "ticker"]).await;
    assert!(failed.is_some(), "a failed tick is logged with the plugin's name; logs:\n{}", host.logs());

    // A reload without `background:` rebuilds the plugin: the old instance is retired, its ticks stop.
    std::fs::write(host.path("plugins.yaml"), ticker(false).yaml()).unwrap();
    let reply = admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["changed"], json!(["ticker"]), "{}", reply.text());
    let stopped = wait_until_still(&host).await;
    assert!(stopped >= 7);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(ticks(&host).await, stopped, "no tick after the instance was retired");

    // Back with `background:`: a new instance ticks again.
    std::fs::write(host.path("plugins.yaml"), ticker(true).yaml()).unwrap();
    let reply = admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    wait_for_ticks(&host, stopped + 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_without_the_export_is_refused_and_the_old_one_keeps_ticking() {
    let host = ticker(true).start().await;
    wait_for_ticks(&host, 1).await;
    let reply = swap(&host, "ticker", json!({ "path": component("covet_wasm_noop"), "config": null })).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("does not export covet:plugin/background@0.2.0"), "{message}");
    let before = ticks(&host).await;
    wait_for_ticks(&host, before + 2).await;
}
