//! `covet.trace` end to end: a Python filter (`python-plugins/filters/traced.py`),
//! a decorator app (sync and async endpoints), a plain ASGI app and an
//! unmodified FastAPI app (from the project venv) each call every function
//! of `covet.trace` and report what they saw, served by the real binary.
//!
//! With tracing off (no `telemetry:` block) the calls are harmless no-ops:
//! every request is a 200, `is_recording()` is False, `traceparent()` is
//! None, no header is injected, and wrong argument types still raise a
//! `TypeError` naming the argument.

use covet_e2e::{Host, workspace_root};
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
/// `/filtered/…`, and the three apps; `telemetry` as given (None: tracing off).
fn manifest(telemetry: Option<Value>) -> String {
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
    serde_json::to_string_pretty(&manifest).expect("JSON")
}

/// Starts a host on [`manifest`] with the probe files next to it.
async fn start(telemetry: Option<Value>) -> Host {
    let host = Host::builder(manifest(telemetry))
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
    let host = start(None).await;
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
    let host = start(None).await;
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
