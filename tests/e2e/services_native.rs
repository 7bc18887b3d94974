//! Host services from a native plugin, end to end: the `covet-services-plugin`
//! fixture (an `AsyncPlugin` whose I/O all goes through `config.host()`)
//! served by the real binary, calling a real HTTP server the test starts
//! (hyper on port 0) through the host's outbound client.
//!
//! - [`HELD`] requests that each await `host.sleep` and then call an upstream
//!   that holds every request until all of them are in flight all succeed:
//!   they can only finish if the awaits run concurrently.
//! - A 64 MiB upstream body relayed as the plugin's response body streams:
//!   the host's peak RSS grows far less than the body, and a client that
//!   stops reading holds the upstream back (the kernel's socket buffers
//!   hold what was sent, not the host). A client's request body reaches the
//!   upstream before the client has finished sending it.
//! - A host outside the grants fails with an error naming it and `outbound_http`.
//! - `state.incr` counts across requests (memory and a real redis-server),
//!   two covet processes on one Redis count together, a filter has its own.
//! - A task spawned at init stops when its instance is swapped out.
//! - A client that leaves mid-call (HTTP/1.1 close, HTTP/2 stream reset)
//!   closes the outbound connection.
//! - `/metrics` counts each plugin's outbound requests, denials and errors,
//!   across a swap.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use covet_e2e::{Client, Host, RawConn, RedisServer, io_uring_fds, plugin};
use http_body_util::{BodyExt, Either, Full};
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming},
};
use serde_json::{Value, json};
use tokio::{io::AsyncReadExt, sync::Notify};

use crate::{
    common::PATIENCE,
    swap::{admin, swap},
};

/// How many requests `/hold` waits for.
const HELD: usize = 16;
/// The size of `/big`.
const BIG: usize = 64 << 20;

/// What the test's upstream saw.
#[derive(Default)]
struct Upstream {
    holding: AtomicUsize,
    peak: AtomicUsize,
    full: Notify,
    /// Bytes of the `/echo` request body received so far.
    echoed: AtomicUsize,
    echo_progress: Notify,
    /// Bytes of `/big` handed to hyper so far.
    produced: AtomicUsize,
}

/// A hyper server on 127.0.0.1:0: `/hold` answers once [`HELD`] requests are
/// in flight (or after [`PATIENCE`]); `/big` streams [`BIG`] bytes; `/small`
/// a few; `/echo` counts the request body as it arrives and answers its size.
async fn upstream() -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream::default());
    let shared = state.clone();
    let addr = covet_e2e::serve_http1(move |req| answer(shared.clone(), req)).await;
    (format!("http://{addr}"), state)
}

type Reply = Response<Either<Full<Bytes>, Big>>;

async fn answer(state: Arc<Upstream>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let text = |body: String| Response::new(Either::Left(Full::new(Bytes::from(body))));
    Ok(match req.uri().path() {
        "/hold" => {
            let now = state.holding.fetch_add(1, Ordering::SeqCst) + 1;
            state.peak.fetch_max(now, Ordering::SeqCst);
            if now >= HELD {
                state.full.notify_waiters();
            } else {
                let _ = tokio::time::timeout(PATIENCE, state.full.notified()).await;
            }
            let from = req.headers().get("x-from").and_then(|v| v.to_str().ok()).unwrap_or("");
            text(format!("peak {} from {from}", state.peak.load(Ordering::SeqCst)))
        }
        "/big" => Response::new(Either::Right(Big { left: BIG, state })),
        "/echo" => {
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else { break };
                state.echoed.fetch_add(data.len(), Ordering::SeqCst);
                state.echo_progress.notify_waiters();
            }
            text(format!("got {} bytes", state.echoed.load(Ordering::SeqCst)))
        }
        _ => text("small".into()),
    })
}

/// A body of `left` bytes of `y`, made in 64 KiB chunks as the reader
/// pulls (counted in [`Upstream::produced`]).
struct Big {
    left: usize,
    state: Arc<Upstream>,
}

impl Body for Big {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 << 10);
        self.left -= n;
        self.state.produced.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'y'; n])))))
    }
}

/// A manifest (JSON is YAML) with `plugins` (name → config, all the fixture,
/// each granted `grants`), `routes` (path → handler, optional filter) and
/// `services.state` = `state`.
fn manifest(plugins: &[(&str, Value)], routes: &[(&str, &str)], grants: Value, state: Value) -> String {
    let path = plugin("covet-services-plugin").display().to_string();
    let plugins: serde_json::Map<String, Value> = plugins
        .iter()
        .map(|(name, config)| {
            let entry = json!({ "kind": "native", "path": path, "config": config, "capabilities": grants });
            (name.to_string(), entry)
        })
        .collect();
    let routes: Vec<Value> = routes
        .iter()
        .map(|(path, chain)| match chain.split_once('+') {
            Some((filter, handler)) => json!({ "path": path, "filters": [filter], "handler": handler }),
            None => json!({ "path": path, "handler": chain }),
        })
        .collect();
    json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "log": { "access": false },
        "limits": { "max_body": "64MiB" },
        "services": { "state": state },
        "plugins": plugins,
        "routes": routes,
    })
    .to_string()
}

