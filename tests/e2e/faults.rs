//! Plugin faults: a panic or an invalid result becomes a structured 500 for
//! that one request; a plugin that cannot load or initialise stops the host
//! with a message naming it.

use covet_e2e::{Host, Manifest, Route, plugin};
use serde_json::json;

use crate::common::{PATIENCE, assert_problem, labelled};

/// `fragile` panics in `phase`; it is a filter on one route and the handler
/// of another, so one of the two never reaches the panicking phase.
fn fragile_gateway(phase: &str) -> Manifest {
    Manifest::new()
        .plugin("fragile", "covet-test-plugin", json!({ "label": "fragile", "panic_in": [phase] }))
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/as-filter").filters(["fragile"]).handler("echo"))
        .route(Route::new("/as-handler").handler("fragile"))
        .route(Route::new("/healthy").handler("echo"))
}

/// The route where `fragile` panics in `phase`, and the one where it does not.
fn routes_for(phase: &str) -> (&'static str, &'static str) {
    match phase {
        "handle" => ("/as-handler", "/as-filter"),
        _ => ("/as-filter", "/as-handler"),
    }
}

async fn assert_panic_is_contained(phase: &str) {
    let host = Host::start(fragile_gateway(phase)).await;
    let client = host.http1();
    let (broken, intact) = routes_for(phase);

    let reply = client.get(broken).await.expect("a response, not a dropped connection");
    let error = assert_problem(&reply, 500, "PLUGIN_PANIC");
    assert_eq!(error["details"], json!({ "plugin": "fragile", "phase": phase }));
    assert!(!reply.text().contains("panics in"), "the panic message leaked: {}", reply.text());

    let healthy = client.get("/healthy").await.expect("the host still serves");
    assert_eq!(healthy.status, 200, "{}", healthy.text());
    let again = client.get(broken).await.expect("the route still answers");
    assert_problem(&again, 500, "PLUGIN_PANIC");
    let same_plugin = client.get(intact).await.expect("the plugin still serves");
    assert_eq!(same_plugin.status, 200, "the panicked plugin's other phases work: {}", same_plugin.text());

    let line = host.log_line(&["fragile", "panicked", phase]).await;
    assert!(line.is_some(), "no log line names the plugin and phase; logs:\n{}", host.logs());
}

#[tokio::test]
async fn panic_in_on_request_is_a_500_naming_plugin_and_phase() {
    assert_panic_is_contained("on_request").await;
}

#[tokio::test]
async fn panic_in_handle_is_a_500_naming_plugin_and_phase() {
    assert_panic_is_contained("handle").await;
}

#[tokio::test]
async fn panic_in_on_response_is_a_500_naming_plugin_and_phase() {
    assert_panic_is_contained("on_response").await;
}

#[tokio::test]
async fn panic_over_http2_is_a_500_too() {
    let host = Host::start(fragile_gateway("handle")).await;
    let client = host.http2();
    let reply = client.get("/as-handler").await.expect("a response, not a reset stream");
    assert_problem(&reply, 500, "PLUGIN_PANIC");
    let healthy = client.get("/healthy").await.expect("the connection survives");
    assert_eq!(healthy.status, 200);
}

#[tokio::test]
async fn invalid_header_from_a_plugin_is_a_500_plugin_error() {
    let manifest = Manifest::new()
        .plugin("liar", "covet-test-plugin", json!({ "label": "liar", "bad_header": true }))
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/liar").handler("liar"))
        .route(Route::new("/healthy").handler("echo"));
    let host = Host::start(manifest).await;
    let reply = host.http1().get("/liar").await.expect("a response");
    let error = assert_problem(&reply, 500, "PLUGIN_ERROR");
    assert_eq!(error["details"], json!({ "plugin": "liar", "phase": "handle" }));
    assert!(reply.header("bad header\n").is_none());
    assert_eq!(host.http1().get("/healthy").await.unwrap().status, 200);
    assert!(host.log_line(&["liar", "handle"]).await.is_some(), "logs:\n{}", host.logs());
}

#[tokio::test]
async fn panic_in_init_stops_the_host_naming_the_plugin() {
    let manifest = Manifest::new()
        .plugin("doomed", "covet-test-plugin", json!({ "panic_in": ["init"] }))
        .route(Route::new("/x").handler("doomed"));
    let exited = Host::builder(manifest).run_to_exit(PATIENCE);
    assert!(!exited.status.success(), "exit status {:?}", exited.status);
    assert!(exited.stderr.contains("\"doomed\""), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("init"), "stderr:\n{}", exited.stderr);
}

