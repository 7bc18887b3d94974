//! Cache purges through the admin API: `POST /v1/cache/purge`, gRPC
//! `PurgeCache` and `covet cache purge` all write the ban into the purge log
//! of the host's shared state (`purge.seq` incremented, the ban appended to
//! `purge.log`), answer 202 with `{seq, namespace, kind, value, backend}`,
//! and refuse a request that names none or several of key/prefix/tag, a
//! prefix not starting with `/`, or a bad namespace (400, INVALID_ARGUMENT,
//! exit 1). With Redis the log is read back from the server itself. And
//! what a cache reports (the metadata `cache.status`) shows in `/metrics`
//! (`covet_cache_requests_total{route,status}`) and the access log (`cache=`).

use std::process::Output;

use covet_e2e::{Client, Host, Manifest, RedisServer, Route, covet_bin};
use http::Method;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// The client generated from `host/proto/covet/admin/v1/admin.proto` (tests/build.rs).
mod pb {
    tonic::include_proto!("covet.admin.v1");
}

/// A host with no routes, and `services` appended when given.
async fn host(services: Option<&str>) -> Host {
    let mut manifest = String::from("listen:\n  - addr: 127.0.0.1:0\n");
    if let Some(services) = services {
        manifest.push_str(services);
    }
    Host::start(manifest).await
}

async fn purge_http(host: &Host, body: Value) -> (u16, Value) {
    let client = Client::http1(host.admin_addr());
    let reply = client
        .send(Method::POST, "/v1/cache/purge", &[("content-type", "application/json")], body.to_string())
        .await
        .expect("the admin API answers");
    (reply.status.as_u16(), serde_json::from_slice(&reply.body).unwrap_or_else(|_| json!({ "raw": reply.text() })))
}

async fn grpc(host: &Host) -> pb::admin_client::AdminClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", host.admin_addr())).unwrap().connect().await.expect("gRPC connects");
    pb::admin_client::AdminClient::new(channel)
}