fn grants(upstream: &str) -> Value {
    json!({ "outbound_http": [upstream.trim_start_matches("http://"), "127.0.0.1:1"], "state": ["counters", "ticks"] })
}

fn memory() -> Value {
    json!({ "backend": "memory" })
}

/// The gateway most tests use: one route per mode against `up`.
fn gateway(up: &str) -> String {
    let plugins = [
        ("sleep", json!({ "mode": "sleep", "ms": 100, "url": format!("{up}/hold") })),
        ("relay", json!({ "mode": "relay", "url": format!("{up}/big") })),
        ("small", json!({ "mode": "relay", "url": format!("{up}/small") })),
        ("post", json!({ "mode": "post", "url": format!("{up}/echo") })),
        ("denied", json!({ "mode": "denied", "url": "http://denied.example/x" })),
        ("broken", json!({ "mode": "relay", "url": "http://127.0.0.1:1/x" })),
        ("incr", json!({ "mode": "incr" })),
        ("filter", json!({ "mode": "filter", "key": "filtered" })),
    ];
    let routes = [
        ("/sleep", "sleep"),
        ("/relay", "relay"),
        ("/small", "small"),
        ("/post", "post"),
        ("/denied", "denied"),
        ("/broken", "broken"),
        ("/incr", "incr"),
        ("/filtered", "filter+filter"),
    ];
    manifest(&plugins, &routes, grants(up), memory())
}

/// Starts a host; under `COVET_IO=uring` checks that it really runs on io_uring.
async fn started(manifest: String) -> Host {
    let host = Host::start(manifest).await;
    if std::env::var("COVET_IO").as_deref() == Ok("uring") {
        assert!(io_uring_fds(host.pid()) >= 1, "COVET_IO=uring, yet the host holds no io_uring");
    }
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeps_and_outbound_calls_of_concurrent_requests_are_in_flight_at_once() {
    let (url, up) = upstream().await;
    let host = started(gateway(&url)).await;
    let client = host.http1();
    let calls: Vec<_> = (0..HELD)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/sleep").await })
        })
        .collect();
    for call in calls {
        let reply = call.await.unwrap().expect("a response");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(reply.text().starts_with("slept 100ms; upstream 200: peak"), "{}", reply.text());
        assert!(reply.text().ends_with("from native"), "the request header reached the upstream: {}", reply.text());
    }
    // The upstream holds each request until all are in flight: this holds
    // only if every sleep and outbound call was awaited at the same time.
    assert_eq!(up.peak.load(Ordering::SeqCst), HELD, "every call was in flight at once");
}

/// A `/proc/PID/status` figure in KiB (`VmHWM:`, the peak RSS; `VmRSS:`).
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upstream_body_is_relayed_as_a_stream_in_bounded_memory() {
    let (url, _) = upstream().await;
    let host = started(gateway(&url)).await;
    let warm = host.http1().get("/small").await.expect("a response");
    assert_eq!((warm.status.as_u16(), warm.text(), warm.header("x-relayed")), (200, "small".into(), Some("yes")));
    let before = vm_kib(host.pid(), "VmHWM:");
    let reply = host.http1().get("/relay").await.expect("a response");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), BIG);
    assert!(reply.body.iter().all(|&b| b == b'y'), "the body arrives intact");
    let grown = vm_kib(host.pid(), "VmHWM:").saturating_sub(before);
    eprintln!("relaying {} MiB grew the host's peak RSS by {grown} KiB", BIG >> 20);
    // With the machine busy (the suite's other hosts), the peak sometimes
    // grows by 15-40 MiB at full speed though the body is never held (see
    // the paused client below, and docs/host-services.md): since both
    // backends are thread per core the response is written on a worker
    // while the upstream is read on the main runtime, on epoll as on
    // io_uring. So the bound here is only that the body was not collected.
    let bound = BIG as u64 >> 10;
    assert!(grown < bound, "peak RSS grew by {grown} KiB relaying {} MiB", BIG >> 20);
}

