//! Host services from a WASM plugin (fixture `covet_wasm_services`):
//! outbound HTTP through the host's pooled client (one connection reused by
//! requests from fresh instances; a denied host fails clearly), shared state
//! through `covet:plugin/state@0.2.0` (a counter visible across fresh
//! instances, in process and on a real redis-server; an ungranted namespace
//! is an error naming it), and a `wasi:clocks` sleep that holds no thread.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use covet_e2e::Host;
use http_body_util::{BodyExt, Full};
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::Gateway;

/// A keep-alive HTTP/1.1 server on 127.0.0.1:0: `pong` to a GET, `got N
/// bytes` to a request with a body. Returns its address and how many
/// connections it accepted.
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let body = req.into_body().collect().await?.to_bytes();
                let reply = if body.is_empty() { "pong".to_owned() } else { format!("got {} bytes", body.len()) };
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(reply))))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(socket), service));
        }
    });
    (addr, accepted)
}

/// A gateway with plugin `name` granted `capabilities`, its operations
/// routed at `/{name}/{op}`.
fn with_plugin(gateway: Gateway, name: &str, capabilities: Value) -> Gateway {
    let keys = json!({ "capabilities": capabilities, "limits": { "timeout": "120s" } });
    let mut gateway = gateway.wasm_with(name, "covet_wasm_services", Value::Null, keys);
    for op in ["fetch", "incr", "get", "set", "cas", "delete", "sleep"] {
        gateway = gateway.route(&format!("/{name}/{op}"), &[], name);
    }
    gateway
}

/// The manifest of `gateway` with a `services:` block.
fn manifest(gateway: &Gateway, services: Value) -> String {
    let mut manifest: Value = serde_json::from_str(&gateway.yaml()).unwrap();
    manifest["services"] = services;
    manifest.to_string()
}

/// GET `path`: the fixture's `{"ok", "value"}` or `{"ok": false, "kind", "error"}`.
async fn call(host: &Host, path: &str) -> Value {
    let reply = host.http1().get(path).await.unwrap_or_else(|e| panic!("{path}: {e}\nlogs:\n{}", host.logs()));
    assert_eq!(reply.status, 200, "{path}: {}\nlogs:\n{}", reply.text(), host.logs());
    reply.json()
}

