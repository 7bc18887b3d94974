//! The demo's gateway, end to end: headers → rate-limit → auth-jwt →
//! static-response, over HTTP/1.1 and HTTP/2.

use covet_e2e::{Client, Host, Manifest, Route};
use http::{Method, Version};
use serde_json::json;

use crate::{
    common::assert_problem,
    tokens::{SECRET, SECRET_VAR, auth_config, bearer, claims, hs256},
};

const API_BODY: &str = r#"{"message": "hello from behind the gateway"}"#;

fn demo() -> Manifest {
    Manifest::new()
        .plugin(
            "tag",
            "covet-headers",
            json!({ "response": { "set": { "x-served-by": "covet", "x-user": "{jwt.sub}" } } }),
        )
        .plugin("limiter", "covet-rate-limit", json!({ "rate": "20/m", "burst": 20, "key": "ip" }))
        .plugin("auth", "covet-auth-jwt", auth_config())
        .plugin("api", "covet-static-response", json!({ "content_type": "application/json", "body": API_BODY }))
        .route(Route::new("/api/{*rest}").methods(["GET", "POST"]).filters(["tag", "limiter", "auth"]).handler("api"))
}

async fn start() -> Host {
    let host = Host::builder(demo()).env(SECRET_VAR, SECRET).start();
    host.wait_ready().await;
    host
}

async fn assert_authorised_request_passes_the_chain(client: Client, version: Version) {
    let auth = bearer(&hs256(&claims("ada", json!({}))));
    let reply = client.send(Method::GET, "/api/v1/things", &[("authorization", &auth)], "").await.unwrap();
    assert_eq!(reply.version, version);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), API_BODY);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-served-by"), Some("covet"));
    assert_eq!(reply.header("x-user"), Some("ada"), "headers reads metadata auth-jwt set later in the chain");
    assert_eq!(reply.header("ratelimit-limit"), Some("20"));
    assert!(reply.header("ratelimit-remaining").is_some());
    assert!(reply.header("x-request-id").is_some());
}

async fn assert_refusal_still_runs_the_earlier_filters(client: Client, version: Version) {
    let reply = client.get("/api/v1/things").await.unwrap();
    assert_eq!(reply.version, version);
    assert_problem(&reply, 401, "UNAUTHORIZED");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(reply.header("x-served-by"), Some("covet"), "tag's on_response runs on auth's answer");
    assert!(reply.header("x-user").is_none(), "no subject without a token");
    assert_eq!(reply.header("ratelimit-limit"), Some("20"), "limiter's on_response runs on auth's answer");
}

#[tokio::test]
async fn demo_chain_serves_an_authorised_request_over_http1() {
    let host = start().await;
    assert_authorised_request_passes_the_chain(host.http1(), Version::HTTP_11).await;
}

#[tokio::test]
async fn demo_chain_serves_an_authorised_request_over_http2() {
    let host = start().await;
    assert_authorised_request_passes_the_chain(host.http2(), Version::HTTP_2).await;
}

#[tokio::test]
async fn demo_chain_refuses_a_request_without_token_over_http1() {
    let host = start().await;
    assert_refusal_still_runs_the_earlier_filters(host.http1(), Version::HTTP_11).await;
}

#[tokio::test]
async fn demo_chain_refuses_a_request_without_token_over_http2() {
    let host = start().await;
    assert_refusal_still_runs_the_earlier_filters(host.http2(), Version::HTTP_2).await;
}

#[tokio::test]
async fn demo_chain_rate_limits_before_authenticating() {
    let host = start().await;
    let client = host.http1();
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(client.get("/api/x").await.unwrap().status.as_u16());
    }
    assert!(statuses.contains(&429), "25 quick requests against a burst of 20 were never limited: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
}
