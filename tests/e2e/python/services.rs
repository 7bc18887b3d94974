//! Host services from Python (`covet.sleep`, `covet.http`, `covet.state`,
//! `app.every`, `covet.spawn`) end to end: a decorator app served by the real
//! binary calls a real HTTP server the test starts (hyper on port 0) through
//! the host's outbound client, with the grants of its manifest entry.
//!
//! - 20 requests that each `await covet.sleep(0.2)` and then call an upstream
//!   that holds every request until 20 are in flight all succeed: they can
//!   only finish if the awaits run concurrently (no thread waits on one).
//! - Response bodies stream chunk by chunk, request bodies stream from an
//!   async generator, JSON both ways.
//! - A host outside the grants raises `covet.OutboundDenied` naming the host
//!   and the manifest key; uncaught, it is a 500 that names them too.
//! - Shared state: `incr` counts across requests, get/set/compare-and-set/
//!   delete, and an ungranted namespace raises `covet.StateDenied`; with
//!   `backend: redis` (a real redis-server) two hosts share one counter.
//! - A swapped-out instance's periodic task and spawned task stop.
//! - An ASGI app and an async filter get their own instance's grants too.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use covet_e2e::Host;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{common::PATIENCE, swap::swap};

/// How many requests the `/hold` endpoint waits for.
const HELD: usize = 20;

const APP: &str = r#"
import covet
from covet import Covet

app = Covet()
counters = covet.state("counters")

def upstream(path):
    return app.config["upstream"] + path

@app.get("/hold")
async def hold():
    await covet.sleep(0.2)
    resp = await covet.http.get(upstream("/hold"), headers={"x-from": "python"})
    return {"status": resp.status, "body": await resp.text(), "server": resp.headers.get("x-upstream")}

@app.get("/stream")
async def stream():
    resp = await covet.http.get(upstream("/big"))
    total, chunks = 0, 0
    async for chunk in resp.stream():
        total += len(chunk)
        chunks += 1
    return {"total": total, "chunks": chunks, "version": resp.http_version}

@app.get("/upload")
async def upload():
    async def parts():
        for i in range(10):
            await covet.sleep(0)
            yield b"part%d;" % i
    resp = await covet.http.post(upstream("/echo"), parts())
    return {"echo": await resp.text()}

@app.get("/json")
async def json_roundtrip():
    resp = await covet.http.post(upstream("/echo"), json={"a": [1, 2]}, timeout=5)
    return {"echoed": await resp.json(), "type": resp.headers.get("x-content-type")}

@app.get("/denied")
async def denied():
    await covet.http.get("http://127.0.0.1:1/nope")

@app.get("/denied-caught")
async def denied_caught():
    try:
        await covet.http.get("http://denied.example/x")
    except covet.OutboundDenied as e:
        return {"type": type(e).__name__, "message": str(e), "grant": e.grant, "base": isinstance(e, covet.HostServiceError)}
    return {"type": None}

@app.get("/timeout")
async def timeout():
    try:
        await covet.http.get(upstream("/slow"), timeout=0.2)
    except covet.ServiceTimeout as e:
        return {"type": type(e).__name__, "kind": e.kind, "message": str(e)}
    return {"type": None}

@app.get("/count")
async def count():
    return {"hits": await counters.incr("hits")}

@app.get("/state")
async def state_ops():
    await counters.set("k", "v1", ttl=60)
    got = await counters.get("k")
    swapped = await counters.compare_and_set("k", b"v1", b"v2")
    stale = await counters.compare_and_set("k", b"v1", b"v3")
    after = await counters.get("k")
    deleted = await counters.delete("k")
    gone = await counters.get("k")
    try:
        await covet.state("secret").get("x")
        denied = None
    except covet.StateDenied as e:
        denied = str(e)
    return {"got": got.decode(), "swapped": swapped, "stale": stale, "after": after.decode(),
            "deleted": deleted, "gone": gone, "denied": denied}

