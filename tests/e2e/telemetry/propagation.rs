//! Propagation through the `proxy` plugin: the upstream's `traceparent`
//! carries the trace id and, as parent id, the id of the attempt's client
//! span, itself a child of the proxy's plugin span under the server span; a
//! retried request is two attempt spans (`http.request.resend_count` 0 and
//! 1), a refused connection being an attempt with `error.type = connect`;
//! a 5xx answer marks the server span failed; an incoming sampled
//! `traceparent` continues the caller's trace (the server span's parent is
//! the caller's span, marked remote) and `tracestate` reaches the upstream
//! byte for byte; an invalid `traceparent` starts a new trace.

use covet_e2e::{TestUpstream, otlp::Collector};
use serde_json::{Value, json};

use super::{Traced, one, send, upstream_saw, upstream_traceparent};

/// The upstream every test names.
const UPSTREAM: &str = "users";
/// The attempt span's name: `{METHOD} {upstream}`.
const ATTEMPT: &str = "GET users";

fn gateway(collector: &Collector, endpoints: &[&TestUpstream], settings: Value) -> Traced {
    Traced::new(Some(collector)).proxy(UPSTREAM, endpoints, settings).route("/api/{*rest}", &[], "proxy")
}

#[tokio::test]
async fn the_upstreams_parent_is_the_attempt_span_under_the_proxy_span() {
    let collector = Collector::grpc().await;
    let users = TestUpstream::start(UPSTREAM).await;
    let host = gateway(&collector, &[&users], json!({})).start().await;
    let reply = send(&host, "/api/items?page=2", &[("x-request-id", "prop-1"), ("user-agent", "e2e-agent/1")]).await;
    let (trace, parent, flags) = upstream_traceparent(&reply);
    assert_eq!(flags, "01", "a sampled trace");
    let spans = collector.trace(&trace).await;
    assert_eq!(spans.len(), 3, "server, proxy handle, one attempt: {}", super::names(&spans));

    let server = one(&spans, "GET /api/{*rest}");
    assert_eq!((server.kind, server.parent_span_id.as_str()), ("server", ""), "a root server span");
    assert_eq!(server.attr("http.request.method"), json!("GET"));
    assert_eq!(server.attr("url.path"), json!("/api/items"));
    assert_eq!(server.attr("url.scheme"), json!("http"));
    assert_eq!(server.attr("http.route"), json!("/api/{*rest}"));
    assert_eq!(server.attr("http.response.status_code"), json!(200));
    assert_eq!(server.attr("network.protocol.version"), json!("1.1"));
    assert_eq!(server.attr("user_agent.original"), json!("e2e-agent/1"));
    assert_eq!(server.attr("covet.request_id"), json!("prop-1"));
    assert!(server.attr("client.address").as_str().is_some_and(|a| a.starts_with("127.0.0.1")), "{server:?}");
    assert_eq!(server.service, "covet-e2e");

    let plugin = one(&spans, "proxy handle");
    assert_eq!((plugin.kind, &plugin.parent_span_id), ("internal", &server.span_id), "a child of the server span");
    assert_eq!(plugin.attr("covet.plugin.name"), json!("proxy"));
    assert_eq!(plugin.attr("covet.plugin.kind"), json!("native"));
    assert_eq!(plugin.attr("covet.plugin.phase"), json!("handle"));

    let attempt = one(&spans, ATTEMPT);
    assert_eq!((attempt.kind, &attempt.parent_span_id), ("client", &plugin.span_id), "a child of the proxy's span");
    assert_eq!(attempt.span_id, parent, "the upstream's parent id is the attempt span");
    assert_eq!(attempt.attr("covet.upstream.name"), json!(UPSTREAM));
    assert_eq!(attempt.attr("covet.upstream.endpoint"), json!(users.endpoint()));
    assert_eq!(attempt.attr("server.port"), json!(users.addr().port()));
    assert_eq!(attempt.attr("http.request.resend_count"), json!(0));
    assert_eq!(attempt.attr("http.response.status_code"), json!(200));
    assert!(spans.iter().all(|s| s.trace_id == trace), "one trace");
}

