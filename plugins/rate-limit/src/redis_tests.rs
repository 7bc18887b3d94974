//! The plugin with `backend: shared` (and its old name `redis`) through its
//! async phases, on a real redis-server: the same headers and 429 as in
//! process, and `on_error` when the server is gone (fail-open metadata,
//! fail-closed 503).

use covet_plugin_api::testing::{TestRequest, TestResponse, block_on};
use serde_json::{Value, json};

use super::*;
use crate::test_redis::{RedisServer, RedisStore};

fn plugin(redis: &RedisServer, config: Value) -> RateLimit {
    let policy = Config::from_json(&config.to_string()).parse::<Settings>().unwrap().validate().unwrap();
    RateLimit::shared(policy, "per-client", Box::new(RedisStore::new(redis))).unwrap()
}

fn request(plugin: &RateLimit, req: &mut TestRequest) -> Option<Response> {
    match block_on(AsyncPlugin::on_request(plugin, &mut req.view())) {
        Flow::Continue => None,
        Flow::Respond(response) | Flow::RespondAndContinue(response) => Some(response),
    }
}

fn from(ip: &str) -> TestRequest {
    TestRequest::get("/").client(&format!("{ip}:40000"))
}

#[test]
fn redis_backend_sets_the_same_headers_and_429_as_in_process() {
    let redis = RedisServer::start();
    let limit = plugin(&redis, json!({"rate": "1/h", "burst": 2, "backend": "shared"}));
    let mut req = from("10.0.0.1");
    assert!(request(&limit, &mut req).is_none());
    assert_eq!(req.get_metadata("ratelimit.key"), Some("10.0.0.1"));
    assert_eq!(req.get_metadata("ratelimit.remaining"), Some("1"));
    let mut resp = TestResponse::new(200);
    block_on(AsyncPlugin::on_response(&limit, &mut req.view(), &mut resp.view()));
    assert_eq!(resp.get_header("ratelimit-limit"), Some("2"));
    assert_eq!(resp.get_header("ratelimit-remaining"), Some("1"));
    assert_eq!(resp.get_header("ratelimit-reset"), Some("3600"));
    assert!(request(&limit, &mut from("10.0.0.1")).is_none());
    let refused = request(&limit, &mut from("10.0.0.1")).expect("third request allowed");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("3600"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert!(request(&limit, &mut from("10.0.0.2")).is_none(), "another client, another bucket");
    assert_eq!(limit.tracked_keys(), 0, "nothing is kept in process");
}

#[test]
fn redis_down_with_on_error_allow_lets_requests_through_marked_fail_open() {
    let mut redis = RedisServer::start();
    let limit = plugin(&redis, json!({"rate": "1/h", "burst": 1, "backend": "redis"}));
    redis.kill();
    for _ in 0..3 {
        let mut req = from("10.0.0.1");
        assert!(request(&limit, &mut req).is_none());
        assert_eq!(req.get_metadata("ratelimit.fail_open"), Some("connect"));
        let mut resp = TestResponse::new(200);
        block_on(AsyncPlugin::on_response(&limit, &mut req.view(), &mut resp.view()));
        assert!(resp.headers.is_empty(), "no bucket was read, so no RateLimit-* headers");
    }
}

#[test]
fn redis_down_with_on_error_deny_answers_503() {
    let mut redis = RedisServer::start();
    let config = json!({"rate": "1/h", "backend": "redis", "redis": {"on_error": "deny"}});
    let limit = plugin(&redis, config);
    redis.kill();
    let resp = request(&limit, &mut from("10.0.0.1")).expect("allowed without Redis");
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), Some("1"));
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMIT_UNAVAILABLE");
    assert_eq!(body["error"]["details"]["reason"], "connect");
}
