//! WASM and native plugins in one chain: the pipeline cannot tell them
//! apart, metadata and header edits flow across kinds in both directions,
//! and a WASM plugin's memory does not survive from one request to the next
//! unless the manifest asks for reused instances.

use covet_e2e::Reply;
use http::Method;
use serde_json::{Value, json};

use super::Gateway;
use crate::common::assert_problem;

/// native tag → WASM A/B tagger → WASM probe echoing what it saw.
fn mixed_chain() -> Gateway {
    Gateway::new()
        .native("native", "covet-test-plugin", json!({ "label": "n", "metadata": { "jwt.sub": "alice" } }))
        .wasm("ab", "ab_tagger", json!({ "variants": { "a": 1, "b": 1 } }))
        .wasm("echo", "covet_wasm_probe", json!({ "metadata_keys": ["ab.variant", "test.seen", "jwt.sub"] }))
        .route("/mixed", &["native", "ab"], "echo")
}

fn variant_of(reply: &Reply) -> String {
    let echoed = reply.json();
    let variant = echoed["metadata"]["ab.variant"].as_str().expect("the handler saw ab.variant").to_string();
    assert_eq!(echoed["headers"]["x-ab-variant"], variant, "the handler saw the filter's header: {echoed}");
    variant
}

#[tokio::test]
async fn native_filter_then_wasm_filter_then_wasm_handler_share_one_request() {
    let host = mixed_chain().start().await;
    let reply = host.http1().get("/mixed").await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echoed = reply.json();
    assert_eq!(echoed["metadata"]["test.seen"], "n", "the WASM handler read the native filter's metadata: {echoed}");
    assert_eq!(echoed["metadata"]["jwt.sub"], "alice");
    let variant = variant_of(&reply);
    assert!(["a", "b"].contains(&variant.as_str()), "{variant}");

    assert_eq!(reply.header("x-ab-variant"), Some(variant.as_str()), "the WASM filter's on-response ran");
    let cookie = reply.header("set-cookie").expect("a new visitor gets the cookie");
    assert!(cookie.starts_with(&format!("ab={variant};")), "{cookie}");
    assert_eq!(reply.header("x-test-label"), Some("n"), "the native filter's on_response ran after the WASM one");
}

#[tokio::test]
async fn a_returning_visitor_keeps_the_variant_of_the_cookie() {
    let host = mixed_chain().start().await;
    for variant in ["a", "b"] {
        let cookie = format!("theme=dark; ab={variant}");
        let reply = host.http1().send(Method::GET, "/mixed", &[("cookie", &cookie)], "").await.expect("response");
        assert_eq!(variant_of(&reply), variant);
        assert_eq!(reply.header("set-cookie"), None, "no new cookie for a known variant");
    }
}

#[tokio::test]
async fn a_wasm_filter_feeds_a_native_handler() {
    let host = Gateway::new()
        .wasm("ab", "ab_tagger", json!(null))
        .native("echo", "covet-test-plugin", json!({ "label": "native-echo" }))
        .route("/native", &["ab"], "echo")
        .start()
        .await;
    let reply = host.http2().get("/native").await.expect("response over h2c");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echoed = reply.json();
    let variant = echoed["headers"]["x-ab-variant"].as_str().expect("the native handler saw the WASM filter's header");
    assert_eq!(reply.header("x-ab-variant"), Some(variant));
    assert_eq!(echoed["label"], "native-echo");
}

#[tokio::test]
async fn json_transform_reshapes_the_body_with_metadata_from_a_filter() {
    let config = json!({
        "rename": { "userName": "user" },
        "drop": ["password"],
        "set": { "variant": "{ab.variant}", "missing": "{no.such.key}" },
        "wrap": "data",
    });
    let host = Gateway::new()
        .wasm("ab", "ab_tagger", json!(null))
        .wasm("reshape", "json_transform", config)
        .route("/users", &["ab"], "reshape")
        .start()
        .await;
    let client = host.http1();
    let body = json!({ "userName": "ada", "password": "hunter2", "age": 36 }).to_string();
    let cookie = [("cookie", "ab=b"), ("content-type", "application/json")];
    let reply = client.send(Method::POST, "/users", &cookie, body).await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({ "data": { "user": "ada", "age": 36, "variant": "b" } }));

    let bad = client.send(Method::POST, "/users", &[], "not json").await.expect("response");
    let error = assert_problem(&bad, 400, "BAD_REQUEST");
    assert_eq!(error["details"]["expected"], "a JSON object");
}

