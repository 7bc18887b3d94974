//! The access log with tracing on: every line (404s included) carries
//! `trace_id` and `span_id`, and they are the ids of the server span the
//! collector received, in the pretty and the JSON format. With tracing off
//! the line has no ids and nothing is injected into upstream requests.

use covet_e2e::{Host, TestUpstream, otlp::Collector};
use serde_json::{Value, json};

use super::{Traced, access_line, field, one, send, upstream_saw};

fn hello(collector: &Collector) -> Traced {
    Traced::new(Some(collector)).native("hello", "covet-static-response", json!({ "body": "hello" })).route("/hello", &[], "hello")
}

/// Asserts the server span of `trace` has id `span`, request id `id` and `status`.
async fn assert_exported(collector: &Collector, trace: &str, span: &str, id: &str, status: u16) {
    let spans = collector.trace(trace).await;
    let server = spans.iter().find(|s| s.kind == "server").unwrap_or_else(|| panic!("a server span: {}", super::names(&spans)));
    assert_eq!(server.span_id, span, "the access line's span_id is the server span's");
    assert_eq!(server.attr("covet.request_id"), json!(id));
    assert_eq!(server.attr("http.response.status_code"), json!(status));
}

#[tokio::test]
async fn pretty_access_lines_carry_the_ids_of_the_exported_server_span() {
    let collector = Collector::grpc().await;
    let host = hello(&collector).start().await;
    for (path, id, status) in [("/hello", "al-1", 200), ("/hello", "al-2", 200), ("/nope", "al-404", 404)] {
        assert_eq!(send(&host, path, &[("x-request-id", id)]).await.status, status);
        let line = access_line(&host, id).await;
        let trace = field(&line, "trace_id").unwrap_or_else(|| panic!("trace_id in {line}"));
        let span = field(&line, "span_id").unwrap_or_else(|| panic!("span_id in {line}"));
        assert_eq!((trace.len(), span.len()), (32, 16), "{line}");
        assert_exported(&collector, trace, span, id, status).await;
    }
    let spans = collector.spans();
    let missed = spans.iter().find(|s| s.attr("covet.request_id") == json!("al-404")).expect("the 404's span");
    assert_eq!(missed.name, "GET", "a request with no route is named by its method");
}

#[tokio::test]
async fn json_access_lines_carry_the_ids_of_the_exported_server_span() {
    let collector = Collector::http().await;
    let host = hello(&collector).log_format("json").start().await;
    assert_eq!(send(&host, "/hello", &[("x-request-id", "al-json")]).await.status, 200);
    let line = host.log_line(&["covet::access", "al-json"]).await.unwrap_or_else(|| panic!("no line:\n{}", host.logs()));
    let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let (trace, span) = (value["trace_id"].as_str(), value["span_id"].as_str());
    let (trace, span) = (trace.unwrap_or_else(|| panic!("trace_id in {line}")), span.unwrap_or_else(|| panic!("span_id in {line}")));
    assert_exported(&collector, trace, span, "al-json", 200).await;
    one(&collector.trace(trace).await, "GET /hello");
}

#[tokio::test]
async fn with_tracing_off_lines_have_no_ids_and_nothing_is_injected() {
    let users = TestUpstream::start("users").await;
    let yaml = Traced::new(None).proxy("users", &[&users], json!({})).route("/api/{*rest}", &[], "proxy").yaml();
    let mut manifest: Value = serde_json::from_str(&yaml).expect("JSON");
    manifest.as_object_mut().expect("an object").remove("telemetry");
    let host = Host::start(manifest.to_string()).await;
    let reply = send(&host, "/api/off", &[("x-request-id", "al-off")]).await;
    let seen = upstream_saw(&reply);
    assert!(seen.get("traceparent").is_none() && seen.get("tracestate").is_none(), "nothing injected: {seen:?}");
    let line = access_line(&host, "al-off").await;
    assert!(!line.contains("trace_id") && !line.contains("span_id"), "{line}");
}
