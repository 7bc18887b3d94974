//! The control-plane command line against a real host: `covet plugin
//! list|reload|swap` and `covet reload` through the admin API (exit 0 done,
//! 1 refused with the host's message, 3 admin API unreachable), and
//! `covet host --watch` reloading a replaced artifact or an edited manifest.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use covet_e2e::{Client, Host, Manifest, Route, covet_bin, plugin};
use serde_json::{Value, json};

use crate::common::PATIENCE;

/// What one `covet …` invocation did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `covet ARGS --admin <host's admin address>` in `cwd`.
fn covet(host: &Host, args: &[&str], cwd: &Path) -> Ran {
    let admin = host.admin_addr().to_string();
    run(&[args, &["--admin", &admin]].concat(), cwd)
}

/// Runs `covet ARGS` in `cwd` with no admin settings from the environment.
fn run(args: &[&str], cwd: &Path) -> Ran {
    run_with(args, cwd, &[])
}

/// Runs `covet ARGS` in `cwd` with `env` as the only admin settings.
fn run_with(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(covet_bin());
    command.args(args).current_dir(cwd).env_remove("COVET_ADMIN").env_remove("COVET_ADMIN_TOKEN");
    let out = command.envs(env.iter().copied()).output().expect("run covet");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ran { code: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr) }
}

