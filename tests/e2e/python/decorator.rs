//! Decorator apps (`kind: python, app: FILE.py:ATTR`) end to end: the
//! example users service (`python-plugins/users/app.py`) and a probe app the
//! test writes next to the manifest, served by the real binary and spoken to
//! over HTTP/1.1 and h2c. Typed path and query parameters, 422 details,
//! `HTTPException`, JSON bodies, return-value conversion, sync and async
//! handlers, exceptions (500 without the traceback, which goes to the log),
//! and the host's own 404/405 inside the app's mount.
//!
//! [`PyGateway`] (also used by `filters.rs`) writes manifests with Python,
//! native and WASM plugins.

use covet_e2e::{Client, Host, workspace_root};
use http::Method;
use serde_json::{Map, Value, json};

use crate::common::{PATIENCE, assert_problem};

/// A manifest (JSON, which is YAML) with Python, native and WASM plugins.
#[derive(Default)]
pub struct PyGateway {
    plugins: Map<String, Value>,
    routes: Vec<Value>,
    files: Vec<(&'static str, &'static str)>,
}

/// The absolute path of a file under `python-plugins/`.
pub fn example(relative: &str) -> String {
    workspace_root().join("python-plugins").join(relative).display().to_string()
}

impl PyGateway {
    pub fn new() -> PyGateway {
        PyGateway::default()
    }

    /// A decorator app: `target` is `FILE.py:ATTR` (relative to the manifest's directory, or absolute).
    pub fn app(mut self, name: &str, target: &str, config: Value) -> PyGateway {
        self.plugins.insert(name.into(), json!({ "kind": "python", "app": target, "config": config }));
        self
    }

    /// A Python filter module.
    pub fn filter(mut self, name: &str, file: &str, config: Value) -> PyGateway {
        self.plugins.insert(name.into(), json!({ "kind": "python", "filter": file, "config": config }));
        self
    }

    /// A native plugin from crate `crate_name`.
    pub fn native(mut self, name: &str, crate_name: &str, config: Value) -> PyGateway {
        let path = covet_e2e::plugin(crate_name);
        self.plugins.insert(name.into(), json!({ "kind": "native", "path": path, "config": config }));
        self
    }

    /// A WASM plugin from component `file` (see `wasm::component`).
    pub fn wasm(mut self, name: &str, file: &str, config: Value) -> PyGateway {
        self.plugins
            .insert(name.into(), json!({ "kind": "wasm", "path": crate::wasm::component(file), "config": config }));
        self
    }

    /// A route for `path` through `filters` to `handler`.
    pub fn route(mut self, path: &str, filters: &[&str], handler: &str) -> PyGateway {
        self.routes.push(json!({ "path": path, "filters": filters, "handler": handler }));
        self
    }

    /// Writes `contents` as `name` next to the manifest.
    pub fn file(mut self, name: &'static str, contents: &'static str) -> PyGateway {
        self.files.push((name, contents));
        self
    }

    /// The manifest text.
    pub fn yaml(&self) -> String {
        let manifest = json!({
            "listen": [{ "addr": "127.0.0.1:0" }],
            "python": { "threads": 2 },
            "plugins": self.plugins,
            "routes": self.routes,
        });
        serde_json::to_string_pretty(&manifest).expect("JSON")
    }

    /// Starts a host on it and waits until it is ready.
    pub async fn start(self) -> Host {
        let mut builder = Host::builder(self.yaml());
        for (name, contents) in self.files {
            builder = builder.file(name, contents);
        }
        let host = builder.start();
        host.wait_ready().await;
        host
    }
}

/// A probe app: sync and async handlers, every kind of return value, an
/// `HTTPException` and an uncaught exception.
const PROBE: &str = r#"
import asyncio
from covet import Covet, HTTPException, Request, Response

app = Covet()

@app.get("/probe/calc")
def calc(x: float, flag: bool = False, label: str | None = None):
    return {"x": x, "flag": flag, "label": label, "sync": True}

