//! `Flow::RespondAndContinue`: the client gets the filter's answer at once
//! (the filters before it run `on_response` on it), and the rest of the
//! chain runs in the background on a bodiless copy of the request (id
//! `<id>-bg`): the later filters' `on_request`, the handler, their
//! `on_response`, then the issuing filter's. A request with a body is not
//! run in the background; past `limits.background_max` runs are dropped; a
//! swap meanwhile leaves a run on the instances it started on. Every phase
//! call of the test plugin appends a line to a record file, which the tests
//! poll (with a deadline) rather than time anything; on both IO backends.

use std::path::Path;
use std::time::Duration;

use covet_e2e::{Client, Host, Manifest, Route, io_uring_fds};
use http::Method;
use serde_json::{Value, json};

use crate::common::PATIENCE;

/// `/bg`: filters [outer, early (RespondAndContinue), inner], handler app;
/// `/bg-fault`: the same with a handler that panics. `wait` makes the
/// handler `app` wait for that file.
fn manifest(record: &Path, wait: Option<&Path>, background_max: Option<usize>) -> Manifest {
    let record = record.display().to_string();
    let mut app = json!({ "label": "app", "record_file": record });
    if let Some(wait) = wait {
        app["wait_file"] = Value::String(wait.display().to_string());
    }
    let mut manifest = Manifest::new()
        .plugin("outer", "covet-test-plugin", json!({ "label": "outer" }))
        .plugin("early", "covet-test-plugin", early("early", &record))
        .plugin("inner", "covet-test-plugin", json!({ "label": "inner", "record_file": record }))
        .plugin("app", "covet-test-plugin", app)
        .plugin("broken", "covet-test-plugin", json!({ "label": "broken", "panic_in": ["handle"] }))
        .route(Route::new("/bg").filters(["outer", "early", "inner"]).handler("app"))
        .route(Route::new("/bg-fault").filters(["early"]).handler("broken"));
    if let Some(max) = background_max {
        manifest = manifest.limit("background_max", &max.to_string());
    }
    manifest
}

fn early(label: &str, record: &str) -> Value {
    json!({ "label": label, "respond_and_continue": true, "record_file": record })
}

