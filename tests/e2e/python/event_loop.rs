//! The asyncio event loop as covet drives it (host/src/runtime/python/aloop.rs):
//! it runs on I/O worker 0 (so a request reaches Python without changing
//! threads), sync endpoints run inline there unless `blocking=True`, and
//! what asyncio needs from its loop still works when the host, not
//! `run_forever`, turns it: timers, sockets Python opens itself (the
//! selector's epoll descriptor watched by tokio), `run_in_executor` (a wake
//! from another thread through the loop's self-pipe) and tasks that outlive
//! their request. Each request's coroutine is a real asyncio Task (on
//! Python 3.12+ started eagerly, scripts/python-versions.sh runs these tests
//! there too): it is the current task before and after its first suspension,
//! so anyio's cancel scopes and thread offload work.

use std::time::Duration;

use covet_e2e::Host;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const APP: &str = r#"
import asyncio, sys, threading, time
from covet import Covet

app = Covet()
LEFT_BEHIND = []

def comm():
    with open("/proc/self/task/%d/comm" % threading.get_native_id()) as f:
        return f.read().strip()

@app.get("/thread/async")
async def thread_async():
    return {"thread": comm()}

@app.get("/thread/inline")
def thread_inline():
    return {"thread": comm()}

@app.get("/thread/blocking", blocking=True)
def thread_blocking():
    return {"thread": comm()}

@app.get("/sleep")
async def sleep():
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.sleep(0.05)
    return {"slept": loop.time() - began}

@app.get("/executor")
async def executor():
    loop = asyncio.get_running_loop()
    value = await loop.run_in_executor(None, lambda: (time.sleep(0.02), "from a thread")[1])
    return {"value": value}