impl Ran {
    fn assert_code(&self, code: i32) -> &Ran {
        assert_eq!(self.code, Some(code), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// `/app` answered by `app` (versioned v1) through filter `tag` (the test
/// plugin, which sets `x-test-label` to its `label`).
fn tagged_app() -> Manifest {
    Manifest::new()
        .plugin("app", "covet-versioned-v1", json!({}))
        .plugin("tag", "covet-test-plugin", json!({ "label": "v1" }))
        .route(Route::new("/app").filters(["tag"]).handler("app"))
}

#[tokio::test]
async fn plugin_list_json_shows_the_manifests_plugins() {
    let host = Host::start(tagged_app()).await;
    let ran = covet(&host, &["plugin", "list", "--json"], host.dir());
    ran.assert_code(0);
    let listed: Value = serde_json::from_str(&ran.stdout).expect("the API's JSON");
    let plugins = listed["plugins"].as_array().expect("a plugins array");
    let names: Vec<&str> = plugins.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["app", "tag"]);
    assert_eq!(plugins[0]["version"], "1.0.0");
}

#[tokio::test]
async fn plugin_list_prints_a_table_with_short_hashes() {
    let host = Host::start(tagged_app()).await;
    let ran = covet(&host, &["plugin", "list"], host.dir());
    ran.assert_code(0);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", ran.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "KIND", "VERSION", "SHA256", "LOADED", "REQUESTS", "ERRORS", "PANICS"]);
    let app: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(app[..3], ["app", "native", "1.0.0"]);
    assert_eq!(app[3].len(), 12, "the hash is shortened: {}", lines[1]);
}

#[tokio::test]
async fn plugin_reload_makes_a_new_instance_and_says_so_in_one_line() {
    let host = Host::start(tagged_app()).await;
    let ran = covet(&host, &["plugin", "reload", "app"], host.dir());
    ran.assert_code(0);
    assert!(ran.stdout.starts_with("app: 1.0.0 → 1.0.0 (same code, new instance, live in "), "{}", ran.stdout);
    assert_eq!(ran.stdout.lines().count(), 1);
}

#[tokio::test]
async fn reloading_an_unknown_plugin_exits_1_with_the_hosts_message() {
    let host = Host::start(tagged_app()).await;
    let ran = covet(&host, &["plugin", "reload", "nope"], host.dir());
    ran.assert_code(1);
    assert_eq!(ran.stderr.trim_end(), "no plugin named \"nope\" (the manifest defines: app, tag)");
    assert!(ran.stdout.is_empty());
}

#[tokio::test]
async fn swap_with_a_config_file_changes_behaviour() {
    let host = Host::start(tagged_app()).await;
    let client = host.http1();
    assert_eq!(label(&client).await, "v1");
    std::fs::write(host.path("cfg.yaml"), "# the new tag\nlabel: v2\n").unwrap();
    let ran = covet(&host, &["plugin", "swap", "tag", "--config", "cfg.yaml"], host.dir());
    ran.assert_code(0);
    assert!(ran.stdout.starts_with("tag: 0.1.0 → 0.1.0 (same code, new instance, live in "), "{}", ran.stdout);
    assert_eq!(label(&client).await, "v2", "the next request runs the new config");
}

#[tokio::test]
async fn swap_sends_a_relative_path_from_the_current_directory() {
    let host = Host::start(tagged_app()).await;
    let cwd = tempfile::tempdir().unwrap();
    std::fs::copy(plugin("covet-versioned-v2"), cwd.path().join("v2.so")).unwrap();
    let ran = covet(&host, &["plugin", "swap", "app", "--path", "v2.so", "--json"], cwd.path());
    ran.assert_code(0);
    let outcome: Value = serde_json::from_str(&ran.stdout).expect("--json prints the SwapOutcome");
    assert_eq!((&outcome["old_version"], &outcome["new_version"], &outcome["new_code"]), (&json!("1.0.0"), &json!("2.0.0"), &json!(true)));
    assert_eq!(build(&host.http1()).await, "v2");
}

#[tokio::test]
async fn a_refused_swap_exits_1_and_v1_keeps_serving() {
    let host = Host::start(tagged_app()).await;
    let ran = covet(&host, &["plugin", "swap", "app", "--path", "/nonexistent/v2.so"], host.dir());
    ran.assert_code(1);
    assert!(ran.stderr.contains("plugin \"app\"") && ran.stderr.contains("/nonexistent/v2.so"), "{}", ran.stderr);
    assert_eq!(build(&host.http1()).await, "v1");
}

#[tokio::test]
async fn reload_applies_an_edited_manifest_and_summarises_it() {
    let host = Host::start(tagged_app()).await;
    let edited = tagged_app().route(Route::new("/two").handler("app"));
    std::fs::write(host.path("plugins.yaml"), edited.to_yaml()).unwrap();
    let ran = covet(&host, &["reload"], host.dir());
    ran.assert_code(0);
    assert!(ran.stdout.starts_with("manifest reloaded: 2 routes live\n"), "{}", ran.stdout);
    assert!(ran.stdout.contains("unchanged: app, tag"), "{}", ran.stdout);
    assert_eq!(host.http1().get("/two").await.unwrap().status, 200);
}

#[tokio::test]
async fn reloading_an_invalid_manifest_exits_1_with_its_diagnostics_verbatim() {
    let host = Host::start(tagged_app()).await;
    let broken = tagged_app().to_yaml().replace("handler: app", "handler: ap");
    std::fs::write(host.path("plugins.yaml"), broken).unwrap();
    let ran = covet(&host, &["reload"], host.dir());
    ran.assert_code(1);
    assert!(ran.stderr.contains("unknown plugin \"ap\""), "{}", ran.stderr);
    assert!(ran.stderr.contains("plugins.yaml:"), "names file:line:column: {}", ran.stderr);
    assert!(ran.stderr.lines().count() > 1, "multi-line diagnostics: {}", ran.stderr);
    assert_eq!(build(&host.http1()).await, "v1", "nothing changed");
}

#[tokio::test]
async fn the_address_and_token_come_from_the_environment_and_a_missing_token_exits_3() {
    let token = "s3cret-token-0123456789abcdef";
    let host = Host::builder(tagged_app()).env("COVET_ADMIN_TOKEN", token).start();
    host.wait_ready().await;
    let admin = format!("http://{}", host.admin_addr());
    let without = run_with(&["plugin", "list"], host.dir(), &[("COVET_ADMIN", &admin)]);
    without.assert_code(3);
    assert!(without.stderr.contains("needs a token; set $COVET_ADMIN_TOKEN"), "{}", without.stderr);
    let wrong = run_with(&["plugin", "list"], host.dir(), &[("COVET_ADMIN", &admin), ("COVET_ADMIN_TOKEN", "nope")]);
    wrong.assert_code(3);
    let with = run_with(&["plugin", "list"], host.dir(), &[("COVET_ADMIN", &admin), ("COVET_ADMIN_TOKEN", token)]);
    with.assert_code(0);
    assert!(with.stdout.contains("app"), "{}", with.stdout);
}

#[test]
fn an_unreachable_admin_api_exits_3_naming_the_address() {
    let cwd = std::env::temp_dir();
    // Nothing listens on loopback port 1 (tcpmux) on a test machine.
    for args in [&["plugin", "list"][..], &["reload"], &["plugin", "reload", "x"]] {
        let ran = run(&[args, &["--admin", "http://127.0.0.1:1"]].concat(), &cwd);
        ran.assert_code(3);
        assert!(ran.stderr.contains("cannot reach the admin API at http://127.0.0.1:1"), "{}", ran.stderr);
    }
}

#[test]
fn usage_errors_exit_2() {
    let cwd = std::env::temp_dir();
    run(&["plugin", "swap", "app"], &cwd).assert_code(2);
    run(&["plugin", "list", "--admin", "no-port"], &cwd).assert_code(2);
    let missing = run(&["plugin", "swap", "app", "--config", "/nonexistent/cfg.yaml", "--admin", "127.0.0.1:1"], &cwd);
    missing.assert_code(2);
    assert!(missing.stderr.contains("cannot read /nonexistent/cfg.yaml"), "{}", missing.stderr);
}

// --watch

/// A host with `--watch` serving `/app` from `app.so` (a copy of v1) in its
/// own directory.
async fn watched_app() -> Host {
    let manifest = "listen:\n  - addr: 127.0.0.1:0\nplugins:\n  app: { kind: native, path: app.so }\nroutes:\n  - { path: /app, handler: app }\n";
    let v1 = std::fs::read(plugin("covet-versioned-v1")).unwrap();
    let host = Host::builder(manifest).file("app.so", v1).env("COVET_WATCH", "1").start();
    host.wait_ready().await;
    assert!(host.log_line(&["--watch: watching"]).await.is_some(), "the watcher started: {}", host.logs());
    host
}

/// Replaces `dest` by renaming a copy of `from` over it, as cargo and editors do.
fn replace_by_rename(from: &Path, dest: &Path) {
    let tmp = dest.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

#[tokio::test]
async fn watch_swaps_in_an_artifact_replaced_by_rename() {
    let host = watched_app().await;
    let client = host.http1();
    assert_eq!(build(&client).await, "v1");
    replace_by_rename(&plugin("covet-versioned-v2"), &host.path("app.so"));
    eventually(|| async { build(&client).await == "v2" }, "v2 serves after the rename", &host).await;
    assert!(host.log_line(&["--watch: artifact changed; reloaded", "app"]).await.is_some(), "{}", host.logs());
}

#[tokio::test]
async fn watch_keeps_the_old_build_serving_when_the_new_file_is_broken() {
    let host = watched_app().await;
    let client = host.http1();
    std::fs::write(host.path("app.so"), b"not a library").unwrap();
    let refused = host.log_line(&["--watch: artifact changed but was refused", "app"]).await;
    assert!(refused.is_some(), "the broken file was tried and refused: {}", host.logs());
    assert_eq!(build(&client).await, "v1", "v1 keeps serving");
    // The next write retries.
    std::fs::write(host.path("app.so"), std::fs::read(plugin("covet-versioned-v2")).unwrap()).unwrap();
    eventually(|| async { build(&client).await == "v2" }, "v2 serves after a good write", &host).await;
}

#[tokio::test]
async fn watch_applies_a_manifest_edit_that_adds_a_route() {
    let host = watched_app().await;
    let client = host.http1();
    assert_eq!(client.get("/two").await.unwrap().status, 404);
    let manifest = std::fs::read_to_string(host.path("plugins.yaml")).unwrap() + "  - { path: /two, handler: app }\n";
    let edited: PathBuf = host.path("plugins.yaml.new");
    std::fs::write(&edited, manifest).unwrap();
    std::fs::rename(&edited, host.path("plugins.yaml")).unwrap();
    eventually(|| async { client.get("/two").await.is_ok_and(|r| r.status == 200) }, "/two is routed", &host).await;
    assert!(host.log_line(&["--watch: manifest changed; reloaded"]).await.is_some(), "{}", host.logs());
}

/// The build stamp (`v1`/`v2`) of `GET /app`.
async fn build(client: &Client) -> String {
    let reply = client.get("/app").await.expect("request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.header("x-plugin-build").unwrap_or_default().to_string()
}

/// The `x-test-label` of `GET /app`.
async fn label(client: &Client) -> String {
    let reply = client.get("/app").await.expect("request");
    reply.header("x-test-label").unwrap_or_default().to_string()
}

/// Polls `check` until it holds (panics with the host's logs after [`PATIENCE`]).
async fn eventually<F, Fut>(check: F, what: &str, host: &Host)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}; logs:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