@app.get("/probe/double/{n}")
async def double(n: int):
    await asyncio.sleep(0)
    return {"n": n * 2, "sync": False}

@app.get("/probe/conflict")
async def conflict():
    raise HTTPException(409, "already taken", headers={"x-why": "duplicate"})

@app.get("/probe/boom")
def boom():
    raise RuntimeError("probe-secret-42 must stay in the log")

@app.get("/probe/text")
def text():
    return "plain words"

@app.get("/probe/raw")
def raw():
    return Response(b"\x00\x01", status_code=202, headers={"x-raw": "yes"}, media_type="application/x-probe")

@app.get("/probe/nothing")
def nothing():
    return None

@app.get("/probe/meta")
async def meta(request: Request):
    return {"metadata": request.metadata, "audit_id": request.headers.get("x-audit-id"),
            "config": app.config, "path": request.path, "query": dict(request.query)}
"#;

fn users_config() -> Value {
    json!({ "seed": [{ "name": "ada", "email": "ada@example.com" }, { "name": "alan", "email": "alan@example.com" }] })
}

/// The users example on `/users` and `/users/{*rest}`, the probe on `/probe/{*rest}`.
pub fn users_and_probe() -> PyGateway {
    mounted(&[], &[])
}

/// The same two apps, behind these filters (the plugins are the caller's to add).
pub fn mounted(users_filters: &[&str], probe_filters: &[&str]) -> PyGateway {
    PyGateway::new()
        .app("users", &format!("{}:app", example("users/app.py")), users_config())
        .app("probe", "probe.py:app", json!({ "greeting": "hi" }))
        .file("probe.py", PROBE)
        .route("/users", users_filters, "users")
        .route("/users/{*rest}", users_filters, "users")
        .route("/probe/{*rest}", probe_filters, "probe")
}

fn clients(host: &Host) -> [Client; 2] {
    [host.http1(), host.http2()]
}

#[tokio::test]
async fn an_int_path_parameter_arrives_as_a_json_number_over_both_protocols() {
    let host = users_and_probe().start().await;
    for client in clients(&host) {
        let reply = client.get("/users/2").await.expect("response");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let user = reply.json();
        assert_eq!(user["id"], json!(2), "a number, not \"2\": {user}");
        assert_eq!(user["name"], "alan");
    }
}

#[tokio::test]
async fn a_path_parameter_that_is_not_an_int_is_a_422_naming_it() {
    let host = users_and_probe().start().await;
    for client in clients(&host) {
        let reply = client.get("/users/abc").await.expect("response");
        let error = assert_problem(&reply, 422, "VALIDATION_ERROR");
        let details = error["details"].as_array().expect("details is the list of errors");
        assert_eq!(details.len(), 1, "{error}");
        assert_eq!(details[0]["loc"], json!(["path", "user_id"]));
        assert_eq!(details[0]["type"], "int_parsing");
        assert!(details[0]["msg"].as_str().is_some_and(|m| m.contains("integer")), "{error}");
    }
}

