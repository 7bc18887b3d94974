//! Unit tests of the whole filter on in-memory requests and responses.

use covet_plugin_api::{
    Config, Flow, Plugin, Response,
    testing::{TestRequest, TestResponse},
};
use serde_json::{Value, json};

use crate::Cors;

fn load(config: Value) -> Result<Cors, String> {
    Cors::init(Config::from_json(&config.to_string()))
}

fn refusal(config: Value) -> String {
    match load(config) {
        Ok(_) => panic!("config was accepted"),
        Err(message) => message,
    }
}

fn preflight(origin: &str, method: &str, headers: Option<&str>) -> TestRequest {
    let mut req = TestRequest::get("/api").header("origin", origin).header("access-control-request-method", method);
    req.method = "OPTIONS".into();
    match headers {
        Some(h) => req.header("access-control-request-headers", h),
        None => req,
    }
}

fn answer(plugin: &Cors, mut req: TestRequest) -> Option<Response> {
    match plugin.on_request(&mut req.view()) {
        Flow::Respond(resp) | Flow::RespondAndContinue(resp) => Some(resp),
        Flow::Continue => None,
    }
}

fn after(plugin: &Cors, mut req: TestRequest, mut resp: TestResponse) -> TestResponse {
    assert!(matches!(plugin.on_request(&mut req.view()), Flow::Continue), "the request should go on");
    plugin.on_response(&mut req.view(), &mut resp.view());
    resp
}

fn values<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>, name: &str) -> Vec<&'a str> {
    headers.into_iter().filter(|(n, _)| *n == name).map(|(_, v)| v).collect()
}

fn response_values<'a>(resp: &'a Response, name: &str) -> Vec<&'a str> {
    values(resp.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())), name)
}

fn test_values<'a>(resp: &'a TestResponse, name: &str) -> Vec<&'a str> {
    values(resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), name)
}

fn api() -> Cors {
    load(json!({
        "allow_origins": ["https://app.example.com", "https://*.example.org"],
        "allow_methods": ["GET", "PUT"],
        "allow_headers": ["Content-Type", "x-api-key"],
        "expose_headers": ["x-request-id"],
        "allow_credentials": true,
        "max_age": "10m",
    }))
    .expect("valid config")
}

#[test]
fn allowed_preflight_is_answered_204_with_every_header() {
    let resp = answer(&api(), preflight("https://app.example.com", "PUT", Some("content-type,x-api-key"))).expect("204");
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(resp.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(resp.header("access-control-allow-headers"), Some("content-type, x-api-key"));
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    assert_eq!(resp.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        response_values(&resp, "vary"),
        ["origin, access-control-request-method, access-control-request-headers"]
    );
    assert!(resp.body.is_empty());
}

#[test]
fn preflights_refused_for_origin_method_or_header_name_the_reason() {
    let plugin = api();
    for (req, needle, detail) in [
        (preflight("https://evil.test", "GET", None), "origin https://evil.test", json!({"origin": "https://evil.test"})),
        (preflight("https://a.example.org", "DELETE", None), "method DELETE", json!({"origin": "https://a.example.org", "method": "DELETE"})),
        (preflight("https://app.example.com", "GET", Some("content-type, X-Debug")), "header x-debug", json!({"origin": "https://app.example.com", "header": "x-debug"})),
    ] {
        let resp = answer(&plugin, req).expect("a 403");
        assert_eq!(resp.status, 403);
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "CORS_FORBIDDEN");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{body}");
        assert_eq!(body["error"]["details"], detail);
        assert_eq!(resp.header("access-control-allow-origin"), None);
    }
}

#[test]
fn disallowed_preflight_pass_goes_on_without_cors_headers() {
    let plugin = load(json!({"allow_origins": "https://app.test", "disallowed_preflight": "pass"})).unwrap();
    let resp = after(&plugin, preflight("https://evil.test", "GET", None), TestResponse::new(200));
    assert_eq!(resp.get_header("access-control-allow-origin"), None);
    assert_eq!(resp.get_header("access-control-allow-methods"), None);
    assert_eq!(test_values(&resp, "vary"), ["origin, access-control-request-method, access-control-request-headers"]);
}

#[test]
fn preflight_pass_adds_the_preflight_headers_to_the_handlers_answer() {
    let plugin = load(json!({"allow_origins": "https://app.test", "preflight": "pass", "allow_methods": ["PATCH"]})).unwrap();
    let resp = after(&plugin, preflight("https://app.test", "PATCH", None), TestResponse::new(200));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.get_header("access-control-allow-origin"), Some("https://app.test"));
    assert_eq!(resp.get_header("access-control-allow-methods"), Some("PATCH"));
    assert_eq!(resp.get_header("access-control-allow-headers"), None, "none configured, none asked");
    assert_eq!(resp.get_header("access-control-max-age"), None);
    assert_eq!(resp.get_header("access-control-allow-credentials"), None);
}