/// The record file's lines (none before the first write).
fn lines(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// The record's lines once `line` is among them (panics after PATIENCE).
async fn wait_for_line(record: &Path, line: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let all = lines(record);
        if all.iter().any(|l| l == line) {
            return all;
        }
        assert!(tokio::time::Instant::now() < deadline, "no line {line:?} in the record:\n{}", all.join("\n"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lines of request `id` (exactly: `<label> <phase> <id>[ <status>]`).
fn of(all: &[String], id: &str) -> Vec<String> {
    all.iter().filter(|l| l.split(' ').nth(2) == Some(id)).cloned().collect()
}

/// `covet_background_runs_total{result=…}`, by result.
async fn runs(host: &Host) -> [u64; 3] {
    let scrape = Client::http1(host.admin_addr()).get("/metrics").await.expect("metrics").text();
    ["ok", "fault", "dropped"].map(|result| {
        let series = format!("covet_background_runs_total{{result=\"{result}\"}} ");
        let line = scrape.lines().find(|l| l.starts_with(&series)).unwrap_or_else(|| panic!("no {series} in:\n{scrape}"));
        line[series.len()..].trim().parse().expect("a count")
    })
}

/// `runs` once it equals `expected` (panics after PATIENCE).
async fn wait_for_runs(host: &Host, expected: [u64; 3]) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = runs(host).await;
        if now == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "background runs [ok, fault, dropped] = {now:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `path`: the early answer, its request id.
async fn get_early(host: &Host, path: &str) -> String {
    let reply = host.http1().get(path).await.expect("an answer");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().ends_with("answered early"), "the filter's answer: {}", reply.text());
    reply.header("x-request-id").expect("x-request-id").to_owned()
}

async fn answers_at_once_and_runs_the_rest_in_the_background(io: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.log");
    let host = Host::builder(manifest(&record, None, None)).env("COVET_IO", io).start();
    host.wait_ready().await;
    assert_eq!(io_uring_fds(host.pid()) > 0, io == "uring", "the host runs on {io}; logs:\n{}", host.logs());

    let reply = host.http1().get("/bg").await.expect("an answer");
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "early answered early".to_owned()));
    assert_eq!(reply.header("x-test-label"), Some("outer"), "the filter before the issuer ran on_response on its answer");
    let id = reply.header("x-request-id").expect("x-request-id").to_owned();
    let bg = format!("{id}-bg");

    let all = wait_for_line(&record, &format!("early on_response {bg} 200")).await;
    assert_eq!(of(&all, &id), [format!("early on_request {id}")], "the issuer's on_response never saw the client's answer");
    let expected = [
        format!("inner on_request {bg}"),
        format!("app handle {bg}"),
        format!("inner on_response {bg} 200"),
        format!("early on_response {bg} 200"),
    ];
    assert_eq!(of(&all, &bg), expected, "later filters, the handler, their on_response, then the issuer's");
    wait_for_runs(&host, [1, 0, 0]).await;

    let id = get_early(&host, "/bg-fault").await;
    wait_for_line(&record, &format!("early on_response {id}-bg 500")).await;
    wait_for_runs(&host, [1, 1, 0]).await;
}

#[tokio::test]
async fn respond_and_continue_answers_at_once_and_runs_the_rest_in_the_background_on_epoll() {
    answers_at_once_and_runs_the_rest_in_the_background("epoll").await;
}

#[tokio::test]
async fn respond_and_continue_answers_at_once_and_runs_the_rest_in_the_background_on_io_uring() {
    answers_at_once_and_runs_the_rest_in_the_background("uring").await;
}

#[tokio::test]
async fn a_request_with_a_body_is_not_run_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.log");
    let host = Host::start(manifest(&record, None, None)).await;

    let posted = host.http1().send(Method::POST, "/bg", &[("content-type", "text/plain")], "a body").await.expect("an answer");
    assert_eq!((posted.status.as_u16(), posted.text()), (200, "early answered early".to_owned()));
    let posted = posted.header("x-request-id").expect("x-request-id").to_owned();

    let id = get_early(&host, "/bg").await;
    let all = wait_for_line(&record, &format!("early on_response {id}-bg 200")).await;
    wait_for_runs(&host, [1, 0, 0]).await;
    assert_eq!(of(&all, &posted), [format!("early on_request {posted}")]);
    assert!(of(&lines(&record), &format!("{posted}-bg")).is_empty(), "the POST ran in the background:\n{}", all.join("\n"));
    assert_eq!(runs(&host).await, [1, 0, 0], "only the GET ran");
}

#[tokio::test]
async fn runs_past_background_max_are_dropped_and_a_swap_leaves_a_run_on_its_instances() {
    let dir = tempfile::tempdir().unwrap();
    let (record, release) = (dir.path().join("record.log"), dir.path().join("release"));
    let host = Host::start(manifest(&record, Some(&release), Some(1))).await;

    let first = get_early(&host, "/bg").await;
    wait_for_line(&record, &format!("app handle {first}-bg")).await; // in flight, waiting for `release`
    let second = get_early(&host, "/bg").await;
    assert_eq!(runs(&host).await, [0, 0, 1], "the second run is past background_max 1");

    let config = early("early-v2", &record.display().to_string());
    let swapped = Client::http1(host.admin_addr())
        .send(Method::POST, "/v1/plugins/early/swap", &[("content-type", "application/json")], json!({ "config": config }).to_string())
        .await
        .expect("admin answers");
    assert_eq!(swapped.status, 200, "{}", swapped.text());

    std::fs::write(&release, b"go").unwrap();
    let all = wait_for_line(&record, &format!("early on_response {first}-bg 200")).await;
    wait_for_runs(&host, [1, 0, 1]).await;
    assert!(of(&all, &format!("{second}-bg")).is_empty(), "the dropped run ran:\n{}", all.join("\n"));

    let reply = host.http1().get("/bg").await.expect("an answer");
    assert_eq!(reply.text(), "early-v2 answered early", "the swap is live for new requests");
    let third = reply.header("x-request-id").expect("x-request-id").to_owned();
    wait_for_line(&record, &format!("early-v2 on_response {third}-bg 200")).await;
    wait_for_runs(&host, [2, 0, 1]).await;
}
