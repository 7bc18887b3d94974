//! One trace across a chain of all three plugin kinds in front of the
//! proxy: `native` (tests/fixtures/traced-plugin, which also calls the
//! upstream itself) → `wasm` (wasm-plugins/fixtures/traced) → `python`
//! (python-plugins/filters/traced.py) → `proxy` → a [`TestUpstream`].
//!
//! The collector gets one server span; one plugin span per phase call, each
//! a child of the server span with its plugin's kind, phase and the
//! attributes and event the plugin set through its own API (`plugin-api`,
//! the `covet:plugin/tracing` WIT interface, `covet.trace`); a client span
//! under the native filter's span for its own upstream call and one under
//! the proxy's span for the forwarded request. Each plugin's
//! `traceparent`, passed on in a header, names its own span; the
//! upstream's `traceparent` names the attempt span. The proxy streams its
//! answer, so the Python filter's `on_response` hook does not run there
//! (docs/python.md): a second route ends the same chain in the native
//! fixture as a handler (a buffered answer) to show the Python and native
//! handler sides. Unsampled, the chain records nothing but still hands
//! every plugin its ids.

use covet_e2e::{Host, Reply, TestUpstream, otlp::{Collector, ExportedSpan}, workspace_root};
use serde_json::{Value, json};

use super::{Traced, access_line, field, names, one, parse_traceparent, send, upstream_saw};

const ROUTE: &str = "/chain/{*rest}";

fn chain(collector: &Collector, users: &TestUpstream) -> Traced {
    let native = json!({ "label": "n", "call_upstream": "users", "call_path": "/native-call" });
    let filter = workspace_root().join("python-plugins/filters/traced.py").display().to_string();
    Traced::new(Some(collector))
        .proxy("users", &[users], json!({}))
        .native_with("native", "covet-traced-plugin", native, json!({ "capabilities": { "upstreams": ["users"] } }))
        .wasm("wasm", "covet_wasm_traced", Value::Null)
        .python_filter("python", &filter, json!({}))
        .native("handler", "covet-traced-plugin", json!({ "label": "h" }))
        .route(ROUTE, &["native", "wasm", "python"], "proxy")
        .route(BUFFERED, &["native", "wasm", "python"], "handler")
}

/// The same chain ending in the native fixture as a handler.
const BUFFERED: &str = "/buffered";

/// The span id in a `traceparent`, checking it belongs to `trace` and its flags.
fn span_of(traceparent: &str, trace: &str, flags: &str) -> String {
    let (t, span, f) = parse_traceparent(traceparent);
    assert_eq!((t.as_str(), f.as_str()), (trace, flags), "{traceparent}");
    span
}

fn header<'a>(seen: &'a serde_json::Map<String, Value>, name: &str) -> &'a str {
    seen.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("the upstream got no {name}: {seen:?}"))
}

fn reply_header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.header(name).unwrap_or_else(|| panic!("no {name} in {:?}", reply.headers))
}

/// Asserts `span` is the plugin span of `plugin`'s `phase` under `server`.
fn assert_plugin_span(span: &ExportedSpan, server: &ExportedSpan, plugin: &str, kind: &str, phase: &str) {
    assert_eq!((span.kind, span.parent_span_id.as_str()), ("internal", server.span_id.as_str()), "{span:?}");
    assert_eq!(span.attr("covet.plugin.name"), json!(plugin), "{span:?}");
    assert_eq!(span.attr("covet.plugin.kind"), json!(kind), "{span:?}");
    assert_eq!(span.attr("covet.plugin.phase"), json!(phase), "{span:?}");
    assert!(span.attr("covet.plugin.version").is_string(), "covet.plugin.version on {span:?}");
    assert_eq!(span.status, "unset", "{span:?}");
}

/// The attributes each fixture sets, one of each kind.
fn assert_fixture_attributes(span: &ExportedSpan, kind: &str, int: i64, float: f64) {
    assert_eq!(span.attr("fixture.kind"), json!(kind), "{span:?}");
    assert_eq!(span.attr("fixture.int"), json!(int), "{span:?}");
    assert_eq!(span.attr("fixture.float"), json!(float), "{span:?}");
    assert_eq!(span.attr("fixture.bool"), json!(true), "{span:?}");
}