#[tokio::test]
async fn a_retried_request_is_two_attempt_spans() {
    let collector = Collector::grpc().await;
    let (bad, good) = (TestUpstream::start("bad").await, TestUpstream::start("good").await);
    bad.set_status(503);
    let passive = json!({ "consecutive_5xx": 0, "consecutive_gateway_errors": 0, "consecutive_connect_failures": 0 });
    let retries = json!({ "attempts": 1, "budget": "100%", "min_per_sec": 1000, "backoff": "1ms" });
    let host = gateway(&collector, &[&bad, &good], json!({ "health": { "passive": passive }, "retries": retries })).start().await;
    let mut retried = 0;
    for _ in 0..4 {
        let reply = send(&host, "/api/retry", &[]).await;
        assert_eq!(reply.header("x-upstream"), Some("good"), "{}", reply.text());
        let (trace, parent, _) = upstream_traceparent(&reply);
        let spans = collector.trace(&trace).await;
        let plugin = one(&spans, "proxy handle");
        let mut attempts: Vec<_> = spans.iter().filter(|s| s.name == ATTEMPT).collect();
        attempts.sort_by_key(|s| s.attr("http.request.resend_count").as_i64());
        assert!(attempts.iter().all(|a| a.parent_span_id == plugin.span_id), "attempts are children of the proxy span");
        let last = attempts.last().expect("an attempt span");
        assert_eq!(last.span_id, parent, "good's parent id is the last attempt");
        assert_eq!(last.attr("server.port"), json!(good.addr().port()));
        assert_eq!(last.attr("http.response.status_code"), json!(200));
        if attempts.len() == 1 {
            assert_eq!(last.attr("http.request.resend_count"), json!(0));
            continue;
        }
        assert_eq!(attempts.len(), 2, "at most one retry: {}", super::names(&spans));
        retried += 1;
        let first = attempts[0];
        assert_eq!(first.attr("http.request.resend_count"), json!(0));
        assert_eq!(last.attr("http.request.resend_count"), json!(1));
        assert_eq!(first.attr("server.port"), json!(bad.addr().port()));
        assert_eq!(first.attr("http.response.status_code"), json!(503));
        assert_eq!(first.status, "error", "a failed attempt: {first:?}");
        assert!(!first.attr("error.type").is_null(), "error.type on the failed attempt: {first:?}");
        assert_ne!(first.span_id, last.span_id);
    }
    assert!(retried >= 1, "round robin sent a first attempt to the failing endpoint");
    assert_eq!(retried, bad.requests(), "one retried trace per 503");
}

