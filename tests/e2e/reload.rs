//! Manifest reload through the admin API: routes and plugins are added and
//! removed, unchanged plugins keep their instance, and a manifest that fails
//! validation or a plugin that fails to init changes nothing.

use covet_e2e::{Host, Manifest, Route};
use serde_json::json;

use crate::swap::{admin_post, build_of, replace, status};

fn before() -> Manifest {
    Manifest::new()
        .plugin("a", "covet-versioned-v1", json!({}))
        .plugin("s", "covet-static-response", json!({ "body": "static one" }))
        .route(Route::new("/a").handler("a"))
        .route(Route::new("/s").handler("s"))
}

/// Rewrites the host's manifest the way an editor or a deploy does.
fn rewrite(host: &Host, yaml: impl Into<String>) {
    let staging = host.dir().join("next.yaml");
    std::fs::write(&staging, yaml.into()).unwrap();
    replace(&staging, &host.path("plugins.yaml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_routes_and_keeps_unchanged_plugins() {
    let host = Host::start(before()).await;
    let client = host.http1();
    assert_eq!(build_of(&client, "/a").await, "v1");
    let s_loaded_at = status(&host, "s").await["loaded_at"].clone();

    let after = Manifest::new()
        .plugin("s", "covet-static-response", json!({ "body": "static one" }))
        .plugin("b", "covet-versioned-v2", json!({}))
        .route(Route::new("/s").handler("s"))
        .route(Route::new("/b/{*rest}").handler("b"));
    rewrite(&host, after);
    let reply = admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let outcome = reply.json();
    assert_eq!(outcome["added"], json!(["b"]));
    assert_eq!(outcome["removed"], json!(["a"]));
    assert_eq!(outcome["unchanged"], json!(["s"]));
    assert_eq!(outcome["changed"], json!([]));
    assert_eq!(outcome["routes"], 2);

    assert_eq!(build_of(&client, "/b/x/y").await, "v2", "the new route serves");
    assert_eq!(client.get("/a").await.unwrap().status, 404, "the removed route is gone");
    assert_eq!(client.get("/s").await.unwrap().text(), "static one");
    assert_eq!(status(&host, "s").await["loaded_at"], s_loaded_at, "an unchanged plugin keeps its instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_rebuilds_only_that_plugin() {
    let host = Host::start(before()).await;
    let after = before().to_yaml().replace("static one", "static two");
    rewrite(&host, after);
    let reply = admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["changed"], json!(["s"]));
    assert_eq!(reply.json()["unchanged"], json!(["a"]));
    assert_eq!(host.http1().get("/s").await.unwrap().text(), "static two");
    assert_eq!(status(&host, "s").await["swaps"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_manifest_changes_nothing_and_names_line_and_column() {
    let host = Host::start(before()).await;
    let client = host.http1();
    let broken = before().route(Route::new("/c").handler("ghost")).to_yaml();
    let line = broken.lines().position(|l| l.contains("handler: ghost")).unwrap() + 1;
    rewrite(&host, broken);
    let reply = admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "manifest_invalid");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&format!("plugins.yaml:{line}:")), "file:line:column of the bad handler in:\n{message}");
    assert!(message.contains("ghost"), "{message}");
    assert_eq!(build_of(&client, "/a").await, "v1", "the old routes still serve");
    assert_eq!(client.get("/c").await.unwrap().status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_failing_init_in_a_reload_changes_nothing() {
    let host = Host::start(before()).await;
    let client = host.http1();
    let after = before()
        .plugin("b", "covet-versioned-v2", json!({ "fail_init": true }))
        .route(Route::new("/b").handler("b"))
        .to_yaml()
        .replace("static one", "static two");
    rewrite(&host, after);
    let reply = admin_post(&host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("v2 refuses to start"), "{message}");
    assert_eq!(client.get("/b").await.unwrap().status, 404, "the new route did not go live");
    assert_eq!(client.get("/s").await.unwrap().text(), "static one", "the changed plugin did not go live either");
}
