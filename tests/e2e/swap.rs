//! Hot swap through the admin API: a v1 → v2 swap changes behaviour; failed
//! swaps (missing file, init error, ABI mismatch, wrong role) leave v1
//! serving and say why; a slow request started on v1 finishes on v1 and v1
//! shuts down only after it; a rebuilt artifact at the same path loads new
//! code; a config-only swap reuses the loaded code.

use std::{path::Path, time::Duration};

use covet_e2e::{Client, Host, Manifest, Reply, Route, plugin};
use http::Method;
use serde_json::{Value, json};

use crate::common::PATIENCE;

/// The admin API of `host`.
pub fn admin(host: &Host) -> Client {
    Client::http1(host.admin_addr())
}

/// `POST path` with a JSON body on the admin API.
pub async fn admin_post(host: &Host, path: &str, body: Value) -> Reply {
    let headers = [("content-type", "application/json")];
    admin(host).send(Method::POST, path, &headers, body.to_string()).await.expect("admin API answers")
}

/// Swaps `name` to `change` (`{"path": …, "config": …}`).
pub async fn swap(host: &Host, name: &str, change: Value) -> Reply {
    admin_post(host, &format!("/v1/plugins/{name}/swap"), change).await
}

/// The live status of plugin `name`.
pub async fn status(host: &Host, name: &str) -> Value {
    let reply = admin(host).get("/v1/plugins").await.expect("list plugins");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let list = reply.json()["plugins"].as_array().cloned().unwrap_or_default();
    list.into_iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} not listed"))
}

/// The build (`v1`/`v2`) that answered `GET path`; asserts it is stamped once.
pub async fn build_of(client: &Client, path: &str) -> String {
    let reply = client.get(path).await.expect("request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let stamps: Vec<_> = reply.headers.get_all("x-plugin-build").iter().collect();
    assert_eq!(stamps.len(), 1, "exactly one build stamp: {stamps:?}");
    stamps[0].to_str().unwrap().to_string()
}

fn versioned(build: u8) -> std::path::PathBuf {
    plugin(&format!("covet-versioned-v{build}"))
}

/// `/app` answered by plugin `app` (build v1) with `config`.
fn app_v1(config: Value) -> Manifest {
    Manifest::new().plugin("app", "covet-versioned-v1", config).route(Route::new("/app").handler("app"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_to_v2_changes_behaviour_and_reports_both_versions() {
    let host = Host::start(app_v1(json!({}))).await;
    let client = host.http1();
    assert_eq!(build_of(&client, "/app").await, "v1");

    let reply = swap(&host, "app", json!({ "path": versioned(2) })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let outcome = reply.json();
    assert_eq!(outcome["old_version"], "1.0.0");
    assert_eq!(outcome["new_version"], "2.0.0");
    assert_eq!(outcome["new_code"], true);
    assert_eq!(build_of(&client, "/app").await, "v2", "the next request runs v2");

    let live = status(&host, "app").await;
    assert_eq!(live["version"], "2.0.0");
    assert_eq!(live["plugin"], "covet-versioned-v2");
    assert_eq!(live["swaps"], 1);
    assert_eq!(live["sha256"], outcome["sha256"]);
    assert_eq!(live["sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_swaps_keep_v1_serving_and_say_why() {
    let host = Host::start(app_v1(json!({}))).await;
    let client = host.http1();
    let missing = host.dir().join("nope.so");
    let cases: [(Value, &str); 4] = [
        (json!({ "path": missing }), "cannot read the artifact"),
        (json!({ "path": versioned(2), "config": { "fail_init": true } }), "v2 refuses to start"),
        (json!({ "path": plugin("covet-abi-mismatch") }), "incompatible plugin ABI"),
        (json!({ "path": plugin("covet-rate-limit") }), "routes use \"app\" as a handler"),
    ];
    for (change, reason) in cases {
        let reply = swap(&host, "app", change.clone()).await;
        assert_eq!(reply.status, 422, "{change}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "swap_refused");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(reason), "{change}: expected {reason:?} in {message:?}");
        assert_eq!(build_of(&client, "/app").await, "v1", "v1 still serves after {change}");
    }
    let live = status(&host, "app").await;
    assert_eq!(live["version"], "1.0.0");
    assert_eq!(live["swap_failures"], 4);
    assert_eq!(live["swaps"], 0);

    let reply = swap(&host, "nobody", json!({})).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "unknown_plugin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abi_mismatch_names_both_versions() {
    let host = Host::start(app_v1(json!({}))).await;
    let reply = swap(&host, "app", json!({ "path": plugin("covet-abi-mismatch") })).await;
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("built against covet-plugin-api 0.0.9"), "{message}");
    let speaks = format!("this host speaks covet-plugin-api {}", covet_plugin_api::ffi::ABI_VERSION);
    assert!(message.contains(&speaks), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_v1_and_v1_shuts_down_after_it() {
    let files = tempfile::tempdir().unwrap();
    let log = files.path().join("events.txt");
    let host = Host::start(app_v1(json!({ "log_file": log }))).await;
    let slow = {
        let client = host.http1();
        tokio::spawn(async move { client.send(Method::GET, "/app", &[("x-sleep-ms", "1500")], "").await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!slow.is_finished(), "the slow request is in flight");

    let reply = swap(&host, "app", json!({ "path": versioned(2), "config": { "log_file": log } })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(build_of(&host.http1(), "/app").await, "v2", "new requests run v2 at once");
    assert!(!slow.is_finished(), "the swap did not wait for the request in flight");
    assert_eq!(read(&log), "", "v1 has not shut down while its request runs");

    let reply = slow.await.unwrap().expect("the slow request completes");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-plugin-build"), Some("v1"), "it finished on the build it started on");
    wait_for(|| read(&log).contains("shutdown v1")).await;
    assert_eq!(read(&log), "handle-end v1\nshutdown v1\n", "v1's shutdown ran after its last request, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_artifact_at_the_same_path_loads_new_code() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("app.so");
    std::fs::copy(versioned(1), &artifact).unwrap();
    let yaml = format!(
        "listen:\n  - addr: 127.0.0.1:0\nplugins:\n  app:\n    kind: native\n    path: {}\nroutes:\n  - path: /app\n    handler: app\n",
        artifact.display()
    );
    let host = Host::start(yaml).await;
    let client = host.http1();
    assert_eq!(build_of(&client, "/app").await, "v1");

    replace(&versioned(2), &artifact);
    let reply = admin_post(&host, "/v1/plugins/app/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["new_code"], true);
    assert_eq!(build_of(&client, "/app").await, "v2", "the rebuilt library's code runs");

    let reply = swap(&host, "app", json!({ "config": { "log_file": dir.path().join("log") } })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["new_code"], false, "a config-only swap reuses the loaded library");
    assert_eq!(build_of(&client, "/app").await, "v2");

    replace(&versioned(1), &artifact);
    let reply = admin_post(&host, "/v1/plugins/app/reload", json!({})).await;
    assert_eq!(reply.json()["new_code"], false, "v1's content was loaded before: no new dlopen");
    assert_eq!(build_of(&client, "/app").await, "v1", "and swapping back to it works");
}

/// Replaces `target` with a copy of `source` the way cargo does: write, rename.
pub fn replace(source: &Path, target: &Path) {
    let staging = target.with_extension("tmp");
    std::fs::copy(source, &staging).unwrap();
    std::fs::rename(&staging, target).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
