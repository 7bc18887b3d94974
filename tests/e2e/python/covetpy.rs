//! The CovetPy API end to end: the CovetPy document examples in
//! `python-plugins/covetpy/` (hello world, the alpha app, the "Python-First
//! API" and "Type Safety" examples, the API reference's routes with pydantic
//! models, the middleware demo) and covet's `features.py`, each served by the
//! real binary as a `kind: python, app:` plugin with the project venv
//! (pydantic), spoken to over HTTP/1.1 and h2c. Checks `Response(obj)` JSON
//! and `status=201`, 422s with per-field pydantic errors, `-> List[User]`
//! filtering, middleware order, short-circuits and errors through
//! `call_next`, header/cookie/Enum/list parameters and `request.state`.

use covet_e2e::{Client, Host, workspace_root};
use http::Method;
use serde_json::{Value, json};

use crate::common::assert_problem;

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// A host serving `python-plugins/covetpy/{file}`'s `app` on every path,
/// with the project venv (`scripts/python-env.sh`) for pydantic.
async fn serve(file: &str) -> Host {
    let venv = workspace_root().join(".venv");
    assert!(venv.join("bin/python").exists(), "{} is missing: run `bash scripts/python-env.sh`", venv.display());
    let app = workspace_root().join("python-plugins/covetpy").join(file);
    let manifest = json!({
        "listen": [{ "addr": "127.0.0.1:0" }],
        "python": { "venv": venv, "threads": 2 },
        "plugins": { "covetpy": { "kind": "python", "app": format!("{}:app", app.display()) } },
        "routes": [{ "path": "/", "handler": "covetpy" }, { "path": "/{*rest}", "handler": "covetpy" }],
    });
    Host::start(serde_json::to_string_pretty(&manifest).expect("JSON")).await
}

fn clients(host: &Host) -> [Client; 2] {
    [host.http1(), host.http2()]
}

async fn post(client: &Client, path: &str, body: Value) -> covet_e2e::Reply {
    client.send(Method::POST, path, JSON, body.to_string()).await.expect("response")
}

/// `(loc, type)` of each entry of a 422's details.
fn locs_and_types(error: &Value) -> Vec<(Value, Value)> {
    error["details"].as_array().expect("details").iter().map(|e| (e["loc"].clone(), e["type"].clone())).collect()
}

#[tokio::test]
async fn hello_world_and_the_alpha_app_run_unchanged() {
    let hello = serve("hello.py").await;
    for client in clients(&hello) {
        let reply = client.get("/").await.expect("response");
        assert_eq!((reply.status.as_u16(), reply.header("content-type")), (200, Some("application/json")));
        assert_eq!(reply.json(), json!({ "message": "Hello, World!" }));
    }
    let alpha = serve("alpha.py").await;
    let client = alpha.http1();
    assert_eq!(client.get("/").await.expect("response").json()["framework"], "CovetPy");
    assert_eq!(client.get("/health").await.expect("response").json()["status"], "healthy");
    let user = client.get("/api/users/42").await.expect("response").json();
    assert_eq!(user, json!({ "user_id": 42, "name": "User 42", "type": "example" }));
    let created = client.send(Method::POST, "/api/users", &[], "").await.expect("response");
    assert_eq!(created.json()["status"], "success");
    let bad = client.get("/api/users/abc").await.expect("response");
    let error = assert_problem(&bad, 422, "VALIDATION_ERROR");
    assert_eq!(locs_and_types(&error), [(json!(["path", "user_id"]), json!("int_parsing"))]);
}

#[tokio::test]
async fn response_of_an_object_is_json_and_status_201_sets_the_status() {
    let host = serve("python_first.py").await;
    let client = host.http2();
    let created = post(&client, "/users", json!({ "name": "ada", "email": "ada@x.io" })).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(created.json()["name"], "ada");
    post(&client, "/users", json!({ "name": "bob", "email": "bob@x.io", "active": false })).await;

    let one = client.get("/users/1").await.expect("response");
    assert_eq!((one.status.as_u16(), one.json()["email"].clone()), (200, json!("ada@x.io")));
    let listed = client.get("/users").await.expect("response").json();
    assert_eq!(
        listed,
        json!([{ "id": 1, "name": "ada", "email": "ada@x.io", "active": true },
               { "id": 2, "name": "bob", "email": "bob@x.io", "active": false }]),
        "-> List[User] keeps password_hash out"
    );
    let inactive = client.get("/users?active=false&limit=5").await.expect("response").json();
    assert_eq!(inactive.as_array().map(Vec::len), Some(1), "{inactive}");
}