@app.get("/sync", blocking=True)
def sync_endpoint():
    import asyncio
    try:
        asyncio.run(covet.sleep(0))
    except covet.HostServiceError as e:
        return {"kind": e.kind, "message": str(e)}
    return {"kind": None}
"#;

/// An app whose periodic task and spawned task count ticks in shared state.
fn ticker(version: &str) -> String {
    format!(
        r#"
import covet
from covet import Covet

app = Covet()
ticks = covet.state("ticks")

@app.on_shutdown
def bye():
    import os
    open(os.path.join(os.path.dirname(__file__), "shutdown-{version}"), "w").close()

@app.every(0.05)
async def tick():
    await ticks.incr("{version}-every")

async def spawned():
    while True:
        await ticks.incr("{version}-spawned")
        await covet.sleep(0.05)

@app.get("/start")
async def start():
    covet.spawn(spawned())
    return {{"version": "{version}"}}

@app.get("/ticks")
async def read():
    async def n(key):
        v = await ticks.get(key)
        return int(v) if v is not None else 0
    return {{k: await n(k) for k in ("v1-every", "v1-spawned", "v2-every", "v2-spawned")}}
"#
    )
}

fn manifest(app: &str, upstream: &str, routes: &[&str]) -> String {
    manifest_with(app, upstream, routes, json!({ "backend": "memory" }))
}

fn manifest_with(app: &str, upstream: &str, routes: &[&str], state: Value) -> String {
    let routes: Vec<Value> = routes.iter().map(|p| json!({ "path": p, "handler": "app" })).collect();
    let authority = upstream.trim_start_matches("http://");
    json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "log": { "access": false },
        "python": { "threads": 2 },
        "services": { "state": state },
        "plugins": { "app": {
            "kind": "python",
            "app": app,
            "config": { "upstream": upstream },
            "capabilities": { "outbound_http": [authority], "state": ["counters", "ticks"] },
        }},
        "routes": routes,
    })
    .to_string()
}

/// The upstream's counters: requests in `/hold` now, the most at once.
#[derive(Default)]
struct Upstream {
    holding: AtomicUsize,
    peak: AtomicUsize,
    full: Notify,
}

/// A hyper server on 127.0.0.1:0: `/hold` answers once [`HELD`] requests are
/// in flight (or after [`PATIENCE`]) with the most it saw at once; `/big`
/// sends 256 KiB; `/echo` returns the request body.
async fn upstream() -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream::default());
    let shared = state.clone();
    let addr = covet_e2e::serve_http1(move |req| answer(shared.clone(), req)).await;
    (format!("http://{addr}"), state)
}

async fn answer(state: Arc<Upstream>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |body: Bytes| Response::builder().header("x-upstream", "test").body(Full::new(body)).unwrap();
    match req.uri().path() {
        "/hold" => {
            let now = state.holding.fetch_add(1, Ordering::SeqCst) + 1;
            state.peak.fetch_max(now, Ordering::SeqCst);
            if now >= HELD {
                state.full.notify_waiters();
            } else {
                let _ = tokio::time::timeout(PATIENCE, state.full.notified()).await;
            }
            let peak = state.peak.load(Ordering::SeqCst);
            Ok(reply(Bytes::from(format!("peak {peak} from {}", header(&req, "x-from")))))
        }
        "/big" => Ok(reply(Bytes::from(vec![b'x'; 256 * 1024]))),
        "/slow" => {
            tokio::time::sleep(PATIENCE).await;
            Ok(reply(Bytes::from_static(b"late")))
        }
        _ => {
            let kind = header(&req, "content-type");
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let mut resp = reply(body);
            resp.headers_mut().insert("x-content-type", kind.parse().unwrap());
            Ok(resp)
        }
    }
}

