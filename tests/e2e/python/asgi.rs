//! ASGI 3.0 apps under covet (`kind: python`, `asgi:`): the `http` scope
//! (every key, over HTTP/1.1 and HTTP/2), the request body through
//! `receive`, a streaming response flushed chunk by chunk, and the lifespan
//! protocol (state set at startup, a failed startup refusing the plugin, an
//! app without lifespan support accepted).

use std::time::Duration;

use covet_e2e::{Host, RawConn};
use http::Method;
use serde_json::json;

use crate::common::PATIENCE;

/// Echoes its scope (bytes as text) and the request body as JSON; `/stream`
/// sends "first", waits for `/release`, then sends "last".
const ECHO_APP: &str = r#"
import asyncio, json

released = asyncio.Event()
disconnects = []

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["booted"] = "at-startup"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/wait-for-disconnect":
        await receive()
        print("waiting for the client to leave")
        message = await receive()
        disconnects.append(message["type"])
        return
    if scope["path"] == "/disconnects":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": ",".join(disconnects).encode()})
        return
    if scope["path"] == "/release":
        released.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first|", "more_body": True})
        await released.wait()
        for part in (b"second|", b"third|"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"last", "more_body": False})
        return
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    text = lambda v: v.decode("latin-1") if isinstance(v, bytes) else v
    out = {k: text(v) for k, v in scope.items() if k not in ("headers", "state")}
    out["types"] = {k: type(v).__name__ for k, v in scope.items()}
    out["headers"] = [[text(k), text(v)] for k, v in scope["headers"]]
    out["state"] = scope.get("state")
    out["body"] = body.decode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json"), (b"x-echo", b"1")]})
    await send({"type": "http.response.body", "body": json.dumps(out).encode()})
"#;

fn manifest(app: &str) -> String {
    format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\n\
         plugins:\n  app:\n    kind: python\n    asgi: {app}\n\
         routes:\n  - path: /{{*rest}}\n    handler: app\n"
    )
}

async fn echo_host() -> Host {
    let host = Host::builder(manifest("echo.py:app")).file("echo.py", ECHO_APP).start();
    host.wait_ready().await;
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_scope_has_every_key_and_value() {
    let host = echo_host().await;
    let port = host.addr().port();
    let reply = host
        .http1()
        .send(Method::POST, "/caf%C3%A9/x%20y?q=1&r=%20", &[("X-Custom-Header", "Value"), ("content-type", "text/plain")], "the body")
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("x-echo"), Some("1"));
    let scope = reply.json();
    assert_eq!(scope["type"], "http");
    assert_eq!(scope["asgi"], json!({ "version": "3.0", "spec_version": "2.3" }));
    assert_eq!(scope["http_version"], "1.1");
    assert_eq!(scope["method"], "POST");
    assert_eq!(scope["scheme"], "http");
    assert_eq!(scope["path"], "/café/x y", "percent-decoded");
    assert_eq!(scope["raw_path"], "/caf%C3%A9/x%20y");
    assert_eq!(scope["query_string"], "q=1&r=%20");
    assert_eq!(scope["root_path"], "");
    assert_eq!(scope["client"][0], "127.0.0.1");
    assert!(scope["client"][1].as_u64().is_some_and(|p| p > 0 && p != u64::from(port)));
    assert_eq!(scope["server"], json!(["127.0.0.1", port]));
    for (key, ty) in [("raw_path", "bytes"), ("query_string", "bytes"), ("headers", "list"), ("client", "tuple"), ("server", "tuple")] {
        assert_eq!(scope["types"][key], ty, "type of {key}");
    }
    let headers = scope["headers"].as_array().unwrap();
    assert!(headers.contains(&json!(["x-custom-header", "Value"])), "names lower-cased, values kept: {headers:?}");
    assert!(headers.contains(&json!(["content-length", "8"])));
    assert_eq!(scope["body"], "the body");
    assert_eq!(scope["state"], json!({ "booted": "at-startup" }), "state from the lifespan startup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_say_so_in_the_scope() {
    let host = echo_host().await;
    let reply = host.http2().get("/h2?x=1").await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.version, http::Version::HTTP_2);
    let scope = reply.json();
    assert_eq!(scope["http_version"], "2");
    assert_eq!(scope["path"], "/h2");
    assert_eq!(scope["query_string"], "x=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_body_reaches_the_app_whole() {
    let host = echo_host().await;
    let body: String = (0..20_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let reply = host.http1().send(Method::PUT, "/upload", &[], body.clone()).await.unwrap();
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["body"], body);
}

/// Reads from `conn` until `needle` has arrived (panics after PATIENCE).
async fn read_until(conn: &mut RawConn, seen: &mut Vec<u8>, needle: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !String::from_utf8_lossy(seen).contains(needle) {
        assert!(tokio::time::Instant::now() < deadline, "{needle:?} never arrived; got {:?}", String::from_utf8_lossy(seen));
        if let Some(bytes) = conn.read_some(Duration::from_millis(200)).await {
            seen.extend_from_slice(&bytes);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_is_flushed_chunk_by_chunk() {
    let host = echo_host().await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send("GET /stream HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    let mut seen = Vec::new();
    // The app waits for /release after its first chunk: the chunk must reach
    // the client before the app can send the rest.
    read_until(&mut conn, &mut seen, "first|").await;
    let head = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("last"), "nothing after the first chunk yet");
    assert_eq!(host.http1().get("/release").await.unwrap().status, 204);
    read_until(&mut conn, &mut seen, "\r\n0\r\n\r\n").await;
    let text = String::from_utf8_lossy(&seen);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let order: Vec<usize> = ["first|", "second|", "third|", "last"].iter().map(|p| body.find(p).expect(p)).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lifespan_startup_refuses_the_plugin_with_the_apps_message() {
    let app = r#"
async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable: db:5432"})
"#;
    let checked = Host::builder(manifest("bad.py:app")).file("bad.py", app).check(PATIENCE);
    assert!(!checked.status.success(), "covet check refuses it");
    let said = format!("{}{}", checked.stdout, checked.stderr);
    assert!(said.contains("database unreachable: db:5432"), "{said}");
    let run = Host::builder(manifest("bad.py:app")).file("bad.py", app).run_to_exit(PATIENCE);
    assert!(!run.status.success());
    assert!(run.stderr.contains("lifespan startup failed: database unreachable"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_lifespan_support_is_accepted() {
    let app = r#"
async def app(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("only http here")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"plain " + scope["method"].encode()})
"#;
    let host = Host::builder(manifest("plain.py:app")).file("plain.py", app).start();
    host.wait_ready().await;
    let reply = host.http1().get("/x").await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "plain GET"));
    let reply = host.http1().send(Method::HEAD, "/x", &[], "").await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_going_away_is_an_http_disconnect() {
    let host = echo_host().await;
    // Over HTTP/2 a cancelled request resets its stream, and the host drops
    // the request (hyper does not notice a client leaving an HTTP/1.1
    // request in progress).
    let client = host.http2();
    let request = tokio::spawn(async move { client.get("/wait-for-disconnect").await });
    assert!(host.log_line(&["waiting for the client to leave"]).await.is_some(), "{}", host.logs());
    request.abort();
    let _ = request.await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = host.http1().get("/disconnects").await.unwrap().text();
        if seen == "http.disconnect" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "receive() never said http.disconnect: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
