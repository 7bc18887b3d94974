use covet_plugin_api::{
    Config, Flow, Plugin,
    testing::{TestRequest, TestResponse},
};
use serde_json::{Value, json};

use crate::Headers;

fn load(config: Value) -> Result<Headers, String> {
    Headers::init(Config::from_json(&config.to_string()))
}

fn refusal(config: Value) -> String {
    match load(config) {
        Ok(_) => panic!("config was accepted"),
        Err(message) => message,
    }
}

/// Runs `on_request` with `config` and returns the request as the handler would see it.
fn after_request(config: Value, mut req: TestRequest) -> TestRequest {
    let plugin = load(config).expect("config is valid");
    assert!(matches!(plugin.on_request(&mut req.view()), Flow::Continue));
    req
}

/// Runs `on_response` with `config` on `resp` and returns it.
fn after_response(config: Value, mut req: TestRequest, mut resp: TestResponse) -> TestResponse {
    let plugin = load(config).expect("config is valid");
    plugin.on_response(&mut req.view(), &mut resp.view());
    resp
}

fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn request_set_renders_metadata_and_request_facts() {
    let config = json!({"request": {"set": {
        "X-User": "{jwt.sub}",
        "x-trace": "{request.id} {request.method} {request.path} from {client.ip}",
    }}});
    let req = TestRequest::get("/users/7?full=1").client("10.1.2.3:5555").metadata("jwt.sub", "alice");
    let req = after_request(config, req);
    assert_eq!(req.get_header("x-user"), Some("alice"));
    assert_eq!(req.get_header("x-trace"), Some("test-request GET /users/7 from 10.1.2.3"));
}

#[test]
fn missing_metadata_skips_the_header_instead_of_sending_it_empty() {
    let config = json!({"request": {
        "set": {"x-user": "user={jwt.sub}", "x-kept": "{jwt.sub}"},
        "add": {"x-key": "{ratelimit.key}"},
    }});
    let req = TestRequest::get("/").header("x-kept", "from-client");
    let req = after_request(config, req);
    assert_eq!(req.get_header("x-user"), None);
    assert_eq!(req.get_header("x-key"), None);
    assert_eq!(req.get_header("x-kept"), Some("from-client"), "a skipped set leaves the header alone");
}

#[test]
fn metadata_that_is_present_but_empty_also_skips_the_header() {
    let config = json!({"request": {"add": {"x-key": "{ratelimit.key}"}}});
    let req = after_request(config, TestRequest::get("/").metadata("ratelimit.key", ""));
    assert_eq!(req.get_header("x-key"), None);
}

#[test]
fn remove_then_set_then_add_whatever_the_written_order() {
    let config = json!({"request": {"add": {"x-a": "added"}, "set": {"x-a": "set"}, "remove": ["x-a", "X-Gone"]}});
    let req = TestRequest::get("/").header("x-a", "old-1").header("x-a", "old-2").header("x-gone", "1");
    let req = after_request(config, req);
    assert_eq!(values(&req.headers, "x-a"), ["set", "added"]);
    assert_eq!(req.get_header("x-gone"), None);
}

#[test]
fn add_keeps_existing_values() {
    let config = json!({"response": {"add": {"vary": "accept"}}});
    let mut resp = TestResponse::new(200);
    resp.headers.push(("vary".into(), "origin".into()));
    let resp = after_response(config, TestRequest::get("/"), resp);
    assert_eq!(values(&resp.headers, "vary"), ["origin", "accept"]);
}

#[test]
fn doubled_braces_render_as_literal_braces() {
    let config = json!({"request": {"set": {"x-json": "{{\"method\": \"{request.method}\"}}"}}});
    let req = after_request(config, TestRequest::get("/"));
    assert_eq!(req.get_header("x-json"), Some("{\"method\": \"GET\"}"));
}

