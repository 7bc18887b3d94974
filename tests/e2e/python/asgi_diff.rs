//! Differential tests of ASGI fidelity: unmodified Starlette
//! (`python-plugins/starlette_app`) and Django (`python-plugins/django_app`)
//! apps served by covet and by uvicorn answer the same requests with the
//! same status, body and headers: HEAD, file responses with `Range`, GZip,
//! multipart uploads and forms, background tasks, cookies, redirects,
//! streaming, Django's URL resolver, middleware and ASGI handler. Also what
//! a comparison cannot show: a slow client slows a streaming app down
//! (back-pressure) and a client that leaves is seen by the app.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bytes::Bytes;
use covet_e2e::{Client, Host, Reply, workspace_root};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::uvicorn::{Uvicorn, venv};
use crate::common::PATIENCE;

/// Headers whose values must match; others (date, server, x-request-id)
/// legitimately differ between servers.
const COMPARED: [&str; 14] = [
    "content-type",
    "content-length",
    "content-encoding",
    "content-range",
    "accept-ranges",
    "content-disposition",
    "etag",
    "last-modified",
    "location",
    "allow",
    "vary",
    "transfer-encoding",
    "x-seen-agent",
    "cache-control",
];

/// One request: method, path, headers, body.
struct Step {
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Bytes,
}

fn step(method: Method, path: &'static str) -> Step {
    Step { method, path, headers: Vec::new(), body: Bytes::new() }
}

impl Step {
    fn header(mut self, name: &'static str, value: &'static str) -> Step {
        self.headers.push((name, value));
        self
    }

    fn body(mut self, body: impl Into<Bytes>) -> Step {
        self.body = body.into();
        self
    }
}

const BOUNDARY: &str = "covet-boundary-7MA4YWxkTrZu0gW";