#[tokio::test]
async fn native_wasm_and_python_plugin_spans_are_children_of_one_server_span() {
    let collector = Collector::grpc().await;
    let users = TestUpstream::start("users").await;
    let host = chain(&collector, &users).start().await;
    let reply = send(&host, "/chain/orders", &[("x-request-id", "chain-1")]).await;
    let seen = upstream_saw(&reply);
    let (trace, attempt_id, flags) = parse_traceparent(header(&seen, "traceparent"));
    assert_eq!(flags, "01");
    assert_eq!(users.requests(), 2, "the native filter's own call and the proxied request");

    let spans = collector.trace(&trace).await;
    let line = access_line(&host, "chain-1").await;
    assert_eq!(field(&line, "trace_id"), Some(trace.as_str()), "{line}");
    let server = one(&spans, &format!("GET {ROUTE}"));
    assert_eq!(field(&line, "span_id"), Some(server.span_id.as_str()), "{line}");
    assert_eq!((server.kind, server.parent_span_id.as_str()), ("server", ""));
    let plugin_spans: Vec<&str> = spans.iter().filter(|s| s.kind == "internal").map(|s| s.name.as_str()).collect();
    let mut sorted = plugin_spans.clone();
    sorted.sort_unstable();
    let expected = ["native on_request", "proxy handle", "python on_request", "python on_response", "wasm on_request", "wasm on_response"];
    assert_eq!(sorted, expected, "one span per phase call: {}", names(&spans));

    let native = one(&spans, "native on_request");
    assert_plugin_span(native, server, "native", "native", "on_request");
    assert_fixture_attributes(native, "native", 7, 2.5);
    assert_eq!(native.attr("fixture.label"), json!("n"));
    assert_eq!(native.attr("fixture.call.status"), json!(200));
    assert_eq!(native.event("fixture.checked"), json!({ "fixture.phase": "on_request", "fixture.step": 1 }));
    let native_traceparent = header(&seen, "x-plugin-traceparent").strip_prefix("n=").expect("n=<traceparent>");
    assert_eq!(span_of(native_traceparent, &trace, "01"), native.span_id, "req.traceparent() names the plugin's span");

    for (phase, span) in [("on_request", one(&spans, "wasm on_request")), ("on_response", one(&spans, "wasm on_response"))] {
        assert_plugin_span(span, server, "wasm", "wasm", phase);
        assert_fixture_attributes(span, "wasm", 42, 1.5);
        assert_eq!(span.attr("fixture.phase"), json!(phase));
        assert_eq!(span.event("fixture.event"), json!({ "fixture.phase": phase, "fixture.n": 1 }));
    }
    let wasm_request = one(&spans, "wasm on_request");
    assert_eq!(span_of(header(&seen, "x-wasm-traceparent"), &trace, "01"), wasm_request.span_id);
    let wasm_response = one(&spans, "wasm on_response");
    assert_eq!(span_of(reply_header(&reply, "x-wasm-on-response-traceparent"), &trace, "01"), wasm_response.span_id);
    assert_eq!(reply.header("x-wasm-recording"), Some("true"));

    let python = one(&spans, "python on_request");
    assert_plugin_span(python, server, "python", "python", "on_request");
    assert_fixture_attributes(python, "python", 42, 0.5);
    assert_eq!(python.event("fixture.event"), json!({ "fixture.step": "on_request" }));
    assert_eq!(span_of(header(&seen, "x-python-traceparent"), &trace, "01"), python.span_id, "covet.trace.traceparent()");
    assert_plugin_span(one(&spans, "python on_response"), server, "python", "python", "on_response");

    let proxy = one(&spans, "proxy handle");
    assert_plugin_span(proxy, server, "proxy", "native", "handle");
    let clients: Vec<&ExportedSpan> = spans.iter().filter(|s| s.kind == "client").collect();
    assert_eq!(clients.len(), 2, "{}", names(&spans));
    let native_call = clients.iter().find(|s| s.parent_span_id == native.span_id).expect("the native filter's call span");
    let attempt = clients.iter().find(|s| s.parent_span_id == proxy.span_id).expect("the proxy's attempt span");
    assert_eq!((native_call.name.as_str(), attempt.name.as_str()), ("GET users", "GET users"));
    assert_eq!(attempt.span_id, attempt_id, "the upstream's parent is the proxy's attempt span");
    assert_eq!(native_call.attr("http.request.resend_count"), json!(0));
    assert_eq!(spans.len(), 9, "server + 6 plugin calls + 2 client spans: {}", names(&spans));
}