/// `covet cache purge ARGS --admin ADDR`.
async fn cli(host: &Host, args: &[&str]) -> Output {
    let mut all: Vec<String> = vec!["cache".into(), "purge".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["--admin".into(), host.admin_addr().to_string()]);
    tokio::task::spawn_blocking(move || std::process::Command::new(covet_bin()).args(&all).env_remove("COVET_ADMIN_TOKEN").output())
        .await
        .expect("join")
        .expect("run covet cache purge")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "covet cache purge failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One purge of each kind through the three doors; returns their answers' seqs.
async fn purge_three_ways(host: &Host, backend: &str) {
    let (status, body) = purge_http(host, json!({ "tag": "product-7" })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({ "seq": 1, "namespace": "cache", "kind": "tag", "value": "product-7", "backend": backend }));

    let request = pb::PurgeCacheRequest { prefix: Some("/static/".into()), host: Some("Shop.Example:8443".into()), ..Default::default() };
    let answer = grpc(host).await.purge_cache(request).await.expect("PurgeCache").into_inner();
    let got = (answer.seq, answer.namespace.as_str(), answer.kind.as_str(), answer.value.as_str(), answer.backend.as_str());
    assert_eq!(got, (2, "cache", "prefix", "/static/", backend));

    let printed = stdout(&cli(host, &["--key", "shop.example/products/7?color=red"]).await);
    assert_eq!(printed, format!("purged key \"shop.example/products/7?color=red\": seq 3 in namespace cache ({backend})"));
    let json = stdout(&cli(host, &["--tag", "sale", "--namespace", "edge", "--json"]).await);
    let json: Value = serde_json::from_str(&json).expect("--json prints the API's answer");
    assert_eq!((&json["seq"], &json["namespace"]), (&json!(1), &json!("edge")), "a namespace has its own sequence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_through_http_grpc_and_the_cli_number_their_bans_in_the_memory_state() {
    let host = host(None).await;
    purge_three_ways(&host, "memory").await;
    let (status, body) = purge_http(&host, json!({ "tag": "product-7" })).await;
    assert_eq!((status, &body["seq"]), (202, &json!(4)), "purge.seq keeps counting: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_land_in_the_redis_purge_log_in_order() {
    let redis = RedisServer::start();
    let services = format!("services:\n  state: {{ backend: redis, url: \"{}\", timeout: 1s }}\n", redis.url());
    let host = host(Some(&services)).await;
    purge_three_ways(&host, "redis").await;

    assert_eq!(redis.get("covet:cache:purge.seq"), "3");
    let log: Vec<Value> = serde_json::from_str(&redis.get("covet:cache:purge.log")).expect("purge.log is a JSON array");
    let bans: Vec<(u64, &str, &str, Option<&str>)> = log
        .iter()
        .map(|b| (b["seq"].as_u64().unwrap(), b["kind"].as_str().unwrap(), b["value"].as_str().unwrap(), b["host"].as_str()))
        .collect();
    assert_eq!(
        bans,
        [
            (1, "tag", "product-7", None),
            (2, "prefix", "/static/", Some("shop.example")),
            (3, "key", "shop.example/products/7?color=red", None),
        ],
        "oldest first; a prefix's host lower case without its port"
    );
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for ban in &log {
        let at = ban["at_ms"].as_u64().expect("at_ms");
        assert!(at <= now_ms && now_ms - at < 600_000, "at_ms is when it was made: {ban}");
    }
    let edge: Vec<Value> = serde_json::from_str(&redis.get("covet:edge:purge.log")).expect("the edge namespace's log");
    assert_eq!((edge.len(), &edge[0]["value"]), (1, &json!("sale")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_naming_none_or_several_or_a_bad_prefix_or_namespace_is_refused() {
    let host = host(None).await;
    let cases = [
        (json!({}), "exactly one of `key`, `prefix` or `tag` (given: none)"),
        (json!({ "key": "a.example/x", "tag": "t" }), "(given: key, tag)"),
        (json!({ "prefix": "static/" }), "starts with `/`"),
        (json!({ "tag": "t", "namespace": "no spaces" }), "invalid namespace \"no spaces\""),
        (json!({ "tag": "t", "host": "a.example" }), "`host` goes with `prefix` only"),
        (json!({ "tags": "t" }), "unknown field `tags`"),
    ];
    for (body, needle) in cases {
        let (status, answer) = purge_http(&host, body.clone()).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!("bad_request")), "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message:?} lacks {needle:?}");
    }

    let refused = grpc(&host).await.purge_cache(pb::PurgeCacheRequest::default()).await.expect_err("nothing named");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("exactly one of"), "{}", refused.message());

    let bad_prefix = cli(&host, &["--prefix", "static/"]).await;
    assert_eq!(bad_prefix.status.code(), Some(1), "the host refused: exit 1");
    assert!(String::from_utf8_lossy(&bad_prefix.stderr).contains("starts with `/`"), "{bad_prefix:?}");
    let nothing = cli(&host, &[]).await;
    assert_eq!(nothing.status.code(), Some(2), "a usage error: exit 2; {nothing:?}");

    let (status, body) = purge_http(&host, json!({ "tag": "ok" })).await;
    assert_eq!((status, &body["seq"]), (202, &json!(1)), "nothing refused was counted: {body}");
}

#[tokio::test]
async fn cache_status_metadata_is_counted_by_route_and_logged() {
    // A filter standing in for the cache: it sets `cache.status` as the cache plugin does.
    let manifest = Manifest::new()
        .access_log(true)
        .plugin("hit", "covet-test-plugin", json!({ "label": "hit", "metadata": { "cache.status": "hit" } }))
        .plugin("echo", "covet-test-plugin", json!({ "label": "echo" }))
        .route(Route::new("/cached/{id}").filters(["hit"]).handler("echo"))
        .route(Route::new("/plain").handler("echo"));
    let host = Host::start(manifest).await;
    for (path, id) in [("/cached/1", "c-1"), ("/cached/2", "c-2"), ("/plain", "p-1")] {
        let reply = host.http1().send(Method::GET, path, &[("x-request-id", id)], "").await.expect("an answer");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let line = host.log_line(&["covet::access", "request_id=\"c-2\""]).await.expect("an access line");
    assert!(line.ends_with(" cache=\"hit\""), "{line}");
    let plain = host.log_line(&["covet::access", "request_id=\"p-1\""]).await.expect("an access line");
    assert!(!plain.contains("cache="), "no cache.status, no field: {plain}");

    let scrape = Client::http1(host.admin_addr()).get("/metrics").await.expect("metrics").text();
    let series: Vec<&str> = scrape.lines().filter(|l| l.starts_with("covet_cache_requests_total")).collect();
    assert_eq!(series, ["covet_cache_requests_total{route=\"/cached/{id}\",status=\"hit\"} 2"], "{scrape}");
}