#[tokio::test]
async fn instances_are_fresh_per_call_unless_the_manifest_opts_into_reuse() {
    let host = Gateway::new()
        .wasm("fresh", "covet_wasm_probe", json!({ "probe": "count" }))
        .wasm_with("kept", "covet_wasm_probe", json!({ "probe": "count" }), json!({ "instances": "reused" }))
        .route("/fresh", &[], "fresh")
        .route("/kept", &[], "kept")
        .start()
        .await;
    let client = host.http1();
    let mut fresh = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..3 {
        fresh.push(client.get("/fresh").await.expect("response").json()["value"].clone());
        kept.push(client.get("/kept").await.expect("response").json()["value"].clone());
    }
    assert_eq!(fresh, [json!(1), json!(1), json!(1)], "a fresh instance never sees an earlier request");
    assert_eq!(kept, [json!(1), json!(2), json!(3)], "a reused instance keeps its memory (sequential requests, one idle instance)");
}

/// The pool recycles a slot's memory for the next instance by resetting
/// the pages the last one dirtied (`PAGEMAP_SCAN`, see docs/wasm.md): under
/// concurrent load, with slots taken and given back out of order, the
/// probe's call counter (a global in linear memory) still reads 1 on every
/// request, so no reset missed a page.
#[tokio::test]
async fn fresh_instances_start_from_a_clean_memory_under_concurrent_load() {
    let host = Gateway::new().wasm("fresh", "covet_wasm_probe", json!({ "probe": "count" })).route("/fresh", &[], "fresh").start().await;
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = host.http1();
        connections.spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..25 {
                seen.push(client.get("/fresh").await.expect("response").json()["value"].clone());
            }
            seen
        });
    }
    let seen: Vec<_> = connections.join_all().await.into_iter().flatten().collect();
    assert_eq!(seen.len(), 200);
    let stale: Vec<_> = seen.iter().filter(|v| **v != json!(1)).collect();
    assert!(stale.is_empty(), "{} of 200 fresh instances saw an earlier call: {stale:?}", stale.len());
}

/// By default `init` runs at load and its memory is snapshotted (on a
/// thread of its own, so the load does not wait): once the snapshot is in
/// place, fresh instances start from it without running `init` again. The
/// services fixture's `init` counts itself in shared state: after 10
/// requests the default entry has counted 2 inits (the load's check and the
/// snapshot), the `instances: fresh-init` entry 1 + one per request.
#[tokio::test]
async fn init_runs_once_at_load_and_fresh_instances_start_from_its_snapshot() {
    let keys = |more: Value| {
        let mut keys = json!({ "capabilities": { "state": ["snap", "each"] } });
        keys.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        keys
    };
    let host = Gateway::new()
        .wasm_with("snap", "covet_wasm_services", json!({ "init_count": "snap" }), keys(json!({})))
        .wasm_with("each", "covet_wasm_services", json!({ "init_count": "each" }), keys(json!({ "instances": "fresh-init" })))
        .route("/snap/get", &[], "snap")
        .route("/each/get", &[], "each")
        .start()
        .await;
    let ready = host.log_line(&["fresh instances start from a snapshot taken after init", "plugin=snap"]).await;
    assert!(ready.is_some(), "logs:\n{}", host.logs());
    let client = host.http1();
    let inits = |ns: &'static str| {
        let client = client.clone();
        async move {
            let reply = client.get(&format!("/{ns}/get?ns={ns}&key=inits")).await.expect("response").json();
            assert_eq!(reply["ok"], true, "{reply}");
            reply["value"].as_str().map(|v| v.parse::<u64>().unwrap())
        }
    };
    for _ in 0..9 {
        inits("snap").await;
        inits("each").await;
    }
    assert_eq!(inits("snap").await, Some(2), "fresh: the load's check and the snapshot ran init, no request did");
    assert_eq!(inits("each").await, Some(11), "fresh-init: the load's check, then each of the 10 requests");
    assert!(!host.logs().contains("no snapshot after init"), "{}", host.logs());
}