#[tokio::test]
async fn pydantic_bodies_are_validated_with_a_422_per_field_and_returns_filtered() {
    let host = serve("api_reference.py").await;
    for client in clients(&host) {
        let bad = post(&client, "/users", json!({ "username": "a!", "password": "nodigitsX", "age": 7 })).await;
        let error = assert_problem(&bad, 422, "VALIDATION_ERROR");
        assert_eq!(
            locs_and_types(&error),
            [
                (json!(["body", "username"]), json!("string_too_short")),
                (json!(["body", "email"]), json!("missing")),
                (json!(["body", "password"]), json!("value_error")),
                (json!(["body", "age"]), json!("greater_than_equal")),
            ]
        );
        assert!(error["details"][2]["msg"].as_str().is_some_and(|m| m.contains("Password must contain digit")), "{error}");
        let not_json = client.send(Method::POST, "/users", JSON, "{nope").await.expect("response");
        assert_eq!(assert_problem(&not_json, 422, "VALIDATION_ERROR")["details"][0]["type"], "json_invalid");
    }
    let client = host.http1();
    let good = json!({ "username": "ada_l", "email": "ada@x.io", "password": "Secret123", "age": 36 });
    let created = post(&client, "/users", good).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let ada = json!({ "id": 1, "username": "ada_l", "email": "ada@x.io", "age": 36, "tags": [] });
    assert_eq!(created.json(), ada, "-> User drops the stored password");
    assert_eq!(client.get("/users").await.expect("response").json(), json!([ada]));

    let updated = client.send(Method::PUT, "/users/1", JSON, r#"{"age": 37}"#).await.expect("response");
    assert_eq!(updated.json()["age"], 37, "{}", updated.text());
    let missing = client.send(Method::PUT, "/users/9", JSON, "{}").await.expect("response");
    assert_problem(&missing, 404, "NOT_FOUND");
    let deleted = client.send(Method::DELETE, "/users/1", &[], "").await.expect("response");
    assert_eq!((deleted.status.as_u16(), deleted.body.len()), (204, 0));
}

#[tokio::test]
async fn the_middleware_demo_wraps_every_request_in_order() {
    let host = serve("middleware_demo.py").await;
    let client = host.http1();
    let home = client.get("/").await.expect("response");
    assert_eq!(home.status, 200);
    assert_eq!(home.json()["message"], "CovetPy Middleware Demo");
    assert_eq!(home.header("access-control-allow-origin"), Some("*"));
    assert!(home.header("x-process-time").is_some_and(|t| t.parse::<f64>().is_ok()), "{:?}", home.headers);
    assert!(host.log_line(&["[REQUEST] GET http://127.0.0.1:", "/"]).await.is_some(), "printed to the log:\n{}", host.logs());

    let error = client.get("/error").await.expect("response");
    assert_eq!(error.status, 500);
    let body = error.json();
    assert_eq!((body["error"].clone(), body["type"].clone()), (json!(true), json!("ValueError")));
    assert!(error.header("x-process-time").is_some(), "the outermost middleware ran after the error one");

    let echo = client.send(Method::POST, "/echo?x=1", JSON, r#"{"test": "data"}"#).await.expect("response").json();
    assert_eq!(echo["data"], json!({ "test": "data" }));
    assert!(echo["url"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:") && u.ends_with("/echo?x=1")), "{echo}");
    let unknown = client.get("/no/such/path").await.expect("response");
    assert_problem(&unknown, 404, "NOT_FOUND");
    assert!(unknown.header("x-process-time").is_none(), "the host's own 404 never reaches the app");
}

#[tokio::test]
async fn header_cookie_enum_and_list_parameters_and_request_state() {
    let host = serve("features.py").await;
    for client in clients(&host) {
        let headers = [("user-agent", "e2e/1"), ("cookie", "session=s1; other=x"), ("x-user", "ada")];
        let reply = client.send(Method::GET, "/items?color=red&tags=a&tags=b&size=2&limit=5", &headers, "").await.expect("response");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.json(),
            json!({ "color": "red", "tags": ["a", "b"], "size": 2, "limit": 5, "user_agent": "e2e/1",
                    "session": "s1", "user": "ada", "trail": ["outer", "inner", "endpoint"] })
        );
        assert_eq!(reply.header("x-trail"), Some("outer,inner,endpoint,inner-out,outer-out"));

        let bad = client.send(Method::GET, "/items?color=pink&limit=0&tags=x", &[], "").await.expect("response");
        let error = assert_problem(&bad, 422, "VALIDATION_ERROR");
        assert_eq!(
            locs_and_types(&error),
            [
                (json!(["query", "color"]), json!("enum")),
                (json!(["query", "limit"]), json!("greater_than_equal")),
                (json!(["cookie", "session"]), json!("missing")),
            ]
        );
        assert_eq!(error["details"][0]["msg"], "Input should be 'red' or 'green'");
        assert_eq!(bad.header("x-trail"), Some("outer,inner,inner-out,outer-out"), "middleware saw the 422");
    }
}

#[tokio::test]
async fn middleware_short_circuits_and_errors_keep_their_structured_bodies() {
    let host = serve("features.py").await;
    let client = host.http1();
    let blocked = client.send(Method::GET, "/items?color=red", &[("x-block", "yes")], "").await.expect("response");
    assert_eq!((blocked.status.as_u16(), blocked.json()), (403, json!({ "blocked": true })));
    assert!(blocked.header("x-trail").is_none(), "nothing after the short-circuit ran");

    let item = client.send(Method::GET, "/items/3", &[("x-token", "tok")], "").await.expect("response");
    assert_eq!(item.json(), json!({ "id": 3, "name": "tok" }), "a sync endpoint's -> Item drops `secret`");
    let missing = client.send(Method::GET, "/items/0", &[("x-token", "tok")], "").await.expect("response");
    let error = assert_problem(&missing, 404, "NOT_FOUND");
    assert_eq!(error["message"], "no item 0");
    assert_eq!(missing.header("x-trail"), Some("outer,inner,inner-out,outer-out"));
    let no_token = client.get("/items/3").await.expect("response");
    assert_eq!(locs_and_types(&assert_problem(&no_token, 422, "VALIDATION_ERROR")), [(json!(["header", "x-token"]), json!("missing"))]);

    let broken = client.get("/broken").await.expect("response");
    let error = assert_problem(&broken, 500, "PLUGIN_ERROR");
    assert!(!broken.text().contains("not a number"), "the mismatch stays in the log: {error}");
    assert!(
        host.log_line(&["ResponseValidationError", "/broken"]).await.is_some(),
        "the mismatch is logged with the route:\n{}",
        host.logs()
    );
}
