//! Faults of Python plugins: an exception costs one request a structured
//! 500 (traceback in the host log, never in the body); a stuck handler, sync
//! or async, gets a 504 at its `limits.timeout`; a saturated pool answers
//! 503 PLUGIN_OVERLOADED with `Retry-After`. Throughout, a native route on
//! the same host keeps answering.

use covet_e2e::{Host, plugin};

use crate::common::assert_problem;

/// A decorator app with a failing, two stuck and a slow endpoint.
const APP: &str = r#"
import asyncio, time
from covet import Covet

app = Covet()

@app.get("/py/boom")
def boom():
    raise RuntimeError("secret-detail-xyz")

@app.get("/py/async-boom")
async def async_boom():
    await asyncio.sleep(0)
    raise KeyError("async-secret-abc")

@app.get("/py/spin", blocking=True)
def spin():
    while True:
        pass

@app.get("/py/sleep")
async def sleep():
    await asyncio.sleep(3600)

@app.get("/py/slow", blocking=True)
def slow():
    time.sleep(1.5)
    return {"slow": "done"}

@app.get("/py/ok")
def ok():
    return {"ok": True}
"#;

fn manifest(python: &str, timeout: &str) -> String {
    let native = plugin("covet-static-response");
    format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\n\
         log: {{ access: false }}\n\
         python: {python}\n\
         plugins:\n\
         \x20 native:\n    kind: native\n    path: {}\n    config: {{ body: native-ok }}\n\
         \x20 py:\n    kind: python\n    app: app.py:app\n    limits: {{ timeout: {timeout} }}\n\
         routes:\n\
         \x20 - path: /native\n    handler: native\n\
         \x20 - path: /py/{{*rest}}\n    handler: py\n",
        native.display()
    )
}

async fn host(python: &str, timeout: &str) -> Host {
    let host = Host::builder(manifest(python, timeout)).file("app.py", APP).start();
    host.wait_ready().await;
    host
}

async fn native_answers(host: &Host) {
    let reply = host.http1().get("/native").await.unwrap();
    assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "native-ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_is_a_500_with_the_traceback_only_in_the_log() {
    let host = host("{ threads: 2 }", "10s").await;
    for (path, secret) in [("/py/boom", "secret-detail-xyz"), ("/py/async-boom", "async-secret-abc")] {
        let reply = host.http1().get(path).await.unwrap();
        let error = assert_problem(&reply, 500, "PLUGIN_ERROR");
        assert_eq!(error["details"]["plugin"], "py");
        assert!(!reply.text().contains(secret), "no exception text in the body: {}", reply.text());
        assert!(!reply.text().contains("Traceback"), "{}", reply.text());
        let logged = host.log_line(&[secret]).await;
        assert!(logged.is_some(), "the exception is logged; logs:\n{}", host.logs());
        assert!(host.logs().contains("Traceback (most recent call last)"), "with its traceback");
    }
    let reply = host.http1().get("/py/ok").await.unwrap();
    assert_eq!(reply.status, 200, "the next request is served");
    native_answers(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_handlers_time_out_with_504_while_native_routes_answer() {
    let host = host("{ threads: 2 }", "700ms").await;
    let client = host.http1();
    let (spin, sleep) = tokio::join!(client.get("/py/spin"), client.get("/py/sleep"));
    let spin = spin.unwrap();
    let error = assert_problem(&spin, 504, "PLUGIN_TIMEOUT");
    assert_eq!(error["details"]["plugin"], "py");
    assert_problem(&sleep.unwrap(), 504, "PLUGIN_TIMEOUT");
    native_answers(&host).await;
    // The async task was cancelled; the event loop serves the next request.
    assert_problem(&client.get("/py/sleep").await.unwrap(), 504, "PLUGIN_TIMEOUT");
    // One pool thread stays busy spinning; the other still serves sync code.
    let reply = client.get("/py/ok").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    native_answers(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_answers_503_and_native_routes_keep_answering() {
    let host = host("{ threads: 1, queue: 1 }", "30s").await;
    let client = host.http1();
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/py/slow").await.unwrap() })
        })
        .collect();
    // While the pool is saturated, the native route answers.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    native_answers(&host).await;
    let mut replies = Vec::new();
    for task in slow {
        replies.push(task.await.unwrap());
    }
    let served = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(served >= 1, "the running and the queued request are served");
    assert!(served <= 2, "one thread and one queue slot serve at most two at once: {served}");
    assert_eq!(served + refused.len(), replies.len(), "only 200s and 503s");
    for reply in refused {
        let error = assert_problem(reply, 503, "PLUGIN_OVERLOADED");
        assert_eq!(error["details"]["plugin"], "py");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    let reply = client.get("/py/ok").await.unwrap();
    assert_eq!(reply.status, 200, "served again once the pool drained");
}
