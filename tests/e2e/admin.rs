//! The admin API itself: the JSON listing, Prometheus metrics that move with
//! traffic, gRPC (a generated tonic client, and reflection) on the same
//! listener, server-sent events, and the token policy — a public address
//! without a token stops the host with exit 2; with a token, every request
//! (HTTP and gRPC) needs it.

use covet_e2e::{Client, Host, Manifest, Reply, Route};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Code, transport::Channel};

use crate::common::{PATIENCE, labelled};

/// The client generated from `host/proto/covet/admin/v1/admin.proto` (tests/build.rs).
pub(crate) mod pb {
    tonic::include_proto!("covet.admin.v1");
}

use pb::admin_client::AdminClient;

const TOKEN: &str = "s3cret-t0ken";

/// `/echo` answered by the test plugin `echo`.
fn echo() -> Manifest {
    Manifest::new().plugin("echo", "covet-test-plugin", labelled("echo")).route(Route::new("/echo").handler("echo"))
}

fn admin(host: &Host) -> Client {
    Client::http1(host.admin_addr())
}

async fn admin_get(host: &Host, path: &str, headers: &[(&str, &str)]) -> Reply {
    admin(host).send(Method::GET, path, headers, "").await.expect("the admin API answers")
}

/// A gRPC channel to the admin listener (h2c with prior knowledge).
async fn channel(host: &Host) -> Channel {
    let endpoint = Channel::from_shared(format!("http://{}", host.admin_addr())).expect("endpoint");
    endpoint.connect().await.expect("gRPC connects to the admin listener")
}

/// The value of the sample `series` (name with its labels) in a scrape.
fn sample(scrape: &str, series: &str) -> f64 {
    let line = scrape.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')));
    let line = line.unwrap_or_else(|| panic!("no sample {series} in:\n{scrape}"));
    line[series.len()..].trim().parse().expect("a number")
}