#[tokio::test]
async fn plugin_refusing_its_config_stops_the_host_with_the_reason() {
    let manifest = Manifest::new()
        .plugin("teapot", "covet-static-response", json!({ "status": 99 }))
        .route(Route::new("/x").handler("teapot"));
    let exited = Host::builder(manifest).run_to_exit(PATIENCE);
    assert!(!exited.status.success(), "exit status {:?}", exited.status);
    assert!(exited.stderr.contains("\"teapot\""), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("`status: 99` is out of range"), "stderr:\n{}", exited.stderr);
}

fn abi_mismatch_manifest() -> Manifest {
    Manifest::new().plugin("legacy", "covet-abi-mismatch", json!({})).route(Route::new("/x").handler("legacy"))
}

#[test]
fn check_refuses_a_plugin_built_against_another_abi_naming_both_versions() {
    let exited = Host::builder(abi_mismatch_manifest()).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    for needle in ["legacy", "0.0.9", covet_plugin_api::ffi::ABI_VERSION] {
        assert!(exited.stderr.contains(needle), "{needle:?} not in stderr:\n{}", exited.stderr);
    }
}

#[test]
fn host_refuses_to_start_with_a_plugin_built_against_another_abi() {
    let exited = Host::builder(abi_mismatch_manifest()).run_to_exit(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    let host_abi = covet_plugin_api::ffi::ABI_VERSION;
    assert!(exited.stderr.contains("0.0.9") && exited.stderr.contains(host_abi), "stderr:\n{}", exited.stderr);
    assert!(!exited.stdout.contains("listening on"), "it served: {}", exited.stdout);
}

/// A manifest using `filter` as a filter and `handler` as the handler of one
/// route, written out so the line and column of each are plain to see.
fn role_manifest(filter: &str, handler: &str) -> String {
    let static_response = json!(plugin("covet-static-response").display().to_string());
    let headers = json!(plugin("covet-headers").display().to_string());
    format!(
        "listen:
  - addr: 127.0.0.1:0
plugins:
  hello:
    kind: native
    path: {static_response}
    config: {{ body: hi }}
  tagger:
    kind: native
    path: {headers}
    config: {{ response: {{ set: {{ x-a: b }} }} }}
routes:
  - path: /x
    filters: [{filter}]
    handler: {handler}
"
    )
}

#[test]
fn check_refuses_a_handler_only_plugin_used_as_a_filter_with_file_line_column() {
    let exited = Host::builder(role_manifest("hello", "hello")).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("plugins.yaml:14:15"), "no file:line:column in stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("cannot be a filter"), "stderr:\n{}", exited.stderr);
}

#[test]
fn check_refuses_a_filter_only_plugin_used_as_a_handler_with_file_line_column() {
    let exited = Host::builder(role_manifest("tagger", "tagger")).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("plugins.yaml:15:14"), "no file:line:column in stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("cannot be a handler"), "stderr:\n{}", exited.stderr);
}

#[test]
fn check_accepts_plugins_in_their_roles() {
    let exited = Host::builder(role_manifest("tagger", "hello")).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(0), "stderr:\n{}", exited.stderr);
    assert!(exited.stdout.contains("ok"), "stdout:\n{}", exited.stdout);
}

/// A rate limiter whose config has a typo'd key.
fn bad_config_manifest() -> Manifest {
    Manifest::new()
        .plugin("limiter", "covet-rate-limit", json!({ "rate": "10/s", "brust": 5 }))
        .plugin("hello", "covet-static-response", json!({ "body": "hi" }))
        .route(Route::new("/").filters(["limiter"]).handler("hello"))
}

#[test]
fn check_runs_each_plugins_init_and_points_at_a_refused_config() {
    let exited = Host::builder(bad_config_manifest()).check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    for needle in ["plugins.yaml:", "plugins.limiter.config", "refused its config", "unknown field `brust`"] {
        assert!(exited.stderr.contains(needle), "{needle:?} not in stderr:\n{}", exited.stderr);
    }
}

#[test]
fn host_refuses_to_start_when_a_plugin_refuses_its_config() {
    let exited = Host::builder(bad_config_manifest()).run_to_exit(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("unknown field `brust`"), "stderr:\n{}", exited.stderr);
}
