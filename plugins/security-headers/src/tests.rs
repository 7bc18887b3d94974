//! Unit tests of the filter on in-memory requests and responses.

use covet_plugin_api::{
    Config, Plugin,
    testing::{TestRequest, TestResponse},
};
use serde_json::{Value, json};

use crate::SecurityHeaders;

fn load(config: Value) -> Result<SecurityHeaders, String> {
    SecurityHeaders::init(Config::from_json(&config.to_string()))
}

fn refusal(config: Value) -> String {
    match load(config) {
        Ok(_) => panic!("config was accepted"),
        Err(message) => message,
    }
}

fn tls() -> TestRequest {
    TestRequest::get("/").metadata("tls.version", "1.3")
}

fn after(config: Value, mut req: TestRequest, mut resp: TestResponse) -> TestResponse {
    let plugin = load(config).expect("valid config");
    plugin.on_response(&mut req.view(), &mut resp.view());
    resp
}

#[test]
fn defaults_over_tls() {
    let resp = after(Value::Null, tls(), TestResponse::new(200));
    let expected = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ];
    let got: Vec<(&str, &str)> = resp.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(got, expected, "exactly the defaults: no CSP, permissions or opener policy");
}

#[test]
fn hsts_only_over_tls_unless_always() {
    let plain = after(json!({}), TestRequest::get("/"), TestResponse::new(200));
    assert_eq!(plain.get_header("strict-transport-security"), None);
    assert_eq!(plain.get_header("x-content-type-options"), Some("nosniff"));
    let always = after(json!({"hsts": {"always": true, "max_age": "180days"}}), TestRequest::get("/"), TestResponse::new(200));
    assert_eq!(always.get_header("strict-transport-security"), Some("max-age=15552000; includeSubDomains"));
}

#[test]
fn hsts_forms() {
    let cases = [
        (json!({"hsts": true}), Some("max-age=31536000; includeSubDomains")),
        (json!({"hsts": false}), None),
        (json!({"hsts": {"max_age": 63072000, "preload": true}}), Some("max-age=63072000; includeSubDomains; preload")),
        (json!({"hsts": {"max_age": 0, "include_subdomains": false}}), Some("max-age=0")),
    ];
    for (config, expected) in cases {
        let resp = after(config.clone(), tls(), TestResponse::new(200));
        assert_eq!(resp.get_header("strict-transport-security"), expected, "{config}");
    }
}

#[test]
fn every_header_can_be_set_or_turned_off() {
    let config = json!({
        "x_content_type_options": false,
        "x_frame_options": "sameorigin",
        "referrer_policy": "no-referrer, strict-origin-when-cross-origin",
        "content_security_policy": "default-src 'self'",
        "permissions_policy": "camera=(), geolocation=()",
        "cross_origin_opener_policy": "same-origin",
    });
    let resp = after(config, TestRequest::get("/"), TestResponse::new(200));
    assert_eq!(resp.get_header("x-content-type-options"), None);
    assert_eq!(resp.get_header("x-frame-options"), Some("SAMEORIGIN"), "spelled canonically");
    assert_eq!(resp.get_header("referrer-policy"), Some("no-referrer, strict-origin-when-cross-origin"));
    assert_eq!(resp.get_header("content-security-policy"), Some("default-src 'self'"));
    assert_eq!(resp.get_header("permissions-policy"), Some("camera=(), geolocation=()"));
    assert_eq!(resp.get_header("cross-origin-opener-policy"), Some("same-origin"));
}

#[test]
fn handler_headers_are_kept_unless_override() {
    let handler = || {
        let mut resp = TestResponse::new(200);
        resp.headers.push(("x-frame-options".into(), "SAMEORIGIN".into()));
        resp.headers.push(("strict-transport-security".into(), "max-age=60".into()));
        resp
    };
    let kept = after(json!({}), tls(), handler());
    assert_eq!(kept.get_header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(kept.get_header("strict-transport-security"), Some("max-age=60"));
    assert_eq!(kept.get_header("x-content-type-options"), Some("nosniff"), "absent ones are still added");

    let replaced = after(json!({"override": true}), tls(), handler());
    assert_eq!(replaced.get_header("x-frame-options"), Some("DENY"));
    assert_eq!(replaced.get_header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    assert_eq!(replaced.headers.iter().filter(|(n, _)| n == "x-frame-options").count(), 1);
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let cases = [
        (json!({"x_frame_options": "ALLOW-FROM https://a.test"}), "x_frame_options: `ALLOW-FROM https://a.test` is not valid"),
        (json!({"x_content_type_options": "sniff"}), "x_content_type_options: `sniff` is not valid; use nosniff"),
        (json!({"referrer_policy": "no-referrer, sometimes"}), "referrer_policy:"),
        (json!({"cross_origin_opener_policy": "same-site"}), "cross_origin_opener_policy:"),
        (json!({"content_security_policy": true}), "content_security_policy: there is no default"),
        (json!({"content_security_policy": ""}), "content_security_policy: the value is empty"),
        (json!({"permissions_policy": "a\nb"}), "permissions_policy: "),
        (json!({"hsts": {"preload": true, "include_subdomains": false}}), "hsts.preload needs"),
        (json!({"hsts": {"preload": true, "max_age": "30d"}}), "hsts.preload needs"),
        (json!({"hsts": {"max_age": "forever"}}), "invalid duration \"forever\""),
        (json!({"hsts": {"maxage": 1}}), "unknown field `maxage`"),
        (json!({"hsts": "yes"}), "false, true, or a map"),
        (json!({"csp": "default-src 'self'"}), "unknown field `csp`"),
        (json!({"x_frame_options": 1}), "the header's value as a string"),
    ];
    for (config, needle) in cases {
        let message = refusal(config.clone());
        assert!(message.contains(needle), "{config}: {message}");
    }
}
