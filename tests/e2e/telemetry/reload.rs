//! A manifest reload (`POST /v1/reload` after the file changed) applies new
//! telemetry settings: tracing turned on starts ids and export, a new
//! collector and service name take over from the next request, and
//! tracing turned off again leaves access lines without ids.

use covet_e2e::{Host, otlp::Collector};
use serde_json::{Value, json};

use super::{Traced, access_line, field, one, send};
use crate::swap::{admin_post, replace};

fn hello(collector: Option<&Collector>) -> Traced {
    Traced::new(collector).native("hello", "covet-static-response", json!({ "body": "hello" })).route("/hello", &[], "hello")
}

/// The same gateway with no `telemetry:` block.
fn untraced() -> String {
    let mut manifest: Value = serde_json::from_str(&hello(None).yaml()).expect("JSON");
    manifest.as_object_mut().expect("an object").remove("telemetry");
    manifest.to_string()
}

/// Rewrites the host's manifest and reloads it.
async fn reload(host: &Host, yaml: String) {
    let staging = host.dir().join("next.yaml");
    std::fs::write(&staging, yaml).expect("write the next manifest");
    replace(&staging, &host.path("plugins.yaml"));
    let reply = admin_post(host, "/v1/reload", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Sends `/hello` with request id `id` and returns its access line's trace id, if any.
async fn traced(host: &Host, id: &str) -> Option<String> {
    assert_eq!(send(host, "/hello", &[("x-request-id", id)]).await.status, 200);
    field(&access_line(host, id).await, "trace_id").map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_turns_tracing_on_moves_it_to_another_collector_and_turns_it_off() {
    let (first, second) = (Collector::grpc().await, Collector::http().await);
    let host = Host::start(untraced()).await;
    assert_eq!(traced(&host, "rl-off").await, None, "tracing off at start");

    reload(&host, hello(Some(&first)).yaml()).await;
    let trace = traced(&host, "rl-first").await.expect("ids once tracing is on");
    assert_eq!(one(&first.trace(&trace).await, "GET /hello").service, "covet-e2e");

    reload(&host, hello(Some(&second)).telemetry("service_name", json!("after-reload")).yaml()).await;
    let trace = traced(&host, "rl-second").await.expect("ids");
    assert_eq!(one(&second.trace(&trace).await, "GET /hello").service, "after-reload", "the new collector and name");
    assert!(first.spans().iter().all(|s| s.trace_id != trace), "the old collector got the new trace");

    reload(&host, untraced()).await;
    assert_eq!(traced(&host, "rl-off-again").await, None, "tracing off after the reload");
}