#[test]
fn star_headers_mirror_the_request_and_star_origins_answer_star() {
    let plugin = load(json!({"allow_origins": "*", "allow_headers": "*"})).unwrap();
    let resp = answer(&plugin, preflight("https://any.test", "POST", Some("x-one,x-two"))).unwrap();
    assert_eq!(resp.status, 204);
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    assert_eq!(resp.header("access-control-allow-headers"), Some("x-one,x-two"));

    let req = TestRequest::get("/").header("origin", "https://any.test");
    let resp = after(&plugin, req, TestResponse::new(200));
    assert_eq!(resp.get_header("access-control-allow-origin"), Some("*"));
    assert_eq!(resp.get_header("vary"), None, "the answer does not depend on the origin");
}

#[test]
fn actual_request_from_allowed_origin_gets_origin_credentials_expose_and_vary() {
    let req = TestRequest::get("/api").header("origin", "https://x.example.org");
    let mut handler = TestResponse::new(200);
    handler.headers.push(("vary".into(), "accept-encoding".into()));
    handler.headers.push(("access-control-allow-origin".into(), "*".into()));
    let resp = after(&api(), req, handler);
    assert_eq!(test_values(&resp, "access-control-allow-origin"), ["https://x.example.org"], "replaces the handler's");
    assert_eq!(resp.get_header("access-control-allow-credentials"), Some("true"));
    assert_eq!(resp.get_header("access-control-expose-headers"), Some("x-request-id"));
    assert_eq!(test_values(&resp, "vary"), ["accept-encoding", "origin"]);
}

#[test]
fn vary_origin_is_not_repeated_and_vary_star_is_left_alone() {
    for existing in ["Origin", "accept, origin", "*"] {
        let req = TestRequest::get("/api").header("origin", "https://app.example.com");
        let mut handler = TestResponse::new(200);
        handler.headers.push(("vary".into(), existing.into()));
        let resp = after(&api(), req, handler);
        assert_eq!(test_values(&resp, "vary"), [existing]);
    }
}

#[test]
fn disallowed_origin_gets_no_cors_headers_but_vary() {
    let req = TestRequest::get("/api").header("origin", "https://evil.test");
    let resp = after(&api(), req, TestResponse::new(200));
    for name in ["access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers"] {
        assert_eq!(resp.get_header(name), None, "{name}");
    }
    assert_eq!(test_values(&resp, "vary"), ["origin"]);
}

#[test]
fn requests_without_origin_are_untouched_except_vary() {
    let resp = after(&api(), TestRequest::get("/api"), TestResponse::new(200));
    assert_eq!(resp.headers, [("vary".to_string(), "origin".to_string())]);
    let any = load(json!({"allow_origins": "*"})).unwrap();
    let resp = after(&any, TestRequest::get("/api"), TestResponse::new(200));
    assert!(resp.headers.is_empty());
}

#[test]
fn options_without_request_method_is_an_actual_request() {
    let mut req = TestRequest::get("/api").header("origin", "https://app.example.com");
    req.method = "OPTIONS".into();
    let resp = after(&api(), req, TestResponse::new(200));
    assert_eq!(resp.get_header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(resp.get_header("access-control-allow-methods"), None);
}

#[test]
fn defaults_allow_get_head_post_and_no_headers() {
    let plugin = load(json!({"allow_origins": ["https://app.test"]})).unwrap();
    let resp = answer(&plugin, preflight("https://app.test", "HEAD", None)).unwrap();
    assert_eq!(resp.header("access-control-allow-methods"), Some("GET, HEAD, POST"));
    assert_eq!(resp.header("access-control-allow-credentials"), None);
    assert_eq!(answer(&plugin, preflight("https://app.test", "GET", Some("x-a"))).unwrap().status, 403);
}

#[test]
fn bad_configs_are_refused_with_clear_messages() {
    let star_credentials = refusal(json!({"allow_origins": "*", "allow_credentials": true}));
    assert!(star_credentials.contains("cannot be combined with allow_credentials"), "{star_credentials}");
    assert!(refusal(json!({})).contains("allow_origins: give at least one origin"));
    assert!(refusal(json!({"allow_origins": "*", "alow_methods": []})).contains("unknown field `alow_methods`"));
    assert!(refusal(json!({"allow_origins": "*", "allow_methods": ["GET POST"]})).contains("`GET POST`"));
    assert!(refusal(json!({"allow_origins": "*", "allow_methods": []})).contains("allow_methods"));
    assert!(refusal(json!({"allow_origins": "*", "allow_headers": ["x y"]})).starts_with("allow_headers:"));
    assert!(refusal(json!({"allow_origins": "*", "allow_headers": ["*", "x"]})).contains("only entry"));
    assert!(refusal(json!({"allow_origins": "*", "expose_headers": ["*"]})).starts_with("expose_headers:"));
    assert!(refusal(json!({"allow_origins": "*", "max_age": "soon"})).contains("invalid duration"));
    assert!(refusal(json!({"allow_origins": "*", "max_age": "2d"})).contains("more than a day"));
    assert!(refusal(json!({"allow_origins": "*", "preflight": "answer"})).contains("unknown variant `answer`"));
    assert!(refusal(json!({"allow_origins": "https://a.test/"})).contains("no path"));
}