#[test]
fn response_templates_read_the_request_metadata() {
    let config = json!({"response": {
        "set": {"x-user": "{jwt.sub}", "x-request-id": "{request.id}"},
        "remove": ["server"],
    }});
    let req = TestRequest::get("/").metadata("jwt.sub", "bob");
    let mut resp = TestResponse::new(200);
    resp.headers.push(("server".into(), "upstream/1.0".into()));
    let resp = after_response(config, req, resp);
    assert_eq!(resp.get_header("x-user"), Some("bob"));
    assert_eq!(resp.get_header("x-request-id"), Some("test-request"));
    assert_eq!(resp.get_header("server"), None);
}

#[test]
fn a_phase_without_rules_does_no_work() {
    let plugin = load(json!({"response": {"set": {"x-a": "1"}}})).unwrap();
    assert!(plugin.request.is_none());
    let mut req = TestRequest::get("/").header("x-a", "0");
    let before = req.headers.clone();
    plugin.on_request(&mut req.view());
    assert_eq!(req.headers, before);
}

#[test]
fn unbalanced_braces_are_refused_naming_the_header() {
    let err = refusal(json!({"request": {"set": {"X-User": "{jwt.sub"}}}));
    assert_eq!(
        err,
        "`request.set` header `x-user`: a `{` is never closed; close the placeholder with `}` or write `{{` for a literal `{`"
    );
    let err = refusal(json!({"response": {"add": {"x-a": "a}b"}}}));
    assert!(err.starts_with("`response.add` header `x-a`: a `}` has no matching `{`"), "{err}");
}

#[test]
fn unknown_placeholders_are_refused() {
    let err = refusal(json!({"request": {"set": {"x-user": "{sub}"}}}));
    assert!(err.starts_with("`request.set` header `x-user`: `{sub}` is not a placeholder; use `{request.id}`"), "{err}");
    assert!(refusal(json!({"request": {"set": {"x-host": "{request.host}"}}})).contains("`{request.host}` is not"));
}

#[test]
fn bad_header_names_are_refused() {
    let err = refusal(json!({"request": {"set": {"x user": "1"}}}));
    assert!(err.starts_with("`request.set`: header name `x user` contains a space"), "{err}");
    let err = refusal(json!({"response": {"remove": ["x(y)"]}}));
    assert!(err.starts_with("`response.remove`: header name `x(y)` contains `(`"), "{err}");
}

#[test]
fn bad_values_are_refused() {
    let err = refusal(json!({"request": {"add": {"x-a": "1\nx-b: 2"}}}));
    assert!(err.contains("`request.add` header `x-a`: the value of header `x-a` contains a line break"), "{err}");
    let err = refusal(json!({"request": {"set": {"x-a": ""}}}));
    assert!(err.contains("the value is empty; to delete a header list it under `remove`"), "{err}");
}

#[test]
fn framing_headers_and_case_duplicates_are_refused() {
    assert!(refusal(json!({"response": {"set": {"Content-Length": "1"}}})).contains("managed by covet"));
    let err = refusal(json!({"request": {"set": {"X-A": "1", "x-a": "2"}}}));
    assert!(err.contains("header `x-a` is given twice"), "{err}");
}

#[test]
fn config_without_rules_or_with_unknown_keys_is_refused() {
    assert!(refusal(json!({})).starts_with("no rules"));
    assert!(refusal(json!({"request": {}})).starts_with("no rules"));
    assert!(refusal(json!({"request": {"append": {"x-a": "1"}}})).starts_with("unknown field `append`"));
    assert!(refusal(json!({"requests": {}})).starts_with("unknown field `requests`"));
}

#[test]
fn an_instance_asks_only_for_the_phases_its_rules_use() {
    use covet_plugin_api::Phases;
    let request_only = load(json!({"request": {"remove": ["x-a"]}})).expect("valid");
    assert_eq!(request_only.phases(), Phases::ON_REQUEST);
    let response_only = load(json!({"response": {"set": {"x-b": "1"}}})).expect("valid");
    assert_eq!(response_only.phases(), Phases::ON_RESPONSE);
    let both = load(json!({"request": {"remove": ["x-a"]}, "response": {"remove": ["x-b"]}})).expect("valid");
    assert_eq!(both.phases(), Phases::ON_REQUEST | Phases::ON_RESPONSE);
}
