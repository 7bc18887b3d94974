//! Python filters (`kind: python, filter: FILE.py`) end to end: the example
//! audit filter (`python-plugins/filters/audit.py`) and an async filter the
//! test writes, in chains with native and WASM plugins over HTTP/1.1 and
//! h2c. A short-circuit answers without reaching the handler, metadata and
//! header edits flow to later plugins of every kind, `on_response` edits
//! reach the client, and a failing filter costs its request a 500.

use http::Method;
use serde_json::json;

use super::decorator::{PyGateway, example, mounted};
use crate::common::assert_problem;

/// An async filter: refuses `/…/blocked` with 451, replaces the response of
/// `/…/replace`, tags the rest.
const ASYNC_FILTER: &str = r#"
import asyncio
from covet import JSONResponse, Response

async def on_request(request):
    await asyncio.sleep(0)
    if request.path.endswith("/blocked"):
        return Response("blocked by an async filter\n", status_code=451, media_type="text/plain")
    request.metadata["asyncf.seen"] = "yes"
    request.headers["x-asyncf"] = "1"

async def on_response(request, response):
    await asyncio.sleep(0)
    if request.path.endswith("/replace"):
        return JSONResponse({"replaced": response.status_code, "bytes": len(response.body)}, status_code=203)
    response.headers["x-async-filter"] = request.metadata.get("asyncf.seen", "no")
"#;

/// A filter that fails in `on_request` when asked to.
const FAILING_FILTER: &str = r#"
def on_request(request):
    if "fail" in request.query:
        raise KeyError("filter-secret-7")
"#;

fn audit() -> String {
    example("filters/audit.py")
}

/// The probe behind audit (Python) → tag (native headers filter rendering the
/// Python filter's metadata into a response header); users behind tag → audit.
fn audited_users() -> PyGateway {
    let tag = json!({ "response": { "set": { "x-tenant-seen": "{audit.tenant}" } } });
    mounted(&["tag", "audit"], &["audit", "tag"])
        .filter("audit", &audit(), json!({ "tenants": ["acme", "globex"] }))
        .native("tag", "covet-headers", tag)
}

#[tokio::test]
async fn a_python_filter_short_circuits_with_its_response() {
    let host = audited_users().start().await;
    for client in [host.http1(), host.http2()] {
        let refused = client.get("/probe/meta").await.expect("response");
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert_eq!(refused.header("content-type"), Some("application/json"));
        assert_eq!(refused.json(), json!({ "error": "missing_tenant", "header": "x-tenant" }));
        let unknown = client.send(Method::GET, "/probe/meta", &[("x-tenant", "initech")], "").await.expect("response");
        assert_eq!(unknown.status, 403);
        assert_eq!(unknown.json()["tenant"], "initech");
    }
}

#[tokio::test]
async fn metadata_and_headers_from_a_python_filter_reach_later_plugins() {
    let host = audited_users().start().await;
    let reply = host.http1().send(Method::GET, "/probe/meta", &[("x-tenant", "acme")], "").await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["metadata"]["audit.tenant"], "acme", "the Python handler read the filter's metadata: {seen}");
    let request_id = reply.header("x-request-id").expect("x-request-id");
    assert_eq!(seen["audit_id"], request_id, "the filter's header edit reached the handler");
    assert_eq!(reply.header("x-tenant-seen"), Some("acme"), "the native headers filter rendered {{audit.tenant}}");
    assert_eq!(reply.header("x-audit"), Some("acme 200"), "the Python on_response ran");
}

#[tokio::test]
async fn on_response_sees_the_final_status() {
    let host = audited_users().start().await;
    let headers = [("x-tenant", "globex")];
    let missing = host.http2().send(Method::GET, "/users/99", &headers, "").await.expect("response");
    assert_problem(&missing, 404, "NOT_FOUND");
    assert_eq!(missing.header("x-audit"), Some("globex 404"));
    assert_eq!(
        missing.header("x-tenant-seen"),
        Some("globex"),
        "a native filter before the Python one still sees its metadata on the way out"
    );
    let found = host.http2().send(Method::GET, "/users/1", &headers, "").await.expect("response");
    assert_eq!(found.json()["tenant"], "globex");
}

