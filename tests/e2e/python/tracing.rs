//! `covet.trace` end to end: a Python filter (`python-plugins/filters/traced.py`),
//! a decorator app (sync and async endpoints), a plain ASGI app and an
//! unmodified FastAPI app (from the project venv) each call every function
//! of `covet.trace` and report what they saw, served by the real binary.
//!
//! With tracing off (no `telemetry:` block) the calls are harmless no-ops:
//! every request is a 200, `is_recording()` is False, `traceparent()` is
//! None, no header is injected, and wrong argument types still raise a
//! `TypeError` naming the argument.
//!
//! With tracing on, exporting to a real OTLP collector started by the test
//! (`covet_telemetry::collector`): the attributes and event each form sets
//! arrive on its plugin span (`"{plugin} handle"`, a child of the server
//! span), `traceparent()` names that span; concurrent requests each see
//! only their own span; a `covet.http` call from Python is a client span,
//! child of the plugin span, whose id the server receives in
//! `traceparent`; a `covet.spawn` task runs without the request's span.
//! (The filter form with tracing on is covered by tests/e2e/telemetry/chain.rs.)

use std::convert::Infallible;

use bytes::Bytes;
use covet_e2e::{Host, otlp::Collector, otlp::ExportedSpan, serve_http1, workspace_root};
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use serde_json::{Value, json};

use super::decorator::example;

/// Calls every `covet.trace` function (wrong types first, each caught) and
/// reports what the span looked like from Python.
const REPORT: &str = r#"
import covet

def report():
    errors = []
    for bad in (lambda: covet.trace.set_attribute(1, "v"),
                lambda: covet.trace.set_attribute("probe.list", [1]),
                lambda: covet.trace.add_event("probe.event", {"k": None})):
        try:
            bad()
        except TypeError as exc:
            errors.append(str(exc))
    covet.trace.set_attribute("probe.kind", "python")
    covet.trace.set_attribute("probe.int", 7)
    covet.trace.set_attribute("probe.float", 1.5)
    covet.trace.set_attribute("probe.bool", False)
    covet.trace.add_event("probe.event", {"probe.n": 1})
    return {"recording": covet.trace.is_recording(), "traceparent": covet.trace.traceparent(), "errors": errors}
"#;

/// A decorator app: the report from a sync (thread pool) and an async (event loop) endpoint.
const APP: &str = r#"
import asyncio
import covet
from covet import Covet
from trace_report import report

app = Covet()

@app.get("/app/sync")
def sync_report():
    return report()

@app.get("/app/async")
async def async_report():
    await asyncio.sleep(0)
    return report()

@app.get("/app/outbound")
async def outbound():
    resp = await covet.http.get(app.config["upstream"] + "/seen")
    return {"traceparent": covet.trace.traceparent(), "upstream": await resp.json()}

@app.get("/app/spawned")
async def spawned():
    async def background():
        await asyncio.sleep(0)
        covet.trace.set_attribute("probe.background", True)
        return covet.trace.traceparent()
    return {"traceparent": covet.trace.traceparent(), "background": await covet.spawn(background())}
"#;

/// A plain ASGI app: the report after an await, inside the app.
const ASGI: &str = r#"
import asyncio, json
from trace_report import report

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await receive()
    await asyncio.sleep(0)
    body = json.dumps(report()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"#;

/// An unmodified FastAPI app: the report from an async endpoint (after a
/// dependency and an await) and from a sync one (run on anyio's threads).
const FASTAPI: &str = r#"
import asyncio
from fastapi import Depends, FastAPI
from trace_report import report

app = FastAPI()

async def tenant():
    await asyncio.sleep(0)
    return "acme"

@app.get("/fastapi/async")
async def async_report(who: str = Depends(tenant)):
    await asyncio.sleep(0)
    return {**report(), "tenant": who}

@app.get("/fastapi/sync")
def sync_report():
    return report()
"#;

/// Every path serving the report (the filter's route answers differently).
const REPORT_PATHS: [&str; 5] = ["/app/sync", "/app/async", "/asgi/report", "/fastapi/async", "/fastapi/sync"];

/// The manifest: the traced filter before a native echo handler on
/// `/filtered/…`, and the three apps; `telemetry` as given (None: tracing
/// off); `upstream`: the server the decorator app may call (`http://ip:port`).
fn manifest(telemetry: Option<Value>, upstream: Option<&str>) -> String {
    let venv = workspace_root().join(".venv");
    assert!(venv.join("bin/python").exists(), "{} is missing: run `bash scripts/python-env.sh`", venv.display());
    let mut manifest = json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "python": { "threads": 2, "venv": venv.display().to_string() },
        "plugins": {
            "traced": { "kind": "python", "filter": example("filters/traced.py") },
            "echo": { "kind": "native", "path": covet_e2e::plugin("covet-test-plugin"), "config": { "label": "echo" } },
            "app": { "kind": "python", "app": "app_probe.py:app" },
            "asgi": { "kind": "python", "asgi": "asgi_probe.py:app" },
            "fastapi": { "kind": "python", "asgi": "fastapi_probe.py:app" },
        },
        "routes": [
            { "path": "/filtered/{*rest}", "filters": ["traced"], "handler": "echo" },
            { "path": "/app/{*rest}", "handler": "app" },
            { "path": "/asgi/{*rest}", "handler": "asgi" },
            { "path": "/fastapi/{*rest}", "handler": "fastapi" },
        ],
    });
    if let Some(telemetry) = telemetry {
        manifest["telemetry"] = telemetry;
    }
    if let Some(upstream) = upstream {
        let host = upstream.trim_start_matches("http://");
        manifest["plugins"]["app"]["config"] = json!({ "upstream": upstream });
        manifest["plugins"]["app"]["capabilities"] = json!({ "outbound_http": [host] });
    }
    serde_json::to_string_pretty(&manifest).expect("JSON")
}

