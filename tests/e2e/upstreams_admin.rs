//! The host side of upstreams: a manifest's `upstreams:` block is built into
//! the host's registry at start, its active health checks reach real hyper
//! servers, and the admin API shows every endpoint's health — as JSON
//! (`GET /v1/upstreams`), over gRPC (`ListUpstreams`) and in `/metrics`. A
//! bad block (an unknown key, a grant of an undefined upstream) stops
//! `covet check` and `covet host` with the error's file:line:column.
//! (Traffic through upstreams needs the proxy plugin: see tests/e2e/proxy.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use covet_e2e::{Client, Host, serve_http1};
use http::{Method, Response};
use http_body_util::Full;
use serde_json::Value;
use tonic::transport::Channel;

use crate::common::PATIENCE;

/// The client generated from `host/proto/covet/admin/v1/admin.proto` (tests/build.rs).
mod pb {
    tonic::include_proto!("covet.admin.v1");
}

/// A hyper server answering 200 on every path; counts its requests.
async fn healthy_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let addr = serve_http1(move |_req| {
        counted.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
    })
    .await;
    (addr, hits)
}

/// An address nothing listens on (bound, then closed).
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A manifest with no plugins and `upstreams` appended.
fn with_upstreams(upstreams: &str) -> String {
    format!("listen:\n  - addr: 127.0.0.1:0\nupstreams:\n{upstreams}")
}

async fn upstreams_json(host: &Host) -> Value {
    let reply = Client::http1(host.admin_addr()).send(Method::GET, "/v1/upstreams", &[], "").await.expect("admin answers");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// `/v1/upstreams` once `done` holds for it (panics after PATIENCE).
async fn wait_for(host: &Host, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listing = upstreams_json(host).await;
        if done(&listing) {
            return listing;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reached the expected state: {listing:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn upstream<'a>(listing: &'a Value, name: &str) -> &'a Value {
    let all = listing["upstreams"].as_array().expect("an upstreams array");
    all.iter().find(|u| u["name"] == name).unwrap_or_else(|| panic!("no upstream {name} in {listing:#}"))
}

fn healths(listing: &Value, name: &str) -> Vec<String> {
    let endpoints = upstream(listing, name)["endpoints"].as_array().cloned().unwrap_or_default();
    endpoints.iter().map(|e| e["health"].as_str().unwrap_or("?").to_owned()).collect()
}

/// The value of the sample `series` (name with its labels) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    let line = scrape.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))?;
    line[series.len()..].trim().parse().ok()
}

const CHECKS: &str = "health: { active: { path: /healthz, interval: 100ms, timeout: 1s, healthy: 1, unhealthy: 1 } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_show_their_endpoints_health_in_json_grpc_and_metrics() {
    let ((a, a_hits), (b, _)) = (healthy_server().await, healthy_server().await);
    let down = closed_port();
    let manifest = with_upstreams(&format!(
        "  users:\n    endpoints: [\"{a}\", {{ addr: \"{b}\", weight: 3 }}]\n    balance: least_request\n    {CHECKS}\n  \
         down:\n    endpoints: [\"{down}\"]\n    {CHECKS}\n"
    ));
    let host = Host::start(manifest).await;

    let listing = wait_for(&host, |l| {
        healths(l, "users") == ["healthy", "healthy"] && healths(l, "down") == ["unhealthy"]
            && upstream(l, "users")["endpoints"].as_array().is_some_and(|e| e.iter().all(|e| e["active_check_passing"] == true))
    })
    .await;
    let names: Vec<&str> = listing["upstreams"].as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!(names, ["down", "users"], "sorted by name");
    let users = upstream(&listing, "users");
    assert_eq!(users["policy"], "least_request");
    let endpoints = users["endpoints"].as_array().unwrap();
    let by_address: Vec<(String, u64)> =
        endpoints.iter().map(|e| (e["address"].as_str().unwrap().to_owned(), e["weight"].as_u64().unwrap())).collect();
    assert!(by_address.contains(&(a.to_string(), 1)) && by_address.contains(&(b.to_string(), 3)), "{by_address:?}");
    assert_eq!(upstream(&listing, "down")["endpoints"][0]["active_check_passing"], false);
    assert!(a_hits.load(Ordering::Relaxed) >= 1, "the active checks reached the real server");

    let channel = Channel::from_shared(format!("http://{}", host.admin_addr())).unwrap().connect().await.expect("gRPC connects");
    let mut admin = pb::admin_client::AdminClient::new(channel);
    let grpc = admin.list_upstreams(pb::ListUpstreamsRequest {}).await.expect("ListUpstreams").into_inner();
    let users = grpc.upstreams.iter().find(|u| u.name == "users").expect("users over gRPC");
    assert_eq!(users.policy, "least_request");
    let mut addresses: Vec<&str> = users.endpoints.iter().map(|e| e.address.as_str()).collect();
    addresses.sort();
    let mut expected = [a.to_string(), b.to_string()];
    expected.sort();
    assert_eq!(addresses, expected);
    let down_grpc = grpc.upstreams.iter().find(|u| u.name == "down").expect("down over gRPC");
    assert_eq!(down_grpc.endpoints[0].health, "unhealthy");
    assert_eq!(down_grpc.endpoints[0].active_check_passing, Some(false));

    let scrape = Client::http1(host.admin_addr()).get("/metrics").await.expect("metrics").text();
    let labels = |u: &str, e: SocketAddr| format!("{{upstream=\"{u}\",endpoint=\"{e}\"}}");
    assert_eq!(sample(&scrape, &format!("covet_upstream_endpoint_healthy{}", labels("users", a))), Some(1.0), "{scrape}");
    assert_eq!(sample(&scrape, &format!("covet_upstream_endpoint_healthy{}", labels("down", down))), Some(0.0), "{scrape}");
    for family in ["covet_upstream_requests_total", "covet_upstream_errors_total", "covet_upstream_ejections_total", "covet_upstream_latency_seconds_count"] {
        assert_eq!(sample(&scrape, &format!("{family}{}", labels("users", b))), Some(0.0), "{family} in {scrape}");
    }
    assert!(scrape.contains("# TYPE covet_upstream_latency_seconds histogram"), "{scrape}");
    for family in ["covet_upstream_in_flight", "covet_upstream_pending", "covet_upstream_retries_total", "covet_upstream_overloaded_total", "covet_upstream_retry_budget_exhausted_total"] {
        assert_eq!(sample(&scrape, &format!("{family}{{upstream=\"users\"}}")), Some(0.0), "{family} in {scrape}");
    }

    let table = cli_upstreams(&host).await;
    let row = |addr: SocketAddr| table.lines().find(|l| l.contains(&addr.to_string())).unwrap_or_else(|| panic!("no row for {addr}:\n{table}")).to_owned();
    assert!(table.starts_with("UPSTREAM"), "{table}");
    let b_row: Vec<String> = row(b).split_whitespace().map(str::to_owned).collect();
    assert_eq!(b_row[..5], ["users".to_owned(), b.to_string(), "127.0.0.1".to_owned(), "3".to_owned(), "healthy".to_owned()], "{table}");
    assert!(row(down).split_whitespace().any(|cell| cell == "unhealthy"), "{table}");
}