fn ok(reply: &Value) -> &Value {
    assert_eq!(reply["ok"], true, "{reply}");
    &reply["value"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_share_the_host_pool_and_denied_hosts_fail_clearly() {
    let (addr, accepted) = counting_server().await;
    let gateway = with_plugin(Gateway::new(), "granted", json!({ "outbound_http": [addr] }));
    let host = with_plugin(gateway, "closed", json!({ "outbound_http": ["example.com"] })).start().await;

    let fetch = format!("fetch?url=http://{addr}/ping");
    for _ in 0..3 {
        assert_eq!(ok(&call(&host, &format!("/granted/{fetch}")).await), &json!({ "status": 200, "body": "pong" }));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "three fresh instances, one pooled connection");

    // The request body streams out through the same pooled connection.
    let body = vec![b'x'; 100_000];
    let reply = host.http1().send(http::Method::POST, &format!("/granted/{fetch}"), &[], body).await.unwrap();
    assert_eq!(ok(&reply.json()), &json!({ "status": 200, "body": "got 100000 bytes" }));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    let denied = call(&host, &format!("/closed/{fetch}")).await;
    assert_eq!(denied["ok"], false);
    assert!(denied["error"].as_str().unwrap().contains("HttpRequestDenied"), "{denied}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "a denied request never left the host");
    let why = host.log_line(&["plugin 'closed' may not use outbound HTTP to host", "outbound_http"]).await;
    assert!(why.is_some(), "the host says why, naming the manifest key; logs:\n{}", host.logs());
}

#[tokio::test]
async fn shared_state_in_process_is_seen_by_every_fresh_instance() {
    let gateway = with_plugin(Gateway::new(), "a", json!({ "state": ["counters"] }));
    let host = with_plugin(gateway, "b", json!({ "state": ["counters"] })).start().await;

    for n in 1..=3 {
        assert_eq!(ok(&call(&host, "/a/incr?ns=counters&key=hits").await), &json!(n));
    }
    assert_eq!(ok(&call(&host, "/b/incr?ns=counters&key=hits").await), &json!(4), "another plugin granted the namespace");
    assert_eq!(ok(&call(&host, "/a/get?ns=counters&key=hits").await), &json!("4"));
    assert_eq!(ok(&call(&host, "/a/cas?ns=counters&key=hits&expected=3&value=9").await), &json!(false));
    assert_eq!(ok(&call(&host, "/a/cas?ns=counters&key=hits&expected=4&value=9").await), &json!(true));
    assert_eq!(ok(&call(&host, "/b/get?ns=counters&key=hits").await), &json!("9"));
    assert_eq!(ok(&call(&host, "/a/delete?ns=counters&key=hits").await), &json!(true));
    assert_eq!(ok(&call(&host, "/a/get?ns=counters&key=hits").await), &Value::Null);

    let denied = call(&host, "/a/incr?ns=secrets&key=x").await;
    assert_eq!((&denied["ok"], &denied["kind"]), (&json!(false), &json!("denied")), "{denied}");
    let message = denied["error"].as_str().unwrap();
    assert!(message.contains("'secrets'") && message.contains("capabilities: { state"), "{message}");
}

#[tokio::test]
async fn shared_state_on_redis_and_ungranted_namespaces() {
    let redis = covet_e2e::RedisServer::start();
    let gateway = with_plugin(Gateway::new(), "a", json!({ "state": ["counters"] }));
    let url = redis.url();
    let state = json!({ "backend": "redis", "url": url, "timeout": "2s", "prefix": "e2e:" });
    let host = Host::start(manifest(&gateway, json!({ "state": state }))).await;

    assert_eq!(ok(&call(&host, "/a/incr?ns=counters&key=hits").await), &json!(1));
    assert_eq!(ok(&call(&host, "/a/incr?ns=counters&key=hits").await), &json!(2));
    assert_eq!(redis.get("e2e:counters:hits"), "2", "the counter lives in Redis");
    assert_eq!(ok(&call(&host, "/a/set?ns=counters&key=greeting&value=hello&ttl_ms=60000").await), &Value::Null);
    assert_eq!(ok(&call(&host, "/a/get?ns=counters&key=greeting").await), &json!("hello"));

    let denied = call(&host, "/a/get?ns=other&key=hits").await;
    assert_eq!((&denied["ok"], &denied["kind"]), (&json!(false), &json!("denied")), "{denied}");
    assert!(denied["error"].as_str().unwrap().contains("'other'"), "{denied}");

    drop(redis);
    let down = call(&host, "/a/incr?ns=counters&key=hits").await;
    assert_eq!(down["ok"], false, "Redis gone: an error value, not a fault");
    assert!(["unavailable", "timeout"].contains(&down["kind"].as_str().unwrap()), "{down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasi_sleep_holds_no_host_thread() {
    let gateway = with_plugin(Gateway::new(), "a", json!({ "state": ["counters"] }));
    // One worker thread: a sleep that blocked it would stall every other request.
    let host = Host::builder(gateway.yaml()).env("TOKIO_WORKER_THREADS", "1").start();
    host.wait_ready().await;
    let client = host.http1();
    let sleeper = tokio::spawn(async move { client.get("/a/sleep?ms=100000&ns=counters&key=sleepers").await });
    // The sleeper counts itself in before it sleeps.
    let mut asleep = false;
    for _ in 0..1000 {
        asleep = ok(&call(&host, "/a/get?ns=counters&key=sleepers").await) == &json!("1");
        if asleep {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(asleep, "the sleeping request never reached the plugin; logs:\n{}", host.logs());
    for n in 1..=3 {
        assert_eq!(ok(&call(&host, "/a/incr?ns=counters&key=while-asleep").await), &json!(n));
    }
    assert!(!sleeper.is_finished(), "the sleeping request is still in flight");
    sleeper.abort();
}
