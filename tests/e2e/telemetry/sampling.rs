//! Sampling: with ratio 0 and no parent nothing is exported, yet every
//! upstream still gets a `traceparent` (flag `00`) and every access line
//! still has ids; a sampled parent is followed (parent-based) even at ratio
//! 0, an unsampled one even at ratio 1, unless `parent_based: false`; a
//! route's `trace_sample_ratio` replaces the default ratio for new traces.
//!
//! Each test ends with a sampled request as a barrier (see the module docs
//! of `telemetry`): once its spans arrived, the collector holds everything
//! the host exported before it.

use std::collections::HashSet;

use covet_e2e::{TestUpstream, otlp::Collector};
use serde_json::json;

use super::{Traced, access_line, field, one, send, traceparent, upstream_traceparent};

fn proxied(collector: &Collector, users: &TestUpstream, ratio: f64) -> Traced {
    Traced::new(Some(collector))
        .tracing("sample_ratio", json!(ratio))
        .proxy("users", &[users], json!({}))
        .route("/api/{*rest}", &[], "proxy")
}

/// A sampled caller's trace for the barrier request.
const BARRIER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test]
async fn ratio_zero_exports_nothing_but_still_propagates_and_logs_ids() {
    let collector = Collector::grpc().await;
    let users = TestUpstream::start("users").await;
    let host = proxied(&collector, &users, 0.0).start().await;
    let mut traces = HashSet::new();
    for n in 0..5 {
        let id = format!("unsampled-{n}");
        let reply = send(&host, "/api/quiet", &[("x-request-id", &id)]).await;
        let (trace, parent, flags) = upstream_traceparent(&reply);
        assert_eq!(flags, "00", "not sampled, still propagated");
        let line = access_line(&host, &id).await;
        assert_eq!(field(&line, "trace_id"), Some(trace.as_str()), "the access line names the trace: {line}");
        let span = field(&line, "span_id").unwrap_or_else(|| panic!("span_id in {line}"));
        assert!(span.len() == 16 && span != parent, "the server span's id, not the attempt's: {line}");
        traces.insert(trace);
    }
    assert_eq!(traces.len(), 5, "a new trace per request");

    // Parent-based: a sampled caller is recorded even at ratio 0.
    let barrier = traceparent(BARRIER_TRACE, "b7ad6b7169203331", true);
    let reply = send(&host, "/api/barrier", &[("traceparent", &barrier)]).await;
    assert_eq!(upstream_traceparent(&reply).2, "01");
    let spans = collector.trace(BARRIER_TRACE).await;
    assert_eq!(one(&spans, "GET /api/{*rest}").parent_span_id, "b7ad6b7169203331");
    let exported = collector.spans();
    assert!(exported.iter().all(|s| s.trace_id == BARRIER_TRACE), "only the sampled trace: {}", super::names(&exported));
    let counted = super::wait_metric(&host, "covet_trace_spans_exported_total", exported.len() as f64).await;
    assert_eq!(counted, exported.len() as f64, "/metrics counts what the collector got");
}

#[tokio::test]
async fn an_unsampled_parent_is_followed_unless_parent_based_is_off() {
    let (caller_trace, caller_span) = ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174");
    let unsampled = traceparent(caller_trace, caller_span, false);
    for (parent_based, exported) in [(true, false), (false, true)] {
        let collector = Collector::grpc().await;
        let users = TestUpstream::start("users").await;
        let host = proxied(&collector, &users, 1.0).tracing("parent_based", json!(parent_based)).start().await;
        let reply = send(&host, "/api/followed", &[("traceparent", &unsampled)]).await;
        let (trace, _, flags) = upstream_traceparent(&reply);
        assert_eq!(trace, caller_trace, "the caller's trace either way");
        assert_eq!(flags, if exported { "01" } else { "00" }, "parent_based: {parent_based}");
        let barrier = traceparent(BARRIER_TRACE, "b7ad6b7169203331", true);
        send(&host, "/api/barrier", &[("traceparent", &barrier)]).await;
        collector.trace(BARRIER_TRACE).await;
        let got = collector.spans().iter().any(|s| s.trace_id == caller_trace);
        assert_eq!(got, exported, "parent_based: {parent_based}: the caller's unsampled trace exported?");
    }
}

#[tokio::test]
async fn a_routes_ratio_replaces_the_default() {
    let collector = Collector::grpc().await;
    let hello = json!({ "body": "hello" });
    let host = Traced::new(Some(&collector))
        .tracing("sample_ratio", json!(0.0))
        .native("hello", "covet-static-response", hello)
        .route("/cold", &[], "hello")
        .route_with("/hot", &[], "hello", json!({ "trace_sample_ratio": 1.0 }))
        .start()
        .await;
    let mut cold = Vec::new();
    for n in 0..3 {
        let id = format!("cold-{n}");
        assert_eq!(send(&host, "/cold", &[("x-request-id", &id)]).await.status, 200);
        let line = access_line(&host, &id).await;
        cold.push(field(&line, "trace_id").unwrap_or_else(|| panic!("trace_id in {line}")).to_owned());
    }
    assert_eq!(send(&host, "/hot", &[("x-request-id", "hot-1")]).await.status, 200);
    let line = access_line(&host, "hot-1").await;
    let hot = field(&line, "trace_id").unwrap_or_else(|| panic!("trace_id in {line}")).to_owned();
    let spans = collector.trace(&hot).await;
    let server = one(&spans, "GET /hot");
    assert_eq!(server.attr("http.route"), json!("/hot"));
    let exported = collector.spans();
    assert!(exported.iter().all(|s| !cold.contains(&s.trace_id)), "no /cold trace: {}", super::names(&exported));
    assert!(exported.iter().all(|s| s.trace_id == hot), "only /hot's trace: {}", super::names(&exported));
}
