//! The access log: one line per request with route, status, latency and the
//! time spent in each plugin, in the pretty and the JSON format.

use covet_e2e::{Host, Manifest, Route, plugin};
use http::Method;

use crate::common::labelled;

fn manifest() -> Manifest {
    Manifest::new()
        .access_log(true)
        .plugin("tag", "covet-test-plugin", labelled("tag"))
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/items/{id}").methods(["GET"]).filters(["tag"]).handler("echo"))
}

#[tokio::test]
async fn each_request_writes_one_access_line_with_plugin_times() {
    let host = Host::start(manifest()).await;
    let reply = host.http1().send(Method::GET, "/items/7?q=1", &[("x-request-id", "acc-1")], "").await.unwrap();
    assert_eq!(reply.status, 200);
    let line = host.log_line(&["covet::access", "request_id=\"acc-1\""]).await.expect("an access line");
    for part in ["method=GET", "path=\"/items/7\"", "route=\"/items/{id}\"", "status=200", "latency_us=", "plugins=tag="] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
    assert!(line.contains(",echo="), "the handler's time is listed after the filter's: {line}");
    let miss = host.http1().send(Method::GET, "/nope", &[("x-request-id", "acc-2")], "").await.unwrap();
    assert_eq!(miss.status, 404);
    let line = host.log_line(&["request_id=\"acc-2\""]).await.expect("a line for the 404");
    assert!(line.contains("status=404") && line.contains("route=\"-\""), "{line}");
    assert_eq!(host.logs().matches("request_id=\"acc-1\"").count(), 1, "one line per request");
}

#[tokio::test]
async fn json_access_lines_parse_as_json() {
    let yaml = format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\nlog: {{ format: json, access: true }}\nplugins:\n  echo: {{ kind: native, path: {:?}, config: {{ label: e }} }}\nroutes:\n  - {{ path: /j, handler: echo }}\n",
        plugin("covet-test-plugin").display().to_string()
    );
    let host = Host::start(yaml).await;
    let reply = host.http2().send(Method::POST, "/j", &[("x-request-id", "acc-json")], "body").await.unwrap();
    assert_eq!(reply.status, 200);
    let line = host.log_line(&["covet::access", "acc-json"]).await.expect("an access line");
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(value["method"], "POST");
    assert_eq!(value["route"], "/j");
    assert_eq!(value["status"], 200);
    assert!(value["plugins"]["echo"].is_u64(), "{line}");
    assert!(value["latency_us"].is_u64(), "{line}");
}
