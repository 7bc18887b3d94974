use std::path::{Path, PathBuf};

use covet_plugin_api::{Config, Plugin, Response, testing::TestRequest};
use serde_json::{Value, json};

use crate::{StaticResponse, settings::guess_type};

/// Cargo runs unit tests from the crate root, so this relative path also
/// exercises "relative to the current directory".
const FIXTURE: &str = "tests/fixtures/index.html";

fn load(config: Value) -> Result<StaticResponse, String> {
    StaticResponse::init(Config::from_json(&config.to_string()))
}

fn serve(config: Value) -> Response {
    let plugin = load(config).expect("config is valid");
    plugin.handle(&mut TestRequest::get("/anything?x=1").view())
}

fn refusal(config: Value) -> String {
    match load(config) {
        Ok(_) => panic!("config was accepted"),
        Err(message) => message,
    }
}

/// A file under the system temp dir, unique to this process and test.
fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("covet-static-response-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn answers_with_the_configured_status_headers_and_body() {
    let resp = serve(json!({"status": 418, "headers": {"X-Served-By": "covet"}, "body": "short and stout"}));
    assert_eq!(resp.status, 418);
    assert_eq!(resp.header("x-served-by"), Some("covet"));
    assert_eq!(resp.headers[1].name.as_str(), "x-served-by", "names are sent lower-cased");
    assert_eq!(resp.body.as_slice(), b"short and stout");
}

#[test]
fn inline_body_defaults_to_200_and_text_plain() {
    let resp = serve(json!({"body": "hi"}));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn empty_config_is_an_empty_200_without_content_type() {
    let plugin = StaticResponse::init(Config::from_json("null")).unwrap();
    let resp = plugin.handle(&mut TestRequest::get("/").view());
    assert_eq!((resp.status, resp.headers.len(), resp.body.len()), (200, 0, 0));
}

#[test]
fn every_request_gets_the_same_response() {
    let plugin = load(json!({"body": "same"})).unwrap();
    let first = plugin.handle(&mut TestRequest::get("/a").view());
    let second = plugin.handle(&mut TestRequest::get("/b").header("accept", "text/html").view());
    assert_eq!(first, second);
}

#[test]
fn body_file_relative_to_the_current_dir_is_served_as_html() {
    let resp = serve(json!({"body_file": FIXTURE}));
    assert_eq!(resp.body.as_slice(), std::fs::read(FIXTURE).unwrap().as_slice());
    assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn body_file_is_read_once_at_init() {
    let path = temp_file("once.json", br#"{"v":1}"#);
    let plugin = load(json!({"body_file": path})).unwrap();
    std::fs::remove_file(&path).unwrap();
    let resp = plugin.handle(&mut TestRequest::get("/").view());
    assert_eq!(resp.body.as_slice(), br#"{"v":1}"#);
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

#[test]
fn content_type_overrides_the_default() {
    let resp = serve(json!({"body_file": FIXTURE, "content_type": "text/plain"}));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.headers.len(), 1);
}

#[test]
fn content_type_is_guessed_from_common_extensions() {
    let cases = [
        ("a.HTML", "text/html; charset=utf-8"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("a.tar.gz", "application/octet-stream"),
        ("Makefile", "application/octet-stream"),
    ];
    for (file, expected) in cases {
        assert_eq!(guess_type(Path::new(file)), expected, "{file}");
    }
}

#[test]
fn refuses_body_and_body_file_together() {
    let err = refusal(json!({"body": "x", "body_file": FIXTURE}));
    assert_eq!(err, "give either `body` or `body_file`, not both");
}

#[test]
fn refuses_an_unreadable_body_file_and_says_where_it_looked() {
    let err = refusal(json!({"body_file": "no/such/file.html"}));
    assert!(err.starts_with("cannot read `body_file: no/such/file.html` (looked at /"), "{err}");
    assert!(err.contains("relative to the manifest's directory"), "{err}");
}

#[test]
fn refuses_a_bad_header_name() {
    let err = refusal(json!({"headers": {"x served": "1"}}));
    assert!(err.starts_with("header name `x served` contains a space"), "{err}");
}

#[test]
fn refuses_a_header_value_with_a_line_break() {
    let err = refusal(json!({"headers": {"x-a": "1\r\nx-b: 2"}}));
    assert!(err.contains("value of header `x-a` contains a line break"), "{err}");
}

#[test]
fn refuses_the_same_header_twice_in_different_case() {
    let err = refusal(json!({"headers": {"X-A": "1", "x-a": "2"}}));
    assert!(err.contains("header `x-a` is given twice"), "{err}");
}

#[test]
fn refuses_content_type_and_content_length_in_headers() {
    assert!(refusal(json!({"headers": {"Content-Type": "text/html"}})).contains("`content_type`"));
    assert!(refusal(json!({"headers": {"content-length": "3"}})).contains("covet sets it"));
}

#[test]
fn refuses_a_status_out_of_range() {
    for status in [0, 101, 600, 999] {
        let err = refusal(json!({ "status": status }));
        assert!(err.contains("use a final status code from 200 to 599"), "{err}");
    }
}

#[test]
fn refuses_a_body_on_204() {
    assert!(load(json!({"status": 204})).is_ok());
    let err = refusal(json!({"status": 204, "body": "x"}));
    assert!(err.contains("`status: 204` responses cannot have a body"), "{err}");
}

#[test]
fn refuses_unknown_keys() {
    let err = refusal(json!({"bdy": "x"}));
    assert!(err.starts_with("unknown field `bdy`"), "{err}");
}
