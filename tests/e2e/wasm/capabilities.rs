//! Capabilities are denied by default: without a grant the probe cannot
//! read a file, read an environment variable, make an outbound request or
//! write to the host log; with the grant in the manifest it can, and only
//! what was granted (read-only stays read-only, other hosts stay denied).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use covet_e2e::Host;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Gateway;

/// What the probe reported: `Ok(value)` or `Err(error)`.
async fn probe(host: &Host, path: &str) -> Result<Value, String> {
    let reply = host.http1().get(path).await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json();
    match report["ok"].as_bool() {
        Some(true) => Ok(report["value"].clone()),
        _ => Err(report["error"].as_str().unwrap_or_default().to_string()),
    }
}

/// One route per case: `/NAME` runs the probe with `config` and `capabilities`.
fn probes(cases: &[(&str, Value, Value)]) -> Gateway {
    cases.iter().fold(Gateway::new(), |gateway, (name, config, capabilities)| {
        gateway
            .wasm_with(name, "covet_wasm_probe", config.clone(), json!({ "capabilities": capabilities }))
            .route(&format!("/{name}"), &[], name)
    })
}

#[tokio::test]
async fn files_are_reachable_only_in_granted_directories_and_read_only_stays_read_only() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("a.txt"), "granted content").unwrap();
    let dir = data.path().display().to_string();
    let read = json!({ "probe": "read-file", "path": "/data/a.txt" });
    let write = json!({ "probe": "write-file", "path": "/data/new.txt" });
    let ro = json!({ "dirs": [{ "host": dir, "guest": "/data" }] });
    let rw = json!({ "dirs": [{ "host": dir, "guest": "/data", "mode": "rw" }] });
    let host = probes(&[
        ("denied", read.clone(), json!({})),
        ("granted", read, ro.clone()),
        ("ro-write", write.clone(), ro),
        ("rw-write", write, rw),
    ])
    .start()
    .await;

    let denied = probe(&host, "/denied").await.expect_err("no preopen, no file");
    assert!(!denied.is_empty());
    assert_eq!(probe(&host, "/granted").await, Ok(json!("granted content")));
    assert!(probe(&host, "/ro-write").await.is_err(), "a read-only grant refuses writes");
    assert!(!data.path().join("new.txt").exists());
    assert_eq!(probe(&host, "/rw-write").await, Ok(Value::Null));
    assert_eq!(std::fs::read_to_string(data.path().join("new.txt")).unwrap(), "written by the probe");
}

#[tokio::test]
async fn environment_variables_are_visible_only_by_name() {
    let read = json!({ "probe": "env", "var": "COVET_PROBE_SECRET" });
    let manifest = probes(&[
        ("denied", read.clone(), json!({})),
        ("other", read.clone(), json!({ "env": ["HOME"] })),
        ("granted", read, json!({ "env": ["COVET_PROBE_SECRET"] })),
    ]);
    let host = Host::builder(manifest).env("COVET_PROBE_SECRET", "s3cret").start();
    host.wait_ready().await;
    assert!(probe(&host, "/denied").await.is_err(), "set on the host, but not granted");
    assert!(probe(&host, "/other").await.is_err(), "granting another name does not grant this one");
    assert_eq!(probe(&host, "/granted").await, Ok(json!("s3cret")));
}

/// A tiny HTTP server on 127.0.0.1:0 answering `pong`; counts connections.
async fn pong_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong";
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_reaches_only_listed_hosts() {
    let (addr, hits) = pong_server().await;
    let fetch = json!({ "probe": "fetch", "url": format!("http://{addr}/ping") });
    let host = probes(&[
        ("denied", fetch.clone(), json!({})),
        ("other", fetch.clone(), json!({ "outbound_http": ["example.com", "127.0.0.1:1"] })),
        ("granted", fetch.clone(), json!({ "outbound_http": [addr] })),
        ("any-port", fetch, json!({ "outbound_http": ["127.0.0.1"] })),
    ])
    .start()
    .await;

    for case in ["/denied", "/other"] {
        let error = probe(&host, case).await.expect_err("not listed");
        assert!(error.contains("HttpRequestDenied"), "{case}: {error}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a denied request never left the host");
    assert_eq!(probe(&host, "/granted").await, Ok(json!("200 pong")));
    assert_eq!(probe(&host, "/any-port").await, Ok(json!("200 pong")), "a bare host allows any port");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn stdout_and_stderr_reach_the_host_log_only_when_granted() {
    let print = json!({ "probe": "print" });
    let host = probes(&[("quiet", print.clone(), json!({})), ("loud", print, json!({ "stdio": true }))]).start().await;
    assert_eq!(probe(&host, "/quiet").await, Ok(Value::Null));
    assert_eq!(probe(&host, "/loud").await, Ok(Value::Null));
    let stdout = host.log_line(&["covet::plugin", "loud", "probe says hello on stdout"]).await;
    assert!(stdout.is_some_and(|l| l.contains("INFO")), "logs:\n{}", host.logs());
    let stderr = host.log_line(&["covet::plugin", "loud", "probe says hello on stderr"]).await;
    assert!(stderr.is_some_and(|l| l.contains("WARN")), "logs:\n{}", host.logs());
    let printed = host.logs().matches("probe says hello on stdout").count();
    assert_eq!(printed, 1, "an ungranted plugin's output is dropped:\n{}", host.logs());
}