#[tokio::test]
async fn an_incoming_traceparent_continues_the_trace_and_tracestate_passes_unchanged() {
    let collector = Collector::http().await;
    let users = TestUpstream::start(UPSTREAM).await;
    let host = gateway(&collector, &[&users], json!({})).start().await;
    let (caller_trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let parent = super::traceparent(caller_trace, caller_span, true);
    let reply = send(&host, "/api/continued", &[("traceparent", &parent), ("tracestate", state)]).await;
    let (trace, upstream_parent, flags) = upstream_traceparent(&reply);
    assert_eq!((trace.as_str(), flags.as_str()), (caller_trace, "01"), "the caller's trace, still sampled");
    assert_ne!(upstream_parent, caller_span, "the upstream's parent is covet's attempt span, not the caller");
    assert_eq!(upstream_saw(&reply).get("tracestate"), Some(&json!(state)), "tracestate unchanged");

    let spans = collector.trace(caller_trace).await;
    let server = one(&spans, "GET /api/{*rest}");
    assert_eq!(server.parent_span_id, caller_span, "the server span's parent is the caller's span");
    assert_eq!(server.parent_remote, Some(true), "and it is remote");
    let plugin = one(&spans, "proxy handle");
    assert_eq!(plugin.parent_remote, Some(false), "covet's own spans have local parents");
    assert_eq!(one(&spans, ATTEMPT).span_id, upstream_parent);
    assert_eq!(server.trace_state, state, "the exported span keeps the caller's tracestate");
}

#[tokio::test]
async fn an_invalid_traceparent_starts_a_new_trace() {
    let collector = Collector::grpc().await;
    let users = TestUpstream::start(UPSTREAM).await;
    let host = gateway(&collector, &[&users], json!({})).start().await;
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let reply = send(&host, "/api/invalid", &[("traceparent", upper), ("tracestate", "congo=1")]).await;
    let (trace, parent, flags) = upstream_traceparent(&reply);
    assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736", "a new trace");
    assert_eq!(flags, "01", "sampled by the ratio (1.0)");
    assert_eq!(upstream_saw(&reply).get("tracestate"), None, "no tracestate without a valid parent");
    let spans = collector.trace(&trace).await;
    let server = one(&spans, "GET /api/{*rest}");
    assert_eq!(server.parent_span_id, "", "a root span");
    assert_eq!(one(&spans, ATTEMPT).span_id, parent);
}

#[tokio::test]
async fn a_refused_connection_is_a_failed_attempt_span_and_the_retry_succeeds() {
    let collector = Collector::grpc().await;
    let (gone, good) = (TestUpstream::start("gone").await, TestUpstream::start("good").await);
    gone.stop();
    let passive = json!({ "consecutive_5xx": 0, "consecutive_gateway_errors": 0, "consecutive_connect_failures": 0 });
    let retries = json!({ "attempts": 1, "budget": "100%", "min_per_sec": 1000, "backoff": "1ms" });
    let host = gateway(&collector, &[&gone, &good], json!({ "health": { "passive": passive }, "retries": retries })).start().await;
    let mut refused = 0;
    for _ in 0..4 {
        let reply = send(&host, "/api/refused", &[]).await;
        let (trace, parent, _) = upstream_traceparent(&reply);
        let spans = collector.trace(&trace).await;
        let mut attempts: Vec<_> = spans.iter().filter(|s| s.name == ATTEMPT).collect();
        attempts.sort_by_key(|s| s.attr("http.request.resend_count").as_i64());
        assert_eq!(attempts.last().map(|a| a.span_id.as_str()), Some(parent.as_str()), "good's parent is the last attempt");
        if attempts.len() < 2 {
            continue;
        }
        refused += 1;
        let first = attempts[0];
        assert_eq!(first.attr("server.port"), json!(gone.addr().port()), "{first:?}");
        assert_eq!(first.attr("error.type"), json!("connect"), "{first:?}");
        assert_eq!(first.status, "error", "{first:?}");
        assert!(first.attr("http.response.status_code").is_null(), "no response, no status: {first:?}");
    }
    assert!(refused >= 1, "round robin sent a first attempt to the refusing endpoint");
}

#[tokio::test]
async fn a_5xx_answer_marks_the_server_span_failed() {
    let collector = Collector::grpc().await;
    let users = TestUpstream::start(UPSTREAM).await;
    users.set_status(500);
    let host = gateway(&collector, &[&users], json!({ "retries": { "attempts": 0 } })).start().await;
    let reply = send(&host, "/api/broken", &[("x-request-id", "five-hundred")]).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    let line = super::access_line(&host, "five-hundred").await;
    let trace = super::field(&line, "trace_id").unwrap_or_else(|| panic!("trace_id in {line}"));
    let spans = collector.trace(trace).await;
    let server = one(&spans, "GET /api/{*rest}");
    assert_eq!(server.attr("http.response.status_code"), json!(500));
    assert_eq!(server.status, "error", "{server:?}");
    let attempt = one(&spans, ATTEMPT);
    assert_eq!(attempt.attr("http.response.status_code"), json!(500));
}