@app.get("/socket")
async def socket(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\n")
    await writer.drain()
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return {"echo": line.decode().strip()}

async def later(tag):
    await asyncio.sleep(0.1)
    LEFT_BEHIND.append(tag)

@app.get("/spawn")
async def spawn(tag: str):
    asyncio.get_running_loop().create_task(later(tag))
    return {"spawned": tag}

@app.get("/left")
async def left():
    return {"left": LEFT_BEHIND}

@app.get("/task")
async def task_identity():
    import anyio  # from the venv (the reload test's host has none)
    first = asyncio.current_task()
    with anyio.CancelScope():
        await asyncio.sleep(0)
        same = asyncio.current_task() is first
    doubled = await anyio.to_thread.run_sync(lambda: 21 * 2)
    return {"name": first.get_name(), "same": same, "doubled": doubled,
            "python": "%d.%d" % sys.version_info[:2]}
"#;

/// A host serving APP, with the project venv (anyio) on its path.
async fn host() -> Host {
    let manifest = format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\n\
         python: {{ venv: {} }}\n\
         plugins:\n  app: {{ kind: python, app: app.py:app }}\n\
         routes:\n  - {{ path: \"/{{*rest}}\", handler: app }}\n",
        super::uvicorn::venv().display()
    );
    let host = Host::builder(manifest).file("app.py", APP).start();
    host.wait_ready().await;
    host
}

/// Python starts only with a reload that adds the first Python plugin, after
/// the I/O workers run: worker 0 takes the loop over then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_starts_python_moves_the_loop_to_worker_zero() {
    let static_only = "listen: [{ addr: 127.0.0.1:0 }]\n\
                       plugins:\n  s: { kind: native, path: PATH, config: { body: ok } }\n\
                       routes:\n  - { path: /s, handler: s }\n"
        .replace("PATH", &covet_e2e::plugin("covet-static-response").display().to_string());
    let host = Host::builder(static_only.clone()).file("app.py", APP).start();
    host.wait_ready().await;
    assert_eq!(host.http1().get("/s").await.expect("static").text(), "ok");
    let with_python = static_only.replace(
        "routes:\n",
        "  app: { kind: python, app: app.py:app }\nroutes:\n  - { path: \"/thread/{*rest}\", handler: app }\n",
    );
    let staging = host.dir().join("next.yaml");
    std::fs::write(&staging, with_python).expect("write the manifest");
    crate::swap::replace(&staging, &host.path("plugins.yaml"));
    let reply = crate::swap::admin_post(&host, "/v1/reload", serde_json::json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The take-over happens between two turns, soon after Python starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let thread = thread_of(&host, "/thread/async").await;
        if thread == "covet-epoll-0" || thread == "covet-uring-0" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "after the reload, coroutines still run on {thread}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn thread_of(host: &Host, path: &str) -> String {
    let reply = host.http1().get(path).await.expect("a response");
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()["thread"].as_str().expect("a thread name").to_owned()
}

#[tokio::test]
async fn coroutines_and_inline_sync_endpoints_run_on_io_worker_zero() {
    let host = host().await;
    for path in ["/thread/async", "/thread/inline"] {
        // Several connections: whichever worker accepts, Python runs on worker 0.
        for _ in 0..4 {
            let thread = thread_of(&host, path).await;
            assert!(thread == "covet-epoll-0" || thread == "covet-uring-0", "{path} ran on {thread}");
        }
    }
    let pooled = thread_of(&host, "/thread/blocking").await;
    assert!(pooled.starts_with("covet-py-"), "a blocking endpoint runs on the pool, not {pooled}");
}

#[tokio::test]
async fn timers_sockets_executors_and_background_tasks_work_on_the_driven_loop() {
    let host = host().await;
    let client = host.http1();

    let slept = client.get("/sleep").await.expect("sleep").json()["slept"].as_f64().expect("seconds");
    assert!((0.05..1.0).contains(&slept), "asyncio.sleep(0.05) took {slept} s");

    let executor = client.get("/executor").await.expect("executor");
    assert_eq!(executor.json()["value"], "from a thread", "{}", executor.text());

    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = echo.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let (stream, _) = echo.accept().await.expect("accept");
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await.expect("read");
        write.write_all(format!("pong:{line}").as_bytes()).await.expect("write");
    });
    let socket = client.get(&format!("/socket?port={port}")).await.expect("socket");
    assert_eq!(socket.json()["echo"], "pong:ping", "{}", socket.text());

    assert_eq!(client.get("/spawn?tag=a").await.expect("spawn").json()["spawned"], "a");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = client.get("/left").await.expect("left").json();
        if left["left"] == serde_json::json!(["a"]) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the task that outlived its request did not finish: {left}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Eager or not, a request's coroutine runs as one Task of its plugin from
/// its first step to its end: an anyio cancel scope entered before a
/// suspension exits after it (anyio refuses a scope left in another task),
/// and anyio hands work to a thread and back.
#[tokio::test]
async fn a_request_coroutine_is_one_real_task_across_its_suspensions() {
    let host = host().await;
    for _ in 0..3 {
        let reply = host.http1().get("/task").await.expect("task");
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        let name = body["name"].as_str().expect("a task name");
        assert!(name.starts_with("covet:app:"), "the request's task is the plugin's: {name} (Python {})", body["python"]);
        assert_eq!(body["same"], true, "the task changed across a suspension (Python {})", body["python"]);
        assert_eq!(body["doubled"], 42, "{body}");
    }
}

/// Worker 0 drives the loop and serves its own connections. While the other
/// worker keeps handing it Python requests, it still lets those connections
/// run between turns: a native route reached through worker 0 answers in
/// milliseconds under a Python load that saturates the loop. Before, a job
/// queued during each turn made the next one start at once, and a request
/// to a native route on worker 0 could wait 1-3 s (p99 1.6 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_zero_serves_its_connections_while_another_worker_feeds_the_loop() {
    const BURN: &str = "import time\n\
                        from covet import Covet\n\
                        app = Covet()\n\
                        @app.get('/burn')\n\
                        async def burn():\n    \
                            end = time.perf_counter() + 0.0003\n    \
                            while time.perf_counter() < end:\n        \
                                pass\n    \
                            return {'burnt': True}\n";
    let manifest = "listen: [{ addr: 127.0.0.1:0 }]\n\
                    workers: 2\n\
                    plugins:\n  s: { kind: native, path: PATH, config: { body: ok } }\n  \
                    burn: { kind: python, app: burn.py:app }\n\
                    routes:\n  - { path: /s, handler: s }\n  - { path: /burn, handler: burn }\n"
        .replace("PATH", &covet_e2e::plugin("covet-static-response").display().to_string());
    let host = Host::builder(manifest).file("burn.py", BURN).start();
    host.wait_ready().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..16)
        .map(|_| {
            let (client, stop) = (host.http1(), stop.clone());
            tokio::spawn(async move {
                let mut burnt = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let reply = client.get("/burn").await.expect("burn");
                    assert_eq!(reply.status, 200, "{}", reply.text());
                    burnt += 1;
                }
                burnt
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fresh connection per probe: the kernel spreads them over both workers.
    let mut slowest = Duration::ZERO;
    for _ in 0..150 {
        let began = std::time::Instant::now();
        let reply = covet_e2e::Client::http1(host.addr()).get("/s").await.expect("static");
        assert_eq!(reply.text(), "ok");
        slowest = slowest.max(began.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut burnt = 0;
    for loader in loaders {
        burnt += loader.await.expect("a loader");
    }
    assert!(burnt > 100, "the Python load ran ({burnt} requests)");
    assert!(slowest < Duration::from_millis(750), "a native request waited {slowest:?} behind the Python loop");
}