#[tokio::test]
async fn query_parameters_are_converted_and_defaulted() {
    let host = users_and_probe().start().await;
    let client = host.http1();
    let page = client.get("/users?limit=1&offset=1").await.expect("response").json();
    assert_eq!(page["total"], 2);
    assert_eq!(page["users"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["users"][0]["name"], "alan");
    let defaults = client.get("/users").await.expect("response").json();
    assert_eq!(defaults["users"].as_array().map(Vec::len), Some(2), "limit defaults to 10: {defaults}");

    let calc = client.get("/probe/calc?x=2.5&flag=yes&label=hi%20there").await.expect("response").json();
    assert_eq!(calc, json!({ "x": 2.5, "flag": true, "label": "hi there", "sync": true }));
    let calc = client.get("/probe/calc?x=-1").await.expect("response").json();
    assert_eq!(calc, json!({ "x": -1.0, "flag": false, "label": null, "sync": true }));

    let bad = client.get("/probe/calc?flag=maybe").await.expect("response");
    let error = assert_problem(&bad, 422, "VALIDATION_ERROR");
    let got: Vec<(Value, Value)> =
        error["details"].as_array().expect("details").iter().map(|e| (e["loc"].clone(), e["type"].clone())).collect();
    assert_eq!(got, [(json!(["query", "x"]), json!("missing")), (json!(["query", "flag"]), json!("bool_parsing"))]);
    let bad_float = client.get("/probe/calc?x=wide").await.expect("response");
    assert_eq!(assert_problem(&bad_float, 422, "VALIDATION_ERROR")["details"][0]["type"], "float_parsing");
}

#[tokio::test]
async fn http_exception_answers_its_status_with_the_structured_body_and_its_headers() {
    let host = users_and_probe().start().await;
    for client in clients(&host) {
        let missing = client.get("/users/99").await.expect("response");
        let error = assert_problem(&missing, 404, "NOT_FOUND");
        assert_eq!(error["message"], "user 99 not found");

        let conflict = client.get("/probe/conflict").await.expect("response");
        let error = assert_problem(&conflict, 409, "CONFLICT");
        assert_eq!(error["message"], "already taken");
        assert_eq!(conflict.header("x-why"), Some("duplicate"));
    }
}

#[tokio::test]
async fn users_crud_with_json_bodies() {
    let host = users_and_probe().start().await;
    let client = host.http2();
    let json_type = [("content-type", "application/json")];
    let body = json!({ "name": "grace", "email": "grace@example.com" }).to_string();
    let created = client.send(Method::POST, "/users", &json_type, body).await.expect("response");
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("location"), Some("/users/3"));
    assert_eq!(created.json(), json!({ "id": 3, "active": true, "name": "grace", "email": "grace@example.com" }));

    let update = json!({ "active": false }).to_string();
    let updated = client.send(Method::PUT, "/users/3", &json_type, update).await.expect("response");
    assert_eq!(updated.json()["active"], false, "{}", updated.text());
    let inactive = client.get("/users?active=false").await.expect("response").json();
    assert_eq!(inactive["users"][0]["id"], 3, "{inactive}");

    let deleted = client.send(Method::DELETE, "/users/3", &[], "").await.expect("response");
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    assert_problem(&client.get("/users/3").await.expect("response"), 404, "NOT_FOUND");
}