/// Snapshot lines logged so far.
fn snapshots(host: &covet_e2e::Host) -> usize {
    host.logs().matches("fresh instances start from a snapshot taken after init").count()
}

/// Waits until `n` snapshot lines are logged (panics after 20 s).
async fn wait_for_snapshots(host: &covet_e2e::Host, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while snapshots(host) < n {
        assert!(std::time::Instant::now() < deadline, "{n} snapshots never logged:\n{}", host.logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The services fixture's init counter in namespace `ns`, through route `/p/get`.
async fn inits(host: &covet_e2e::Host, ns: &str) -> Option<u64> {
    let reply = host.http1().get(&format!("/p/get?ns={ns}&key=inits")).await.expect("response").json();
    reply["value"].as_str().map(|v| v.parse().unwrap())
}

/// A config swap makes a new snapshot (on its own thread, the swap does
/// not wait for it); a swap back to the first config uses the one kept for
/// it. Each config counts its inits in its own namespace: 2 for each load
/// (the check and the snapshot), none per request, and none for the swap
/// back's snapshot.
#[tokio::test]
async fn a_config_swap_takes_a_new_snapshot_and_a_swap_back_reuses_the_kept_one() {
    let keys = json!({ "capabilities": { "state": ["a", "b"] } });
    let host = Gateway::new().wasm_with("p", "covet_wasm_services", json!({ "init_count": "a" }), keys).route("/p/get", &[], "p").start().await;
    wait_for_snapshots(&host, 1).await;
    let swapped = crate::swap::swap(&host, "p", json!({ "config": { "init_count": "b" } })).await;
    assert_eq!(swapped.status, 200, "{}", swapped.text());
    wait_for_snapshots(&host, 2).await;
    for _ in 0..5 {
        inits(&host, "b").await;
    }
    assert_eq!(inits(&host, "b").await, Some(2), "the new config: its check and its snapshot");
    let back = crate::swap::swap(&host, "p", json!({ "config": { "init_count": "a" } })).await;
    assert_eq!(back.status, 200, "{}", back.text());
    for _ in 0..5 {
        inits(&host, "a").await;
    }
    // The swap back's check ran init once; its snapshot was kept, not taken again.
    assert_eq!(inits(&host, "a").await, Some(3));
    assert_eq!(snapshots(&host), 2, "{}", host.logs());
}

/// A snapshot cannot keep a host resource: Rust's `println!` in `init`
/// keeps its stdout stream open, so this probe gets no snapshot. The load
/// goes on with a warning naming the reason, and every fresh instance runs
/// `init` (its line is printed per request) and still starts clean.
#[tokio::test]
async fn an_init_that_keeps_a_host_resource_is_not_snapshotted_and_runs_per_instance() {
    let config = json!({ "probe": "count", "init_print": "probe init ran" });
    let host = Gateway::new().wasm_with("p", "covet_wasm_probe", config, json!({ "capabilities": { "stdio": true } })).route("/p", &[], "p").start().await;
    let warning = host.log_line(&["no snapshot after init", "host resource"]).await;
    assert!(warning.is_some_and(|l| l.contains("WARN") && l.contains("plugin=p")), "logs:\n{}", host.logs());
    for _ in 0..5 {
        assert_eq!(host.http1().get("/p").await.expect("response").json()["value"], json!(1));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host.logs().matches("probe init ran").count() < 7 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The load's check, the snapshot attempt (the warning came after it), then one per request.
    assert_eq!(host.logs().matches("probe init ran").count(), 7, "logs:\n{}", host.logs());
}

#[tokio::test]
async fn the_documented_example_answers_403_without_its_header() {
    let host = Gateway::new()
        .wasm("require-key", "require_header", json!({ "header": "X-Api-Key" }))
        .wasm("echo", "covet_wasm_probe", json!({ "metadata_keys": ["require_header.checked"] }))
        .route("/", &["require-key"], "echo")
        .start()
        .await;
    let refused = host.http1().get("/").await.expect("response");
    let error = assert_problem(&refused, 403, "FORBIDDEN");
    assert_eq!(error["message"], "this route needs the `x-api-key` header");
    let allowed = host.http1().send(Method::GET, "/", &[("x-api-key", "k")], "").await.expect("response");
    assert_eq!(allowed.json()["metadata"]["require_header.checked"], "x-api-key");
}
