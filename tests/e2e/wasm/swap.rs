//! Hot swap of a WASM plugin through the admin API works as for native
//! ones: a new `.wasm` is compiled and takes the next request, a request in
//! flight finishes on the old component, a build that does not load or
//! whose `init` refuses the config leaves the old one serving, and a
//! manifest reload that only changes limits rebuilds the plugin.

use std::time::Duration;

use serde_json::json;

use super::{Gateway, component};
use crate::swap::{status, swap};

/// `/app` answered by the noop component (`ok`).
fn app() -> Gateway {
    Gateway::new().wasm("app", "covet_wasm_noop", json!(null)).route("/app", &[], "app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_in_a_new_component_changes_the_next_response() {
    let host = app().start().await;
    let client = host.http1();
    assert_eq!(client.get("/app").await.unwrap().text(), "ok");

    let change = json!({ "path": component("covet_wasm_probe"), "config": { "probe": "count" } });
    let reply = swap(&host, "app", change).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["new_code"], true);
    let live = status(&host, "app").await;
    assert_eq!((live["kind"].as_str(), live["plugin"].as_str()), (Some("wasm"), Some("covet-wasm-probe")));
    assert_eq!(live["swaps"], 1);
    assert_eq!(client.get("/app").await.unwrap().json()["value"], 1, "the probe answers now");

    let again = swap(&host, "app", json!({ "config": { "probe": "env", "var": "HOME" } })).await;
    assert_eq!(again.json()["new_code"], false, "a config change reuses the compiled component");
    assert_eq!(client.get("/app").await.unwrap().json()["ok"], false, "HOME is not granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_old_component() {
    // Long enough that the swap (a compile, with the first load's snapshot
    // compiling beside it on a busy CI machine) ends well within it.
    let slow = json!({ "fault": "sleep", "sleep_ms": 4000, "probe": "echo", "label": "old" });
    let limits = json!({ "limits": { "timeout": "10s" } });
    let host = Gateway::new().wasm_with("app", "covet_wasm_probe", slow, limits).route("/app", &[], "app").start().await;
    let in_flight = {
        let client = host.http1();
        tokio::spawn(async move { client.get("/app").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = swap(&host, "app", json!({ "path": component("covet_wasm_noop"), "config": null })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(host.http1().get("/app").await.unwrap().text(), "ok", "new requests run the new component at once");
    assert!(!in_flight.is_finished(), "the swap did not wait for the request in flight");
    let old = in_flight.await.unwrap().expect("the slow request completes");
    assert_eq!(old.status, 200, "{}", old.text());
    assert_eq!(old.json()["label"], "old", "it finished on the component it started on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_swaps_keep_the_old_component_serving_and_say_why() {
    let host = app().start().await;
    let cases = [
        (json!({ "path": covet_e2e::plugin("covet-test-plugin") }), "not a WebAssembly component"),
        (json!({ "path": component("ab_tagger") }), "routes use \"app\" as a handler"),
        (json!({ "path": component("covet_wasm_probe"), "config": { "nope": 1 } }), "unknown field `nope`"),
    ];
    for (change, reason) in cases {
        let reply = swap(&host, "app", change.clone()).await;
        assert_eq!(reply.status, 422, "{change}: {}", reply.text());
        let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(reason), "{change}: expected {reason:?} in {message:?}");
        assert_eq!(host.http1().get("/app").await.unwrap().text(), "ok", "still the old component after {change}");
    }
    assert_eq!(status(&host, "app").await["swap_failures"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_reload_that_changes_only_limits_rebuilds_the_plugin() {
    let loops = |timeout: &str| {
        Gateway::new()
            .wasm_with("app", "covet_wasm_probe", json!({ "fault": "loop" }), json!({ "limits": { "timeout": timeout } }))
            .route("/app", &[], "app")
    };
    let host = loops("2s").start().await;
    std::fs::write(host.path("plugins.yaml"), loops("100ms").yaml()).unwrap();
    let reply = crate::swap::admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["changed"], json!(["app"]), "{}", reply.text());
    let started = std::time::Instant::now();
    assert_eq!(host.http1().get("/app").await.unwrap().status, 504);
    assert!(started.elapsed() < Duration::from_millis(1500), "the new 100ms limit applies: {:?}", started.elapsed());
}