#[tokio::test]
async fn an_unsampled_chain_records_nothing_but_hands_every_plugin_its_ids() {
    let collector = Collector::grpc().await;
    let users = TestUpstream::start("users").await;
    let host: Host = chain(&collector, &users).tracing("sample_ratio", json!(0.0)).start().await;
    let reply = send(&host, "/chain/quiet", &[]).await;
    let seen = upstream_saw(&reply);
    let (trace, _, flags) = parse_traceparent(header(&seen, "traceparent"));
    assert_eq!(flags, "00");
    let native = span_of(header(&seen, "x-plugin-traceparent").strip_prefix("n=").expect("n="), &trace, "00");
    let wasm = span_of(header(&seen, "x-wasm-traceparent"), &trace, "00");
    let python = span_of(header(&seen, "x-python-traceparent"), &trace, "00");
    let after = span_of(reply_header(&reply, "x-wasm-on-response-traceparent"), &trace, "00");
    let ids = std::collections::HashSet::from([&native, &wasm, &python, &after]);
    assert_eq!(ids.len(), 4, "a span id per plugin call, unsampled too");
    assert_eq!(reply.header("x-wasm-recording"), Some("false"));
    // The barrier: a sampled caller's request, exported; nothing of the first trace before it.
    let barrier = super::traceparent("2a1d9e3b4c5f60718293a4b5c6d7e8f9", "1234567890abcdef", true);
    send(&host, "/chain/barrier", &[("traceparent", &barrier)]).await;
    collector.trace("2a1d9e3b4c5f60718293a4b5c6d7e8f9").await;
    assert!(collector.spans().iter().all(|s| s.trace_id != trace), "the unsampled trace was exported");
}

#[tokio::test]
async fn a_buffered_answer_shows_the_python_on_response_and_native_handler_spans() {
    let collector = Collector::http().await;
    let users = TestUpstream::start("users").await;
    let host = chain(&collector, &users).start().await;
    let reply = send(&host, BUFFERED, &[("x-request-id", "chain-2")]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    let handler_traceparent = answer["traceparent"].as_str().unwrap_or_else(|| panic!("the handler's traceparent: {answer}"));
    let (trace, handler_id, _) = parse_traceparent(handler_traceparent);
    assert_eq!(answer["recording"], json!(true), "{answer}");
    let spans = collector.trace(&trace).await;
    let server = one(&spans, &format!("GET {BUFFERED}"));
    let handler = one(&spans, "handler handle");
    assert_plugin_span(handler, server, "handler", "native", "handle");
    assert_eq!(handler.span_id, handler_id, "the handler's req.traceparent() names its span");
    assert_fixture_attributes(handler, "native", 7, 2.5);
    assert_eq!(handler.attr("fixture.label"), json!("h"));
    assert_eq!(handler.event("fixture.checked"), json!({ "fixture.phase": "handle", "fixture.step": 1 }));

    let python = one(&spans, "python on_request");
    assert_eq!(span_of(reply_header(&reply, "x-python-traceparent"), &trace, "01"), python.span_id);
    assert_eq!(reply.header("x-python-recording"), Some("true"));
    let python_response = one(&spans, "python on_response");
    assert_plugin_span(python_response, server, "python", "python", "on_response");
    assert_eq!(python_response.attr("fixture.phase"), json!("on_response"), "the hook ran in its own span");
    assert_ne!(python_response.span_id, python.span_id);
    let wasm_response = one(&spans, "wasm on_response");
    assert_eq!(span_of(reply_header(&reply, "x-wasm-on-response-traceparent"), &trace, "01"), wasm_response.span_id);
    let mut plugin_spans: Vec<&str> = spans.iter().filter(|s| s.kind == "internal").map(|s| s.name.as_str()).collect();
    plugin_spans.sort_unstable();
    let expected =
        ["handler handle", "native on_request", "python on_request", "python on_response", "wasm on_request", "wasm on_response"];
    assert_eq!(plugin_spans, expected, "{}", names(&spans));
    assert!(spans.iter().all(|s| s.kind != "server" || s.span_id == server.span_id), "one server span");
}