fn header(req: &Request<Incoming>, name: &str) -> String {
    req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

async fn started(app: &str, upstream: &str) -> Host {
    let host = Host::builder(manifest("app.py:app", upstream, &["/{*rest}"])).file("app.py", app.to_owned()).start();
    host.wait_ready().await;
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaits_of_sleep_and_outbound_calls_run_concurrently() {
    let (url, up) = upstream().await;
    let host = started(APP, &url).await;
    let client = host.http1();
    let began = Instant::now();
    let calls: Vec<_> = (0..HELD).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get("/hold").await })
    }).collect();
    for call in calls {
        let reply = call.await.unwrap().expect("request");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["status"], 200);
        assert_eq!(body["server"], "test", "response headers reach Python");
        assert!(body["body"].as_str().unwrap().ends_with("from python"), "request headers reach upstream: {body}");
    }
    // The upstream holds each request until all of them are in flight, so
    // this only holds if the 20 sleeps and calls were awaited at once.
    assert_eq!(up.peak.load(Ordering::SeqCst), HELD, "every call was in flight at once");
    eprintln!("{HELD} requests of sleep(0.2) + an outbound call took {:?}", began.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_and_json_round_trips() {
    let (url, _) = upstream().await;
    let host = started(APP, &url).await;
    let client = host.http1();
    let streamed = client.get("/stream").await.unwrap();
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let body = streamed.json();
    assert_eq!(body["total"], 256 * 1024, "{body}");
    assert!(body["chunks"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(body["version"], "HTTP/1.1");
    let upload = client.get("/upload").await.unwrap();
    assert_eq!(upload.status, 200, "{}", upload.text());
    let expected: String = (0..10).map(|i| format!("part{i};")).collect();
    assert_eq!(upload.json()["echo"], expected, "the async generator's chunks arrive in order");
    let round = client.get("/json").await.unwrap();
    assert_eq!(round.status, 200, "{}", round.text());
    assert_eq!(round.json(), json!({ "echoed": { "a": [1, 2] }, "type": "application/json" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_host_is_an_exception_naming_the_host_and_the_grant() {
    let (url, _) = upstream().await;
    let host = started(APP, &url).await;
    let client = host.http1();
    let caught = client.get("/denied-caught").await.unwrap();
    assert_eq!(caught.status, 200, "{}", caught.text());
    let body = caught.json();
    assert_eq!(body["type"], "OutboundDenied");
    assert_eq!(body["grant"], "outbound_http");
    assert_eq!(body["base"], true);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("'denied.example:80'") && message.contains("outbound_http"), "{message}");
    let uncaught = client.get("/denied").await.unwrap();
    assert_eq!(uncaught.status, 500, "{}", uncaught.text());
    let text = uncaught.text();
    assert!(text.contains("OutboundDenied") && text.contains("127.0.0.1:1") && text.contains("outbound_http"), "{text}");
    let late = client.get("/timeout").await.unwrap().json();
    assert_eq!(late["type"], "ServiceTimeout", "{late}");
    assert!(late["message"].as_str().unwrap().contains("timed out after 200ms"), "{late}");
    let sync = client.get("/sync").await.unwrap().json();
    assert_eq!(sync["kind"], "usage", "services are async-only: {sync}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_state_counts_across_requests() {
    let (url, _) = upstream().await;
    let host = started(APP, &url).await;
    let client = host.http1();
    for expected in 1..=5 {
        let reply = client.get("/count").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["hits"], expected);
    }
    let ops = client.get("/state").await.unwrap();
    assert_eq!(ops.status, 200, "{}", ops.text());
    let body = ops.json();
    assert_eq!(body["got"], "v1");
    assert_eq!(body["swapped"], true);
    assert_eq!(body["stale"], false);
    assert_eq!(body["after"], "v2");
    assert_eq!(body["deleted"], true);
    assert_eq!(body["gone"], Value::Null);
    let denied = body["denied"].as_str().expect("an ungranted namespace is denied");
    assert!(denied.contains("'secret'") && denied.contains("state"), "{denied}");
}

async fn ticks(client: &covet_e2e::Client) -> Value {
    let reply = client.get("/ticks").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Waits until `key` has counted at least `n` ticks.
async fn ticked(client: &covet_e2e::Client, key: &str, n: u64) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = ticks(client).await;
        if now[key].as_u64().unwrap_or(0) >= n || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_out_instance_stops_its_background_tasks() {
    let (url, _) = upstream().await;
    let host = Host::builder(manifest("v1.py:app", &url, &["/{*rest}"]))
        .file("v1.py", ticker("v1"))
        .file("v2.py", ticker("v2"))
        .start();
    host.wait_ready().await;
    let client = host.http1();
    assert_eq!(client.get("/start").await.unwrap().json()["version"], "v1");
    let before = ticked(&client, "v1-spawned", 3).await;
    assert!(before["v1-every"].as_u64().unwrap() >= 1, "the periodic task runs: {before}");
    let reply = swap(&host, "app", json!({ "path": "v2.py" })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deadline = Instant::now() + PATIENCE;
    while !host.path("shutdown-v1").exists() {
        assert!(Instant::now() < deadline, "v1 was retired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // v2's periodic task runs, and the state (shared by both) shows v1's stopped.
    let settled = ticked(&client, "v2-every", 3).await;
    let after = ticked(&client, "v2-every", settled["v2-every"].as_u64().unwrap() + 3).await;
    assert!(after["v2-every"].as_u64().unwrap() > settled["v2-every"].as_u64().unwrap(), "v2 ticks on: {after}");
    for key in ["v1-every", "v1-spawned"] {
        assert_eq!(after[key], settled[key], "{key} stopped with its instance: {settled} then {after}");
    }
}

const ASGI: &str = r#"
import covet

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await covet.state("asgi").set("started", "yes")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    n = await covet.state("asgi").incr("calls")
    started = await covet.state("asgi").get("started")
    try:
        await covet.state("filtered").get("x")
        denied = "no"
    except covet.StateDenied:
        denied = "yes"
    body = b"calls=%d started=%s denied=%s" % (n, started, denied.encode())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"#;

const FILTER: &str = r#"
import covet

async def on_request(request):
    request.metadata["filter.seen"] = str(await covet.state("filtered").incr("seen"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asgi_app_and_a_filter_use_their_own_grants() {
    let manifest = json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "log": { "access": false },
        "plugins": {
            "asgi": { "kind": "python", "asgi": "asgi_app.py:app", "capabilities": { "state": ["asgi"] } },
            "seen": { "kind": "python", "filter": "seen.py", "capabilities": { "state": ["filtered"] } },
        },
        "routes": [{ "path": "/a", "filters": ["seen"], "handler": "asgi" }],
    });
    let host = Host::builder(manifest.to_string()).file("asgi_app.py", ASGI).file("seen.py", FILTER).start();
    host.wait_ready().await;
    let client = host.http1();
    for n in 1..=3 {
        let reply = client.get("/a").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        // The filter's namespace is not the app's: each plugin has its own grants.
        assert_eq!(reply.text(), format!("calls={n} started=yes denied=yes"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_two_hosts_share_one_counter() {
    let redis = covet_e2e::RedisServer::start();
    let (url, _) = upstream().await;
    let state = json!({ "backend": "redis", "url": redis.url(), "timeout": "2s" });
    let text = manifest_with("app.py:app", &url, &["/{*rest}"], state);
    let hosts = [
        Host::builder(text.clone()).file("app.py", APP.to_owned()).start(),
        Host::builder(text).file("app.py", APP.to_owned()).start(),
    ];
    for host in &hosts {
        host.wait_ready().await;
    }
    for expected in 1..=6 {
        let reply = hosts[expected % 2].http1().get("/count").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["hits"], expected, "the hosts count in one Redis");
    }
    let ops = hosts[0].http1().get("/state").await.unwrap().json();
    assert_eq!((ops["got"].clone(), ops["swapped"].clone(), ops["after"].clone()), (json!("v1"), json!(true), json!("v2")), "{ops}");
}