/// What `counter` settles at: the same value over five looks 50 ms apart.
async fn settled(counter: &AtomicUsize) -> usize {
    let deadline = Instant::now() + PATIENCE;
    let (mut last, mut same) = (usize::MAX, 0);
    while same < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.load(Ordering::SeqCst);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_the_upstream_back() {
    let (url, up) = upstream().await;
    let host = started(gateway(&url)).await;
    assert_eq!(text(&host.http1(), "/small").await, "small");
    let before = vm_kib(host.pid(), "VmRSS:");
    let stream = tokio::net::TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::get("/relay").header("host", "x").body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let response = sender.send_request(request).await.expect("a response head");
    assert_eq!(response.status(), 200);
    // The client reads no body yet: what the upstream could send settles at
    // what the buffers on the way (kernel, hyper, one chunk per hop) hold.
    let held = settled(&up.produced).await;
    let grown = vm_kib(host.pid(), "VmRSS:").saturating_sub(before);
    eprintln!("with the client paused the upstream sent {} KiB of {} MiB; host RSS grew by {grown} KiB", held >> 10, BIG >> 20);
    assert!(held < BIG / 2, "the upstream sent {held} bytes to a client that read none");
    assert!(grown < 16 * 1024, "the host's RSS grew by {grown} KiB holding a paused relay");
    let mut body = response.into_body();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        total += frame.expect("the body streams on").into_data().map_or(0, |d| d.len());
    }
    assert_eq!(total, BIG, "the whole body arrives once the client reads");
}

