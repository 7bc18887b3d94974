//! A native plugin panicking in each phase under load: every request to
//! its route is a 500 `PLUGIN_PANIC` naming the plugin and phase (the panic
//! is caught at the ABI boundary), `covet_plugin_panics_total` counts each,
//! and the native route next to it never fails.

use covet_e2e::{Host, Manifest, Route};
use serde_json::json;

use super::{NativeLoad, SHOTS, assert_all, assert_survived, counter, fire, native_config, report};

/// `/bad` runs `fragile`, which panics in `phase` (as a filter in front of
/// an echo handler, or as the handler); `/native` is static-response.
fn gateway(phase: &str) -> Manifest {
    let bad = match phase {
        "handle" => Route::new("/bad").handler("fragile"),
        _ => Route::new("/bad").filters(["fragile"]).handler("echo"),
    };
    Manifest::new()
        .access_log(false)
        .plugin("native", "covet-static-response", native_config())
        .plugin("fragile", "covet-test-plugin", json!({ "label": "fragile", "panic_in": [phase] }))
        .plugin("echo", "covet-test-plugin", json!({ "label": "echo" }))
        .route(Route::new("/native").handler("native"))
        .route(bad)
}

async fn panics_under_load(phase: &str) {
    let host = Host::start(gateway(phase)).await;
    let load = NativeLoad::start(&host).await;
    let replies = fire(&host, "/bad").await;
    assert_all(&replies, 500, "PLUGIN_PANIC", "fragile", Some(phase));
    let served = assert_survived(&host, load).await;
    assert_eq!(counter(&host, "panics", "fragile").await, SHOTS as u64, "each panic counted");
    assert!(host.log_line(&["fragile", "plugin panicked", phase]).await.is_some(), "logs:\n{}", host.logs());
    report(&format!("native panic in {phase}"), &replies, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_panic_in_on_request_under_load() {
    panics_under_load("on_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_panic_in_handle_under_load() {
    panics_under_load("handle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_panic_in_on_response_under_load() {
    panics_under_load("on_response").await;
}