#[tokio::test]
async fn an_async_filter_short_circuits_and_edits_both_ways() {
    let host = PyGateway::new()
        .filter("asyncf", "asyncf.py", json!(null))
        .file("asyncf.py", ASYNC_FILTER)
        .native("echo", "covet-test-plugin", json!({ "label": "native-echo" }))
        .route("/a/{*rest}", &["asyncf"], "echo")
        .start()
        .await;
    for client in [host.http1(), host.http2()] {
        let blocked = client.get("/a/blocked").await.expect("response");
        assert_eq!(blocked.status, 451);
        assert_eq!(blocked.text(), "blocked by an async filter\n");
        assert_eq!(blocked.header("content-type"), Some("text/plain; charset=utf-8"));
        let passed = client.get("/a/open").await.expect("response");
        assert_eq!(passed.status, 200, "{}", passed.text());
        assert_eq!(passed.json()["headers"]["x-asyncf"], "1", "the native handler saw the async filter's header");
        assert_eq!(passed.header("x-async-filter"), Some("yes"));
        let replaced = client.get("/a/replace").await.expect("response");
        assert_eq!(replaced.status, 203);
        let body = replaced.json();
        assert_eq!(body["replaced"], 200, "on_response saw the handler's response: {body}");
        assert!(body["bytes"].as_u64().is_some_and(|n| n > 0), "{body}");
        assert_eq!(replaced.header("x-async-filter"), None, "the returned Response replaced the edited one");
    }
}

#[tokio::test]
async fn a_python_filter_in_one_chain_with_native_and_wasm_filters() {
    let host = mounted(&[], &["native", "ab", "audit"])
        .native("native", "covet-test-plugin", json!({ "label": "n", "metadata": { "jwt.sub": "alice" } }))
        .wasm("ab", "ab_tagger", json!({ "variants": { "a": 1, "b": 1 } }))
        .filter("audit", &audit(), json!(null))
        .wasm("wecho", "covet_wasm_probe", json!({ "metadata_keys": ["audit.tenant", "jwt.sub"] }))
        .route("/to-wasm", &["audit"], "wecho")
        .start()
        .await;
    let tenant = [("x-tenant", "acme")];
    let reply = host.http2().send(Method::GET, "/probe/meta", &tenant, "").await.expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["metadata"]["jwt.sub"], "alice", "set by the native filter: {seen}");
    let variant = seen["metadata"]["ab.variant"].as_str().expect("set by the WASM filter");
    assert_eq!(seen["metadata"]["audit.tenant"], "acme", "set by the Python filter");
    assert_eq!(reply.header("x-ab-variant"), Some(variant), "the WASM on_response ran");
    assert_eq!(reply.header("x-audit"), Some("acme 200"), "the Python on_response ran");
    assert_eq!(reply.header("x-test-label"), Some("n"), "the native on_response ran");

    let wasm = host.http1().send(Method::GET, "/to-wasm", &tenant, "").await.expect("response");
    let echoed = wasm.json();
    assert_eq!(
        echoed["metadata"]["audit.tenant"], "acme",
        "a WASM handler read the Python filter's metadata: {echoed}"
    );
    assert_eq!(echoed["headers"]["x-audit-id"], wasm.header("x-request-id").expect("request id"));
}

#[tokio::test]
async fn a_failing_filter_costs_its_request_a_500_and_nothing_else() {
    let host = PyGateway::new()
        .filter("failing", "failing.py", json!(null))
        .file("failing.py", FAILING_FILTER)
        .native("echo", "covet-test-plugin", json!({ "label": "e" }))
        .route("/f", &["failing"], "echo")
        .start()
        .await;
    let failed = host.http1().get("/f?fail=1").await.expect("response");
    let error = assert_problem(&failed, 500, "PLUGIN_ERROR");
    assert!(!failed.text().contains("filter-secret-7"), "{error}");
    assert!(host.log_line(&["filter-secret-7"]).await.is_some(), "logged:\n{}", host.logs());
    assert_eq!(host.http1().get("/f").await.expect("response").status, 200);
}