/// A multipart/form-data body: two fields (one repeated) and a binary file.
fn multipart() -> Bytes {
    let mut body = Vec::new();
    for (name, value) in [("title", "report"), ("tag", "a"), ("tag", "b")] {
        body.extend_from_slice(format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    body.extend_from_slice(
        format!("--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"upload\"; filename=\"blob.bin\"\r\ncontent-type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend((0..70_000u32).map(|i| (i * 7 % 251) as u8));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(body)
}

fn multipart_type() -> &'static str {
    "multipart/form-data; boundary=covet-boundary-7MA4YWxkTrZu0gW"
}

fn starlette_steps() -> Vec<Step> {
    let json = ("content-type", "application/json");
    vec![
        step(Method::GET, "/hello"),
        step(Method::GET, "/hello?name=a%20b"),
        step(Method::HEAD, "/hello"),
        step(Method::GET, "/text?n=2000").header("accept-encoding", "gzip"),
        step(Method::GET, "/text?n=10").header("accept-encoding", "gzip"),
        step(Method::GET, "/text?n=2000"),
        step(Method::GET, "/file"),
        step(Method::HEAD, "/file"),
        step(Method::GET, "/file").header("range", "bytes=10-19"),
        step(Method::GET, "/file").header("range", "bytes=-5"),
        step(Method::GET, "/file").header("range", "bytes=102390-"),
        step(Method::GET, "/file").header("range", "bytes=500000-"),
        step(Method::POST, "/form").header("content-type", multipart_type()).body(multipart()),
        step(Method::POST, "/form").header("content-type", "application/x-www-form-urlencoded").body("a=1&a=2&b=x%20y"),
        step(Method::POST, "/background?what=first"),
        step(Method::POST, "/background?what=second"),
        step(Method::GET, "/cookies").header("cookie", "a=1; b=two"),
        step(Method::GET, "/redirect"),
        step(Method::GET, "/redirect?status=301"),
        step(Method::POST, "/echo/a/b?x=1&y=2").header(json.0, json.1).body(r#"{"k":[1,2,3]}"#),
        step(Method::PUT, "/echo/p").body("put body"),
        step(Method::DELETE, "/echo/d"),
        step(Method::HEAD, "/echo/h"),
        step(Method::POST, "/hello"),
        step(Method::GET, "/no/such/path"),
        step(Method::GET, "/produce?chunks=3"),
    ]
}

fn django_steps() -> Vec<Step> {
    let json = ("content-type", "application/json");
    vec![
        step(Method::GET, "/hello"),
        step(Method::GET, "/hello?name=django"),
        step(Method::HEAD, "/hello"),
        step(Method::GET, "/items/5?tag=a&tag=b"),
        step(Method::GET, "/items/500"),
        step(Method::GET, "/items/abc"),
        step(Method::GET, "/notes"),
        step(Method::POST, "/notes/").header(json.0, json.1).body(r#"{"text":"one"}"#),
        step(Method::POST, "/notes/").header(json.0, json.1).body(r#"{"text":"two"}"#),
        step(Method::GET, "/notes/"),
        step(Method::PUT, "/notes/"),
        step(Method::POST, "/upload").header("content-type", multipart_type()).body(multipart()),
        step(Method::GET, "/stream?count=4"),
        step(Method::GET, "/headers").header("user-agent", "covet-test/1"),
        step(Method::GET, "/no/such/page"),
    ]
}

fn app(dir: &str) -> PathBuf {
    workspace_root().join("python-plugins").join(dir)
}

fn covet(file: &str, attr: &str) -> Host {
    let manifest = format!(
        r#"
listen: [{{ addr: 127.0.0.1:0 }}]
python:
  venv: {venv}
plugins:
  app:
    kind: python
    asgi: {file}:{attr}
routes:
  - {{ path: "/", handler: app }}
  - {{ path: "/{{*rest}}", handler: app }}
"#,
        venv = venv().display(),
    );
    Host::builder(manifest).start()
}

async fn run(client: &Client, steps: &[Step]) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(steps.len());
    for s in steps {
        let reply = client.send(s.method.clone(), s.path, &s.headers, s.body.clone()).await;
        replies.push(reply.unwrap_or_else(|e| panic!("{} {}: {e}", s.method, s.path)));
    }
    replies
}

/// The compared headers. Where uvicorn chose chunked framing (the app gave
/// no length), covet may announce the length instead; the bodies are
/// compared anyway.
fn compared(reply: &Reply, chunked: bool) -> Vec<(&'static str, Vec<String>)> {
    let values = |name| reply.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect::<Vec<String>>();
    let framing = |name: &&&str| !(chunked && (**name == "content-length" || **name == "transfer-encoding"));
    let mut out: Vec<_> = COMPARED.iter().filter(framing).map(|name| (*name, values(*name))).collect();
    // Starlette builds `allow` from a set: its order changes with the hash seed.
    for (name, values) in &mut out {
        if *name == "allow" {
            values.iter_mut().for_each(|v| *v = sorted_list(v));
        }
    }
    let mut cookies: Vec<String> = values("set-cookie");
    cookies.sort();
    out.push(("set-cookie", cookies));
    out
}

fn sorted_list(value: &str) -> String {
    let mut items: Vec<&str> = value.split(',').map(str::trim).collect();
    items.sort_unstable();
    items.join(", ")
}

/// The body as the client would use it: gzip decoded (its header carries a
/// timestamp, so the raw bytes of two servers differ by a second or two).
fn decoded(reply: &Reply) -> Vec<u8> {
    if reply.header("content-encoding") != Some("gzip") {
        return reply.body.to_vec();
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&reply.body[..]), &mut out).expect("valid gzip");
    out
}

fn assert_same(steps: &[Step], covet: &[Reply], uvicorn: &[Reply]) {
    for (s, (c, u)) in steps.iter().zip(covet.iter().zip(uvicorn)) {
        let what = format!("{} {} {:?}", s.method, s.path, s.headers);
        assert_eq!(c.status, u.status, "{what}: status; covet body {}", c.text());
        let chunked = u.header("transfer-encoding") == Some("chunked");
        assert_eq!(compared(c, chunked), compared(u, chunked), "{what}: headers");
        assert_eq!(decoded(c), decoded(u), "{what}: body");
        assert_eq!(c.body.len(), u.body.len(), "{what}: body length on the wire");
    }
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.status.as_u16()).collect()
}

#[tokio::test]
async fn covet_and_uvicorn_answer_a_starlette_app_alike() {
    let host = covet(&app("starlette_app").join("app.py").display().to_string(), "app");
    host.wait_ready().await;
    let uvicorn = Uvicorn::start(&app("starlette_app"), "app:app", &[]);
    let steps = starlette_steps();
    let (from_covet, from_uvicorn) = (run(&host.http1(), &steps).await, run(&Client::http1(uvicorn.addr), &steps).await);
    assert_same(&steps, &from_covet, &from_uvicorn);

    // Not vacuous: the sequence covers these outcomes and features.
    let got = statuses(&from_covet);
    for expected in [200, 206, 301, 307, 404, 405, 416] {
        assert!(got.contains(&expected), "no {expected} in {got:?}");
    }
    assert_eq!(from_covet[2].header("content-length"), Some("11"), "HEAD keeps the GET length");
    assert!(from_covet[2].body.is_empty(), "HEAD has no body");
    assert_eq!(from_covet[3].header("content-encoding"), Some("gzip"));
    assert_eq!(from_covet[7].header("content-length"), Some("102400"), "HEAD of a file announces its size");
    assert_eq!(from_covet[8].body.as_ref(), &(10u8..20).collect::<Vec<_>>()[..], "the requested range");
    let form = from_covet[12].json();
    assert_eq!(form["upload"]["size"], 70_000);
    assert_eq!(form["tag"], serde_json::json!(["a", "b"]));
    assert_eq!(from_covet[25].body.len(), 3 * 65536, "the streamed body");
    // Background tasks run after their response. Neither server waits for
    // one before it serves the connection's next request (uvicorn starts the
    // next cycle when a response is complete, covet at once), so the two sync
    // tasks may run on two of anyio's threads at the same time and finish in
    // either order.
    for client in [host.http1(), Client::http1(uvicorn.addr)] {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = client.get("/stats").await.expect("stats").json();
            let mut ran: Vec<String> = stats["background"].as_array().expect("a list").iter().map(|v| v.as_str().unwrap_or("?").to_owned()).collect();
            ran.sort();
            if ran == ["first", "second"] {
                break;
            }
            assert!(Instant::now() < deadline, "the background tasks did not run: {stats}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    uvicorn.stop();
}

#[tokio::test]
async fn covet_and_uvicorn_answer_a_django_app_alike() {
    let host = covet(&app("django_app").join("app.py").display().to_string(), "application");
    host.wait_ready().await;
    let uvicorn = Uvicorn::start(&app("django_app"), "app:application", &[]);
    let steps = django_steps();
    let (from_covet, from_uvicorn) = (run(&host.http1(), &steps).await, run(&Client::http1(uvicorn.addr), &steps).await);
    assert_same(&steps, &from_covet, &from_uvicorn);

    let got = statuses(&from_covet);
    for expected in [200, 201, 301, 404, 405] {
        assert!(got.contains(&expected), "no {expected} in {got:?}");
    }
    assert_eq!(from_covet[9].json()["notes"], serde_json::json!(["one", "two"]));
    assert_eq!(from_covet[11].json()["files"]["upload"]["size"], 70_000);
    assert_eq!(from_covet[12].text(), "line 0\nline 1\nline 2\nline 3\n");
    assert_eq!(from_covet[13].header("x-seen-agent"), Some("covet-test/1"));
    uvicorn.stop();
}

/// Chunks of 64 KiB the Starlette app produced so far (`/stats`).
async fn produced(client: &Client) -> u64 {
    client.get("/stats").await.expect("stats").json()["produced"].as_u64().expect("a count")
}

#[tokio::test]
async fn a_slow_client_slows_a_streaming_app_down() {
    const CHUNKS: u64 = 1000; // 64 MB
    let host = covet(&app("starlette_app").join("app.py").display().to_string(), "app");
    host.wait_ready().await;
    let mut conn = tokio::net::TcpStream::connect(host.addr()).await.expect("connect");
    conn.write_all(format!("GET /produce?chunks={CHUNKS} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.expect("send");
    let mut buf = vec![0u8; 1 << 16];
    let mut read = conn.read(&mut buf).await.expect("the head") as u64;
    // The client stops reading; the app must stop producing soon after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled = produced(&host.http1()).await;
    assert!(stalled < CHUNKS / 4, "the app produced {stalled} of {CHUNKS} chunks while the client read nothing");
    while let Ok(n) = conn.read(&mut buf).await {
        if n == 0 || read >= CHUNKS * 65536 {
            break;
        }
        read += n as u64;
    }
    assert!(read >= CHUNKS * 65536, "the whole body arrived once the client read ({read} bytes)");
    assert_eq!(produced(&host.http1()).await, CHUNKS);
}

#[tokio::test]
async fn an_app_sees_a_client_that_left() {
    let host = covet(&app("starlette_app").join("app.py").display().to_string(), "app");
    host.wait_ready().await;
    let mut conn = tokio::net::TcpStream::connect(host.addr()).await.expect("connect");
    conn.write_all(b"GET /wait HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(conn);
    let left = Instant::now();
    let client = host.http1();
    loop {
        let seen = client.get("/stats").await.expect("stats").json()["disconnects"].as_u64();
        if seen == Some(1) {
            break;
        }
        assert!(left.elapsed() < PATIENCE.min(Duration::from_secs(3)), "the app did not see the client leave");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