/// `covet upstreams --admin ADDR`: its stdout (it must succeed).
async fn cli_upstreams(host: &Host) -> String {
    let admin = host.admin_addr().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(covet_e2e::covet_bin()).args(["upstreams", "--admin", &admin]).env_remove("COVET_ADMIN_TOKEN").output()
    })
    .await
    .expect("join")
    .expect("run covet upstreams");
    assert!(output.status.success(), "covet upstreams: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_reload_adds_and_removes_upstreams() {
    let (a, _) = healthy_server().await;
    let host = Host::start(with_upstreams(&format!("  users:\n    endpoints: [\"{a}\"]\n"))).await;
    let listing = upstreams_json(&host).await;
    assert_eq!(healths(&listing, "users"), ["healthy"], "no checks: healthy until traffic says otherwise");

    let changed = with_upstreams(&format!("  orders:\n    endpoints: [\"{a}\"]\n    balance: {{ policy: maglev, key: client_ip }}\n"));
    std::fs::write(host.path("plugins.yaml"), changed).expect("rewrite the manifest");
    let reply = Client::http1(host.admin_addr()).send(Method::POST, "/v1/reload", &[], "").await.expect("reload");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let listing = upstreams_json(&host).await;
    let names: Vec<&str> = listing["upstreams"].as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!(names, ["orders"]);
    assert_eq!(upstream(&listing, "orders")["policy"], "maglev");
}

/// `covet check` and `covet host` on `manifest`: both exit 2 with `needles` in stderr.
fn refused(manifest: &str, needles: &[&str]) {
    let checked = Host::builder(manifest).check(PATIENCE);
    assert_eq!(checked.status.code(), Some(2), "covet check: {}", checked.stderr);
    let started = Host::builder(manifest).run_to_exit(PATIENCE);
    assert_eq!(started.status.code(), Some(2), "covet host: {}", started.stderr);
    for needle in needles {
        assert!(checked.stderr.contains(needle), "covet check lacks {needle:?}:\n{}", checked.stderr);
        assert!(started.stderr.contains(needle), "covet host lacks {needle:?}:\n{}", started.stderr);
    }
}

#[test]
fn an_unknown_key_in_an_upstream_is_refused_at_its_position() {
    let manifest = with_upstreams("  users:\n    endpoints: [\"127.0.0.1:9001\"]\n    retry: { attempts: 3 }\n");
    // listen (2 lines), `upstreams:`, users, endpoints: `retry` is on line 6.
    refused(&manifest, &["unknown key \"retry\"", "plugins.yaml:6:5", "did you mean \"retries\"?", "upstreams.users.retry"]);
}

#[test]
fn a_grant_of_an_undefined_upstream_is_refused_with_the_defined_ones() {
    let path = serde_json::Value::String(covet_e2e::plugin("covet-test-plugin").display().to_string());
    let manifest = format!(
        "listen:\n  - addr: 127.0.0.1:0\nupstreams:\n  users:\n    endpoints: [\"127.0.0.1:9001\"]\nplugins:\n  api:\n    \
         kind: native\n    path: {path}\n    capabilities: {{ upstreams: [orders] }}\nroutes:\n  - path: /\n    handler: api\n"
    );
    refused(&manifest, &["unknown upstream \"orders\"", "plugins.yaml:10:33", "the upstreams defined are \"users\""]);
}