#[tokio::test]
async fn bad_json_and_wrong_fields_are_422() {
    let host = users_and_probe().start().await;
    let client = host.http1();
    let bad = client.send(Method::POST, "/users", &[], "{not json").await.expect("response");
    let error = assert_problem(&bad, 422, "VALIDATION_ERROR");
    assert_eq!(error["details"][0]["loc"], json!(["body"]));
    assert_eq!(error["details"][0]["type"], "json_invalid");

    let wrong = client.send(Method::POST, "/users", &[], r#"{"name": 5}"#).await.expect("response");
    let error = assert_problem(&wrong, 422, "VALIDATION_ERROR");
    let locs: Vec<&Value> = error["details"].as_array().expect("details").iter().map(|e| &e["loc"]).collect();
    assert_eq!(locs, [&json!(["body", "name"]), &json!(["body", "email"])]);
}

#[tokio::test]
async fn an_exception_is_a_500_without_the_traceback_which_goes_to_the_log() {
    let host = users_and_probe().start().await;
    let reply = host.http1().get("/probe/boom").await.expect("response");
    let error = assert_problem(&reply, 500, "PLUGIN_ERROR");
    let text = reply.text();
    assert!(!text.contains("probe-secret-42") && !text.contains("Traceback") && !text.contains("probe.py"), "{text}");
    assert!(
        host.log_line(&["RuntimeError: probe-secret-42"]).await.is_some(),
        "the exception is logged:\n{}",
        host.logs()
    );
    assert!(host.log_line(&["Traceback"]).await.is_some(), "with its traceback:\n{}", host.logs());
    assert!(host.logs().contains("covet::python"), "under the covet::python target");
    assert_eq!(error["details"]["plugin"], "probe", "{error}");
    let after = host.http1().get("/probe/double/4").await.expect("the host keeps serving");
    assert_eq!(after.json()["n"], 8);
}

#[tokio::test]
async fn sync_and_async_handlers_both_answer_over_both_protocols() {
    let host = users_and_probe().start().await;
    for client in clients(&host) {
        let sync = client.get("/probe/calc?x=1").await.expect("response");
        assert_eq!(sync.json()["sync"], true);
        let asynchronous = client.get("/probe/double/21").await.expect("response");
        assert_eq!(asynchronous.json(), json!({ "n": 42, "sync": false }));
    }
}

#[tokio::test]
async fn return_values_are_converted_by_type() {
    let host = users_and_probe().start().await;
    let client = host.http1();
    let text = client.get("/probe/text").await.expect("response");
    assert_eq!((text.status.as_u16(), text.header("content-type")), (200, Some("text/plain; charset=utf-8")));
    assert_eq!(text.text(), "plain words");
    let raw = client.get("/probe/raw").await.expect("response");
    assert_eq!(
        (raw.status.as_u16(), raw.header("content-type"), raw.header("x-raw")),
        (202, Some("application/x-probe"), Some("yes"))
    );
    assert_eq!(&raw.body[..], b"\x00\x01");
    let nothing = client.get("/probe/nothing").await.expect("response");
    assert_eq!(nothing.status, 204);
    assert!(nothing.body.is_empty());
}

#[tokio::test]
async fn the_app_sees_its_config_and_the_full_request() {
    let host = users_and_probe().start().await;
    let meta = host.http1().get("/probe/meta?a=1&a=2&b=").await.expect("response").json();
    assert_eq!(meta["config"], json!({ "greeting": "hi" }));
    assert_eq!(meta["path"], "/probe/meta");
    assert_eq!(meta["query"], json!({ "a": "2", "b": "" }));
}

#[tokio::test]
async fn inside_the_mount_an_unknown_path_is_404_and_a_wrong_method_405() {
    let host = users_and_probe().start().await;
    for client in clients(&host) {
        let unknown = client.get("/users/1/friends").await.expect("response");
        assert_problem(&unknown, 404, "NOT_FOUND");
        let wrong = client.send(Method::PATCH, "/users/1", &[], "{}").await.expect("response");
        assert_problem(&wrong, 405, "METHOD_NOT_ALLOWED");
        let allow = wrong.header("allow").expect("an Allow header");
        for method in ["GET", "PUT", "DELETE"] {
            assert!(allow.contains(method), "{allow}");
        }
    }
}

#[tokio::test]
async fn get_routes_answer_head_and_path_segments_arrive_decoded() {
    let host = users_and_probe().start().await;
    for client in clients(&host) {
        let head = client.send(Method::HEAD, "/users/1", &[], "").await.expect("response");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty(), "no body for HEAD");
        let encoded = client.get("/users/%32").await.expect("response");
        assert_eq!(encoded.json()["id"], 2, "%32 is 2: {}", encoded.text());
    }
}

#[test]
fn a_signature_covet_cannot_fill_refuses_the_load_naming_route_and_parameter() {
    const BAD: &str =
        "from covet import Covet\napp = Covet()\n\n@app.get('/x/{n}')\ndef x(n: int, when: complex):\n    return {}\n";
    let manifest = PyGateway::new().app("bad", "bad.py:app", Value::Null).route("/x/{*rest}", &[], "bad").yaml();
    let checked = Host::builder(manifest).file("bad.py", BAD).check(PATIENCE);
    assert_eq!(checked.status.code(), Some(2), "{}", checked.stderr);
    for needle in
        ["plugins.yaml:", "covet route '/x/{n}' (handler x)", "parameter `when` has an unsupported annotation"]
    {
        assert!(checked.stderr.contains(needle), "{needle:?} in:\n{}", checked.stderr);
    }
}
