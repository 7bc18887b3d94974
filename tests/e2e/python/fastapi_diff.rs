//! Differential test: the unmodified FastAPI example app
//! (`python-plugins/fastapi_app/main.py`) served by covet as an ASGI plugin
//! and by uvicorn (from the project venv, `scripts/python-env.sh`) answers
//! the same sequence of requests with the same status, body and relevant
//! headers, and both run the app's lifespan startup and shutdown.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use covet_e2e::{Client, Host, Reply, workspace_root};
use http::Method;

use super::uvicorn::{Uvicorn, venv};
use crate::common::PATIENCE;

/// Headers whose values must match; others (date, server, x-request-id)
/// legitimately differ between servers.
const COMPARED_HEADERS: [&str; 6] = ["content-type", "content-length", "location", "x-shop", "allow", "transfer-encoding"];

/// One request of the sequence: method, path, headers, body.
type Step = (Method, &'static str, &'static [(&'static str, &'static str)], &'static str);

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// The sequence, in order (it creates and deletes an item, so order matters).
const STEPS: &[Step] = &[
    (Method::GET, "/", &[], ""),
    (Method::GET, "/hello", &[], ""),
    (Method::GET, "/health", &[], ""),
    (Method::GET, "/items", &[], ""),
    (Method::GET, "/items?limit=1", &[], ""),
    (Method::GET, "/items?tag=light", &[], ""),
    (Method::GET, "/items?limit=0", &[], ""),
    (Method::GET, "/items?limit=abc", &[], ""),
    (Method::GET, "/items/1", &[], ""),
    (Method::GET, "/items/1?q=search%20term", &[], ""),
    (Method::GET, "/items/999", &[], ""),
    (Method::GET, "/items/abc", &[], ""),
    (Method::POST, "/items", JSON, r#"{"name":"mug","price":3.5,"tags":["kitchen"]}"#),
    (Method::GET, "/items/3", &[], ""),
    (Method::GET, "/items?tag=kitchen", &[], ""),
    (Method::POST, "/items", JSON, r#"{"name":"","price":-1}"#),
    (Method::POST, "/items", JSON, "{not json"),
    (Method::DELETE, "/items/3", &[], ""),
    (Method::DELETE, "/items/3", &[], ""),
    (Method::GET, "/echo-header", &[("x-token", "abc123")], ""),
    (Method::GET, "/echo-header", &[], ""),
    (Method::GET, "/sync?n=4", &[], ""),
    (Method::GET, "/stream", &[], ""),
    (Method::GET, "/stream?count=2", &[], ""),
    (Method::GET, "/no/such/path", &[], ""),
    (Method::PUT, "/", &[], ""),
];

fn app_dir() -> PathBuf {
    workspace_root().join("python-plugins/fastapi_app")
}

fn covet(lifespan_log: &Path) -> Host {
    let manifest = format!(
        r#"
listen: [{{ addr: 127.0.0.1:0 }}]
python:
  venv: {venv}
plugins:
  shop:
    kind: python
    asgi: {app}:app
routes:
  - {{ path: "/", handler: shop }}
  - {{ path: "/{{*rest}}", handler: shop }}
"#,
        venv = venv().display(),
        app = app_dir().join("main.py").display(),
    );
    Host::builder(manifest).env("SHOP_LIFESPAN_LOG", &lifespan_log.display().to_string()).start()
}

async fn run_steps(client: &Client) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(STEPS.len());
    for (method, path, headers, body) in STEPS {
        let reply = client.send(method.clone(), path, headers, *body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        replies.push(reply);
    }
    replies
}

fn compared_headers(reply: &Reply) -> Vec<(&'static str, Option<String>)> {
    COMPARED_HEADERS.iter().map(|name| (*name, reply.header(name).map(str::to_owned))).collect()
}

fn assert_same(step: &Step, covet: &Reply, uvicorn: &Reply) {
    let (method, path, ..) = step;
    assert_eq!(covet.status, uvicorn.status, "{method} {path}: status; covet body {}", covet.text());
    assert_eq!(covet.text(), uvicorn.text(), "{method} {path}: body");
    assert_eq!(compared_headers(covet), compared_headers(uvicorn), "{method} {path}: headers");
}

fn lifespan_events(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn wait_for_events(path: &Path, expected: &str) {
    let deadline = Instant::now() + PATIENCE;
    while lifespan_events(path) != expected {
        assert!(Instant::now() < deadline, "lifespan log {}: {:?}, want {expected:?}", path.display(), lifespan_events(path));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn covet_and_uvicorn_answer_the_fastapi_app_alike() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (covet_log, uvicorn_log) = (dir.path().join("covet.log"), dir.path().join("uvicorn.log"));
    let host = covet(&covet_log);
    host.wait_ready().await;
    let uvicorn = Uvicorn::start(&app_dir(), "main:app", &[("SHOP_LIFESPAN_LOG", &uvicorn_log.display().to_string())]);
    wait_for_events(&covet_log, "startup\n").await;
    wait_for_events(&uvicorn_log, "startup\n").await;

    let from_covet = run_steps(&host.http1()).await;
    let from_uvicorn = run_steps(&Client::http1(uvicorn.addr)).await;
    for (step, (c, u)) in STEPS.iter().zip(from_covet.iter().zip(&from_uvicorn)) {
        assert_same(step, c, u);
    }
    // The comparison is not vacuous: the sequence covers these outcomes.
    let statuses: Vec<u16> = from_covet.iter().map(|r| r.status.as_u16()).collect();
    for expected in [200, 201, 204, 404, 405, 422] {
        assert!(statuses.contains(&expected), "no {expected} in {statuses:?}");
    }
    assert_eq!(from_covet[22].text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n", "streamed body");
    assert_eq!(from_covet[2].json()["started"], true, "lifespan state reaches the request");

    host.stop(PATIENCE);
    uvicorn.stop();
    assert_eq!(lifespan_events(&covet_log), "startup\nshutdown\n", "covet ran the lifespan shutdown");
    assert_eq!(lifespan_events(&uvicorn_log), "startup\nshutdown\n", "uvicorn ran the lifespan shutdown");
}

#[tokio::test]
async fn the_fastapi_app_answers_over_http2_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = covet(&dir.path().join("lifespan.log"));
    host.wait_ready().await;
    let reply = host.http2().get("/items/2?q=x").await.expect("h2 response");
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["name"], "lamp");
    assert_eq!(reply.json()["q"], "x");
    let streamed = host.http2().get("/stream?count=3").await.expect("h2 stream");
    assert_eq!(streamed.text(), "chunk 0\nchunk 1\nchunk 2\n");
}