/// Starts a host on [`manifest`] with the probe files next to it.
async fn start(telemetry: Option<Value>, upstream: Option<&str>) -> Host {
    let host = Host::builder(manifest(telemetry, upstream))
        .file("trace_report.py", REPORT)
        .file("app_probe.py", APP)
        .file("asgi_probe.py", ASGI)
        .file("fastapi_probe.py", FASTAPI)
        .start();
    host.wait_ready().await;
    host
}

/// The three `TypeError` messages the report collects.
fn assert_type_errors(path: &str, report: &Value) {
    let errors: Vec<&str> = report["errors"].as_array().map(|e| e.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert_eq!(errors.len(), 3, "{path}: every wrong type raised TypeError: {report}");
    assert!(errors[0].contains("attribute key must be a str, got int"), "{path}: {}", errors[0]);
    assert!(errors[1].contains("'probe.list' must be str, int, float or bool, got list"), "{path}: {}", errors[1]);
    assert!(errors[2].contains("'k' must be str, int, float or bool, got NoneType"), "{path}: {}", errors[2]);
}

#[tokio::test]
async fn with_tracing_off_covet_trace_is_a_no_op_in_every_form() {
    let host = start(None, None).await;
    for client in [host.http1(), host.http2()] {
        for path in REPORT_PATHS {
            let reply = client.get(path).await.expect("response");
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            let report = reply.json();
            assert_eq!(report["recording"], json!(false), "{path}: {report}");
            assert_eq!(report["traceparent"], Value::Null, "{path}: no span, no traceparent: {report}");
            assert_type_errors(path, &report);
        }
        let tenant = client.get("/fastapi/async").await.expect("response").json();
        assert_eq!(tenant["tenant"], "acme", "the FastAPI dependency ran: {tenant}");
    }
}

#[tokio::test]
async fn with_tracing_off_the_traced_filter_passes_requests_and_injects_nothing() {
    let host = start(None, None).await;
    for client in [host.http1(), host.http2()] {
        let reply = client.send(http::Method::GET, "/filtered/x", &[("traceparent", INCOMING)], "").await.expect("response");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-python-traceparent"), Some("none"), "the filter saw no span");
        assert_eq!(reply.header("x-python-recording"), Some("false"));
        let echoed = reply.json();
        assert_eq!(echoed["label"], "echo", "the native handler answered: {echoed}");
        assert_eq!(echoed["headers"]["x-python-traceparent"], Value::Null, "nothing injected, even with a client traceparent: {echoed}");
    }
}

/// A sampled incoming trace context.
const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Tracing on, every trace sampled, exported to `collector` in 50 ms batches.
fn traced(collector: &Collector) -> Value {
    json!({
        "service_name": "covet-python-e2e",
        "otlp": { "endpoint": collector.endpoint(), "protocol": collector.protocol(), "timeout": "2s" },
        "tracing": { "sample_ratio": 1.0, "batch_delay": "50ms" },
    })
}

/// The incoming `traceparent` of request `n` (its own trace) and that trace's id.
fn incoming(n: usize) -> (String, String) {
    let trace = format!("7e57{n:028x}");
    (format!("00-{trace}-00f067aa0ba902b7-01"), trace)
}

/// `(trace id, span id, flags)` of a `traceparent`.
fn parts(traceparent: &str) -> (String, String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "a traceparent: {traceparent:?}");
    (fields[1].to_owned(), fields[2].to_owned(), fields[3].to_owned())
}

/// The one span named `name` among `spans`.
fn one<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found: Vec<&ExportedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name:?} span among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    found[0]
}

/// The plugin that answers `path`.
fn plugin_of(path: &str) -> &'static str {
    ["app", "asgi", "fastapi"].into_iter().find(|p| path.starts_with(&format!("/{p}/"))).expect("a report path")
}