/// Waits until the upstream has received at least `n` bytes of `/echo`.
async fn echoed(up: &Upstream, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while up.echoed.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the upstream got {} of {n} bytes", up.echoed.load(Ordering::SeqCst));
        let _ = tokio::time::timeout(Duration::from_millis(20), up.echo_progress.notified()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_body_streams_to_the_upstream_while_the_client_sends_it() {
    let (url, up) = upstream().await;
    let host = started(gateway(&url)).await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send("POST /post HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
    conn.send(format!("{:x}\r\n{}\r\n", 1000, "a".repeat(1000))).await.unwrap();
    // The first part reaches the upstream while the client's body is still open.
    echoed(&up, 1000).await;
    conn.send(format!("{:x}\r\n{}\r\n0\r\n\r\n", 2000, "b".repeat(2000))).await.unwrap();
    let resp = conn.response(PATIENCE).await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(String::from_utf8_lossy(&resp.body), "got 3000 bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_grants_is_an_error_naming_it_and_the_grant() {
    let (url, _) = upstream().await;
    let host = started(gateway(&url)).await;
    let reply = host.http1().get("/denied").await.expect("a response");
    assert_eq!(reply.status, 502, "{}", reply.text());
    let text = reply.text();
    assert!(text.starts_with("Denied: "), "{text}");
    assert!(text.contains("'denied'") && text.contains("'denied.example:80'") && text.contains("outbound_http"), "{text}");
    let broken = host.http1().get("/broken").await.expect("a response");
    assert_eq!(broken.status, 502, "{}", broken.text());
    assert!(broken.text().starts_with("Connect: ") && broken.text().contains("127.0.0.1:1"), "{}", broken.text());
}

async fn text(client: &Client, path: &str) -> String {
    let reply = client.get(path).await.expect("a response");
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_counts_across_requests_and_a_filter_counts_its_own_key() {
    let (url, _) = upstream().await;
    let host = started(gateway(&url)).await;
    let client = host.http1();
    for expected in 1..=5 {
        assert_eq!(text(&client, "/incr").await, expected.to_string());
    }
    for expected in 1..=3 {
        assert_eq!(text(&client, "/filtered").await, expected.to_string(), "the filter's counter is its own key");
    }
    assert_eq!(text(&client, "/incr").await, "6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_two_covet_processes_count_in_one_counter() {
    let redis = RedisServer::start();
    let (url, _) = upstream().await;
    let state = json!({ "backend": "redis", "url": redis.url(), "timeout": "2s" });
    let text_manifest = manifest(&[("incr", json!({ "mode": "incr" }))], &[("/incr", "incr")], grants(&url), state);
    let hosts = [started(text_manifest.clone()).await, started(text_manifest).await];
    for expected in 1..=6 {
        assert_eq!(text(&hosts[expected % 2].http1(), "/incr").await, expected.to_string(), "the hosts count in one Redis");
    }
    assert_eq!(redis.get("covet:counters:hits"), "6", "the counter lives in Redis under the prefix and namespace");
}

async fn ticks(client: &Client) -> Value {
    let reply = client.get("/ticks").await.expect("a response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Waits until `key` has counted at least `n` ticks.
async fn ticked(client: &Client, key: &str, n: u64) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = ticks(client).await;
        if now[key].as_u64().unwrap_or(0) >= n {
            return now;
        }
        assert!(Instant::now() < deadline, "{key} stuck below {n}: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_spawned_at_init_stops_when_its_instance_is_swapped_out() {
    let (url, _) = upstream().await;
    let ticker = |label: &str| json!({ "mode": "ticker", "label": label, "ms": 20, "keys": ["v1", "v2"], "marker": format!("retired-{label}") });
    let host = started(manifest(&[("ticker", ticker("v1"))], &[("/ticks", "ticker")], grants(&url), memory())).await;
    let client = host.http1();
    ticked(&client, "v1", 3).await;
    let reply = swap(&host, "ticker", json!({ "config": ticker("v2") })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deadline = Instant::now() + PATIENCE;
    while !host.path("retired-v1").exists() {
        assert!(Instant::now() < deadline, "v1 was never retired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // v2's task runs on; the shared counters show v1's stopped with its instance.
    let settled = ticked(&client, "v2", 3).await;
    let after = ticked(&client, "v2", settled["v2"].as_u64().unwrap() + 5).await;
    assert!(settled["v1"].as_u64().unwrap() >= 3, "{settled}");
    assert_eq!(after["v1"], settled["v1"], "v1's task stopped when v1 was retired: {settled} then {after}");
}

/// A TCP server that takes one connection, reads a request head, says so,
/// then waits for the connection to close and says that.
async fn silent_upstream() -> (String, Arc<Notify>, tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got, (closed_tx, closed_rx)) = (Arc::new(Notify::new()), tokio::sync::oneshot::channel());
    let signal = got.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        signal.notify_one();
                    }
                }
            }
        }
        let _ = closed_tx.send(());
    });
    (format!("http://{addr}"), got, closed_rx)
}

/// A host whose `/hang` relays from a [`silent_upstream`].
async fn hanging() -> (Host, Arc<Notify>, tokio::sync::oneshot::Receiver<()>) {
    let (url, got_request, closed) = silent_upstream().await;
    let plugins = [("hang", json!({ "mode": "relay", "url": format!("{url}/never") }))];
    (started(manifest(&plugins, &[("/hang", "hang")], grants(&url), memory())).await, got_request, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_call_closes_the_outbound_connection() {
    let (host, got_request, closed) = hanging().await;
    let mut conn = RawConn::connect(host.addr()).await;
    conn.send("GET /hang HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    tokio::time::timeout(PATIENCE, got_request.notified()).await.expect("the outbound request reached the upstream");
    drop(conn);
    tokio::time::timeout(PATIENCE, closed).await.expect("the upstream's connection was closed").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_reset_mid_call_closes_the_outbound_connection() {
    let (host, got_request, closed) = hanging().await;
    let client = host.http2();
    let pending = tokio::spawn(async move { client.get("/hang").await });
    tokio::time::timeout(PATIENCE, got_request.notified()).await.expect("the outbound request reached the upstream");
    pending.abort(); // drops the response future: the client resets the stream
    tokio::time::timeout(PATIENCE, closed).await.expect("the upstream's connection was closed").unwrap();
}

/// The value of `series` (name and labels) in a scrape of the admin `/metrics`.
async fn sample(host: &Host, series: &str) -> u64 {
    let reply = admin(host).get("/metrics").await.expect("the admin API answers");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let scrape = reply.text();
    let line = scrape.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')));
    let line = line.unwrap_or_else(|| panic!("no sample {series} in:\n{scrape}"));
    line[series.len()..].trim().parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_plugins_outbound_requests_denials_and_errors_across_a_swap() {
    let (url, _) = upstream().await;
    let host = started(gateway(&url)).await;
    let client = host.http1();
    for _ in 0..2 {
        assert_eq!(text(&client, "/small").await, "small");
    }
    assert_eq!(client.get("/denied").await.unwrap().status, 502);
    assert_eq!(client.get("/broken").await.unwrap().status, 502);
    let series = |name: &str, plugin: &str| format!("covet_plugin_outbound_{name}_total{{plugin=\"{plugin}\"}}");
    assert_eq!(sample(&host, &series("requests", "small")).await, 2);
    assert_eq!(sample(&host, &series("errors", "small")).await, 0);
    assert_eq!(sample(&host, &series("denied", "denied")).await, 1);
    assert_eq!(sample(&host, &series("requests", "denied")).await, 0, "a denied request is not sent");
    assert_eq!(sample(&host, &series("requests", "broken")).await, 1);
    assert_eq!(sample(&host, &series("errors", "broken")).await, 1);
    assert_eq!(sample(&host, &series("requests", "incr")).await, 0, "every plugin has the series");
    // A new instance of the plugin counts on from its predecessor's counts.
    let reply = swap(&host, "small", json!({ "config": { "mode": "relay", "url": format!("{url}/small?v=2") } })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(text(&client, "/small").await, "small");
    assert_eq!(sample(&host, &series("requests", "small")).await, 3);
}
