//! The plugin as a whole, outside a host: `init` refuses a bad config or a
//! host without upstreams with a clear message; `handle` rewrites the path
//! and turns a host refusal into the structured 500 with `upstream.name` set.

use covet_plugin_api::{
    AsyncPlugin, Config, JsonValue,
    host::Host,
    testing::{TestRequest, block_on},
};

use super::*;

fn proxy(json: &str) -> Proxy {
    let policy = Config::from_json(json).parse::<Settings>().unwrap().compile().unwrap();
    let upstream = Host::unavailable().upstream(&policy.upstream);
    Proxy { policy, upstream }
}

#[test]
fn init_refuses_a_bad_config_with_the_field() {
    let err = Proxy::init(Config::from_json(r#"{"upstream": "users", "strip_prefix": "api"}"#)).err().unwrap();
    assert!(err.starts_with("strip_prefix: `api`"), "{err}");
    let err = Proxy::init(Config::from_json("null")).err().unwrap();
    assert!(err.contains("missing field `upstream`"), "{err}");
}

#[test]
fn init_fails_when_the_upstream_cannot_be_used() {
    let err = Proxy::init(Config::from_json(r#"{"upstream": "users"}"#)).err().unwrap();
    assert!(err.starts_with("upstream `users`: no host services"), "{err}");
}

#[test]
fn prepare_rewrites_the_path_and_keeps_the_query() {
    let p = proxy(r#"{"upstream": "users", "strip_prefix": "/api", "rewrite_prefix": "/v2"}"#);
    let mut req = TestRequest::get("/api/users/7?full=1").header("host", "shop.example");
    let builder = p.prepare(&mut req.view());
    let text = format!("{builder:?}");
    assert!(text.contains("upstream: \"users\"") && text.contains("path_and_query: \"/v2/users/7?full=1\""), "{text}");
    let mut req = TestRequest::get("/other?x=1");
    let text = format!("{:?}", p.prepare(&mut req.view()));
    assert!(text.contains("path_and_query: \"/other?x=1\""), "{text}");
}

#[test]
fn a_refused_call_is_a_structured_500_naming_the_upstream() {
    let p = proxy(r#"{"upstream": "users"}"#);
    let mut req = TestRequest::get("/x").header("x-request-id", "r-9");
    let response = block_on(p.handle(&mut req.view()));
    assert_eq!(response.status, 500);
    let body: JsonValue = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["error"]["code"], "PROXY_MISCONFIGURED");
    assert_eq!(body["error"]["details"]["upstream"], "users");
    assert_eq!(body["error"]["details"]["kind"], "unsupported");
    assert_eq!(req.get_metadata(META_NAME), Some("users"));
    assert_eq!(req.get_metadata(META_ENDPOINT), None);
}