async fn scrape(host: &Host, headers: &[(&str, &str)]) -> String {
    let reply = admin_get(host, "/metrics", headers).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    reply.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_lists_the_live_plugins() {
    let host = Host::start(echo()).await;
    let reply = admin_get(&host, "/v1/plugins", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let plugins = reply.json()["plugins"].as_array().cloned().expect("a plugins array");
    assert_eq!(plugins.len(), 1, "{plugins:?}");
    let echo = &plugins[0];
    assert_eq!(echo["name"], "echo");
    assert_eq!(echo["kind"], "native");
    assert_eq!(echo["plugin"], "covet-test-plugin");
    assert_eq!(echo["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(echo["swaps"], 0);

    let reply = admin_get(&host, "/v1/nothing", &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "not_found");
    let reply = admin_get(&host, "/v1/reload", &[]).await;
    assert_eq!((reply.status.as_u16(), reply.header("allow")), (405, Some("POST")));
    assert_eq!(reply.json()["error"]["code"], "method_not_allowed");
    let reply = admin(&host).send(Method::POST, "/v1/plugins/echo/swap", &[], r#"{"pth": "x.so"}"#).await.unwrap();
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "bad_request");
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("unknown field `pth`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_plugin_calls() {
    let host = Host::start(echo()).await;
    let before = scrape(&host, &[]).await;
    let client = host.http1();
    for _ in 0..3 {
        assert_eq!(client.get("/echo").await.unwrap().status, 200);
    }
    let after = scrape(&host, &[]).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(moved("covet_requests_total{class=\"2xx\"}") >= 3.0, "{after}");
    assert!(moved("covet_request_duration_seconds_count") >= 3.0, "{after}");
    assert!(moved("covet_plugin_calls_total{plugin=\"echo\"}") >= 3.0, "{after}");
    assert!(moved("covet_plugin_call_duration_seconds_count{plugin=\"echo\"}") >= 3.0, "{after}");
    assert_eq!(sample(&after, "covet_plugin_errors_total{plugin=\"echo\"}"), 0.0);
    assert!(after.contains("# TYPE covet_request_duration_seconds histogram"), "{after}");
    assert!(after.contains("covet_request_duration_seconds_bucket{le=\"+Inf\"}"), "{after}");
    let info = after.lines().find(|l| l.starts_with("covet_plugin_info{plugin=\"echo\",kind=\"native\",version="));
    assert!(info.is_some_and(|l| l.ends_with(" 1")), "{after}");

    assert_eq!(sample(&after, "covet_manifest_reloads_total{result=\"failed\"}"), 0.0);
    std::fs::write(host.path("plugins.yaml"), "listen: [\n").unwrap();
    let reply = admin(&host).send(Method::POST, "/v1/reload", &[], "").await.unwrap();
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "manifest_invalid");
    let last = scrape(&host, &[]).await;
    assert_eq!(sample(&last, "covet_manifest_reloads_total{result=\"failed\"}"), 1.0);
    assert_eq!(sample(&last, "covet_manifest_reloads_total{result=\"ok\"}"), 0.0);
}

/// A native filter is called only in the phases its instance asks for
/// (`Plugin::phases`): `covet-headers` with request rules only is not called
/// after the handler, with both it is called twice per request. The calls
/// counter shows it; the headers show both instances did their work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_is_called_only_in_the_phases_its_config_uses() {
    use serde_json::json;
    let manifest = Manifest::new()
        .plugin("ask", "covet-headers", json!({ "request": { "set": { "x-asked": "yes" } } }))
        .plugin("both", "covet-headers", json!({ "request": { "remove": ["x-gone"] }, "response": { "set": { "x-both": "1" } } }))
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/echo").filters(["ask", "both"]).handler("echo"));
    let host = Host::start(manifest).await;
    let before = scrape(&host, &[]).await;
    let client = host.http1();
    for _ in 0..4 {
        let reply = client.get("/echo").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-both"), Some("1"));
        assert_eq!(reply.json()["headers"]["x-asked"], "yes", "{}", reply.text());
    }
    let after = scrape(&host, &[]).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("covet_plugin_calls_total{plugin=\"ask\"}"), 4.0, "on_request only:\n{after}");
    assert_eq!(moved("covet_plugin_calls_total{plugin=\"both\"}"), 8.0, "on_request and on_response:\n{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_serves_the_same_control_plane_on_the_same_listener() {
    let host = Host::start(echo()).await;
    let mut admin = AdminClient::new(channel(&host).await);
    let listed = admin.list_plugins(pb::ListPluginsRequest {}).await.expect("ListPlugins").into_inner();
    let json = admin_get(&host, "/v1/plugins", &[]).await.json();
    assert_eq!(listed.plugins.len(), 1);
    let echo = &listed.plugins[0];
    assert_eq!((echo.name.as_str(), echo.kind.as_str()), ("echo", "native"));
    assert_eq!(echo.sha256, json["plugins"][0]["sha256"].as_str().unwrap(), "the same data as the JSON API");

    let reloaded = admin.reload_plugin(pb::ReloadPluginRequest { name: "echo".into() }).await.expect("ReloadPlugin");
    assert!(!reloaded.into_inner().new_code, "same artifact, same code");
    let missing = admin.reload_plugin(pb::ReloadPluginRequest { name: "nobody".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("no plugin named \"nobody\""), "{}", missing.message());
    let swap = pb::SwapPluginRequest { name: "echo".into(), path: None, config: Some("{not json".into()) };
    assert_eq!(admin.swap_plugin(swap).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reflection_lists_the_admin_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let host = Host::start(echo()).await;
    let mut reflection = ServerReflectionClient::new(channel(&host).await);
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let requests = tonic::codegen::tokio_stream::iter([request]);
    let mut responses = reflection.server_reflection_info(requests).await.expect("reflection").into_inner();
    let response = responses.message().await.expect("a response").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"covet.admin.v1.Admin"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_as_server_sent_events() {
    let host = Host::start(echo()).await;
    let mut stream = tokio::net::TcpStream::connect(host.admin_addr()).await.unwrap();
    stream.write_all(b"GET /v1/events HTTP/1.1\r\nhost: admin\r\n\r\n").await.unwrap();
    let head = read_until(&mut stream, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");

    let reply = admin(&host).send(Method::POST, "/v1/plugins/echo/reload", &[], "").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = read_until(&mut stream, "\n\n").await;
    let data = events.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_else(|| panic!("no data line in {events:?}"));
    let event: serde_json::Value = serde_json::from_str(data).expect("the event is JSON");
    assert_eq!(event["kind"], "swapped");
    assert_eq!(event["plugin"], "echo");
}

/// Reads from `stream` until the text read so far contains `end`.
async fn read_until(stream: &mut tokio::net::TcpStream, end: &str) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !text.contains(end) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the stream closed early: {text:?}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {end:?} in {text:?}"));
    text
}

#[test]
fn a_public_admin_address_without_a_token_stops_the_host() {
    let exited = Host::builder(echo()).env("COVET_ADMIN_LISTEN", "0.0.0.0:0").run_to_exit(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr: {}", exited.stderr);
    assert!(exited.stderr.contains("refusing to listen on 0.0.0.0:0 without a token"), "{}", exited.stderr);
    assert!(exited.stderr.contains("COVET_ADMIN_TOKEN") && exited.stderr.contains("token_file"), "{}", exited.stderr);
    assert!(!exited.stdout.contains("listening on"), "nothing was served: {}", exited.stdout);
}

#[test]
fn check_refuses_a_public_admin_address_without_a_token_too() {
    let exited = Host::builder(echo()).env("COVET_ADMIN_LISTEN", "0.0.0.0:0").check(PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr: {}", exited.stderr);
    assert!(exited.stderr.contains("refusing to listen on 0.0.0.0:0 without a token"), "{}", exited.stderr);
    let with_token = Host::builder(echo())
        .env("COVET_ADMIN_LISTEN", "0.0.0.0:0")
        .env("COVET_ADMIN_TOKEN", TOKEN)
        .check(PATIENCE);
    assert_eq!(with_token.status.code(), Some(0), "stderr: {}", with_token.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_request_needs_it() {
    let manifest = format!("{}admin:\n  token_file: admin.token\n", echo().to_yaml());
    let host = Host::builder(manifest).file("admin.token", format!("{TOKEN}\n")).start();
    host.wait_ready().await;
    let right = format!("Bearer {TOKEN}");
    for headers in [vec![], vec![("authorization", "Bearer wrong")], vec![("authorization", TOKEN)]] {
        let reply = admin_get(&host, "/v1/plugins", &headers).await;
        assert_eq!(reply.status, 401, "{headers:?}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let reply = admin_get(&host, "/v1/plugins", &[("authorization", &right)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(admin_get(&host, "/metrics", &[]).await.status, 401);
    scrape(&host, &[("authorization", &right)]).await;

    let mut anonymous = AdminClient::new(channel(&host).await);
    let denied = anonymous.list_plugins(pb::ListPluginsRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let mut request = tonic::Request::new(pb::ListPluginsRequest {});
    request.metadata_mut().insert("authorization", right.parse().unwrap());
    let listed = anonymous.list_plugins(request).await.expect("the token lets gRPC through");
    assert_eq!(listed.into_inner().plugins.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_from_the_environment_wins_over_the_token_file() {
    let manifest = format!("{}admin:\n  token_file: admin.token\n", echo().to_yaml());
    let host = Host::builder(manifest).file("admin.token", "from-file").env("COVET_ADMIN_TOKEN", " from-env\n").start();
    host.wait_ready().await;
    let from_env = admin_get(&host, "/v1/plugins", &[("authorization", "Bearer from-env")]).await;
    assert_eq!(from_env.status, 200, "{}", from_env.text());
    let from_file = admin_get(&host, "/v1/plugins", &[("authorization", "Bearer from-file")]).await;
    assert_eq!(from_file.status, 401);
}