/// A server that answers with the `traceparent` it received, as JSON.
async fn traceparent_echo() -> String {
    let addr = serve_http1(|req: Request<Incoming>| async move {
        let seen = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = json!({ "traceparent": seen }).to_string();
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
    })
    .await;
    format!("http://{addr}")
}

#[tokio::test]
async fn with_tracing_on_each_form_writes_to_its_own_plugin_span() {
    let collector = Collector::grpc().await;
    let host = start(Some(traced(&collector)), None).await;
    let mut requests = tokio::task::JoinSet::new();
    for (n, path) in REPORT_PATHS.iter().cycle().take(3 * REPORT_PATHS.len()).enumerate() {
        let client = if n % 2 == 0 { host.http1() } else { host.http2() };
        requests.spawn(async move {
            let (traceparent, trace) = incoming(n);
            let reply = client.send(http::Method::GET, path, &[("traceparent", traceparent.as_str())], "").await.expect("response");
            (*path, trace, reply.status, reply.json())
        });
    }
    let replies = requests.join_all().await;
    for (path, trace, status, report) in &replies {
        assert_eq!(*status, 200, "{path}: {report}");
        assert_eq!(report["recording"], json!(true), "{path}: {report}");
        assert_type_errors(path, report);
        let traceparent = report["traceparent"].as_str().unwrap_or_else(|| panic!("{path}: a traceparent: {report}"));
        let (seen_trace, span_id, flags) = parts(traceparent);
        assert_eq!((&seen_trace, flags.as_str()), (trace, "01"), "{path}: its own request's trace, never another's: {report}");

        let spans = collector.trace(trace).await;
        let server = spans.iter().find(|s| s.kind == "server").expect("the server span");
        let plugin = one(&spans, &format!("{} handle", plugin_of(path)));
        assert_eq!(plugin.span_id, span_id, "{path}: traceparent() names the plugin call's span");
        assert_eq!(plugin.parent_span_id, server.span_id, "{path}: the plugin span is a child of the server span");
        assert_eq!(plugin.attr("covet.plugin.kind"), json!("python"), "{path}");
        assert_eq!(plugin.attr("probe.kind"), json!("python"), "{path}: {plugin:?}");
        assert_eq!(plugin.attr("probe.int"), json!(7), "{path}");
        assert_eq!(plugin.attr("probe.float"), json!(1.5), "{path}");
        assert_eq!(plugin.attr("probe.bool"), json!(false), "{path}");
        assert_eq!(plugin.attr("probe.list"), Value::Null, "{path}: a refused value is not set");
        assert_eq!(plugin.event("probe.event"), json!({ "probe.n": 1 }), "{path}");
    }
}

#[tokio::test]
async fn with_tracing_on_an_outbound_call_from_python_is_a_child_of_the_plugin_span() {
    let collector = Collector::grpc().await;
    let upstream = traceparent_echo().await;
    let host = start(Some(traced(&collector)), Some(&upstream)).await;
    let (traceparent, trace) = incoming(1000);
    let reply = host.http1().send(http::Method::GET, "/app/outbound", &[("traceparent", traceparent.as_str())], "").await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();
    let (_, plugin_id, _) = parts(seen["traceparent"].as_str().expect("the endpoint's traceparent"));
    let upstream_saw = seen["upstream"]["traceparent"].as_str().unwrap_or_else(|| panic!("the server got a traceparent: {seen}"));
    let (upstream_trace, client_id, flags) = parts(upstream_saw);
    assert_eq!((upstream_trace.as_str(), flags.as_str()), (trace.as_str(), "01"), "the call carries the request's trace");

    let spans = collector.trace(&trace).await;
    let plugin = one(&spans, "app handle");
    assert_eq!(plugin.span_id, plugin_id);
    let client = spans.iter().find(|s| s.kind == "client").unwrap_or_else(|| panic!("a client span: {spans:?}"));
    assert_eq!(client.span_id, client_id, "the server's parent is the call's client span");
    assert_eq!(client.parent_span_id, plugin.span_id, "the client span is a child of the Python plugin call's span");
    assert_eq!(client.attr("http.response.status_code"), json!(200), "{client:?}");
}

#[tokio::test]
async fn with_tracing_on_a_spawned_task_runs_without_the_request_span() {
    let collector = Collector::grpc().await;
    let host = start(Some(traced(&collector)), None).await;
    let (traceparent, trace) = incoming(2000);
    let reply = host.http1().send(http::Method::GET, "/app/spawned", &[("traceparent", traceparent.as_str())], "").await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(parts(seen["traceparent"].as_str().expect("the endpoint's traceparent")).0, trace);
    assert_eq!(seen["background"], Value::Null, "covet.spawn's task has no span: {seen}");
    let spans = collector.trace(&trace).await;
    assert_eq!(one(&spans, "app handle").attr("probe.background"), Value::Null, "nothing the task set reached the request's span");
}
