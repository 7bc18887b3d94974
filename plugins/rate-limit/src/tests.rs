//! The plugin through its phases (the async contract, polled by
//! `testing::block_on`), with in-memory requests. Outcomes are made
//! deterministic by rates far from the test's speed: `1/h` never refills
//! during a test, a 1000/s bucket of one refills within a millisecond.

use std::{
    thread,
    time::{Duration, Instant},
};

use covet_plugin_api::testing::{TestRequest, TestResponse, block_on};
use serde_json::{Value, json};

use super::*;

fn plugin(config: Value) -> RateLimit {
    <RateLimit as AsyncPlugin>::init(Config::from_json(&config.to_string())).unwrap()
}

fn init_error(config: Value) -> String {
    <RateLimit as AsyncPlugin>::init(Config::from_json(&config.to_string())).err().expect("config accepted")
}

/// Runs `on_request`; `None` means the request went on.
fn request(plugin: &RateLimit, req: &mut TestRequest) -> Option<Response> {
    match block_on(AsyncPlugin::on_request(plugin, &mut req.view())) {
        Flow::Continue => None,
        Flow::Respond(response) | Flow::RespondAndContinue(response) => Some(response),
    }
}

/// Runs `on_response` on `resp`.
fn respond(plugin: &RateLimit, req: &mut TestRequest, resp: &mut TestResponse) {
    block_on(AsyncPlugin::on_response(plugin, &mut req.view(), &mut resp.view()));
}

fn sweeper_running(plugin: &RateLimit) -> bool {
    matches!(&plugin.backend, Backend::Memory { sweeper, .. } if sweeper.is_running())
}

fn allowed(plugin: &RateLimit, req: &mut TestRequest) -> bool {
    request(plugin, req).is_none()
}

fn from(ip: &str) -> TestRequest {
    TestRequest::get("/").client(&format!("{ip}:40000"))
}

fn with_header(value: &str) -> TestRequest {
    TestRequest::get("/").header("x-api-key", value)
}

#[test]
fn allows_the_burst_then_answers_429_with_every_header() {
    let limit = plugin(json!({"rate": "1/h", "burst": 2}));
    let mut req = from("10.0.0.1");
    assert!(allowed(&limit, &mut req));
    assert!(allowed(&limit, &mut req));
    let resp = request(&limit, &mut req).expect("third request allowed");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let retry_after: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(retry_after, 3600, "1/h: the next request is one hour away");
    assert_eq!(resp.header("ratelimit-limit"), Some("2"));
    assert_eq!(resp.header("ratelimit-remaining"), Some("0"));
    assert_eq!(resp.header("ratelimit-reset"), Some("3600"));
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["details"], json!({"retry_after_seconds": 3600}));
    assert_eq!(body["error"]["request_id"], "test-request");
    assert!(body["error"]["message"].as_str().unwrap().contains("retry in 3600 s"));
}

#[test]
fn allowed_requests_carry_metadata_and_ratelimit_headers() {
    let limit = plugin(json!({"rate": "1/h", "burst": 3}));
    let mut req = from("10.0.0.1");
    assert!(allowed(&limit, &mut req));
    assert_eq!(req.get_metadata("ratelimit.key"), Some("10.0.0.1"));
    assert_eq!(req.get_metadata("ratelimit.remaining"), Some("2"));
    let mut resp = TestResponse::new(200);
    respond(&limit, &mut req, &mut resp);
    assert_eq!(resp.get_header("ratelimit-limit"), Some("3"));
    assert_eq!(resp.get_header("ratelimit-remaining"), Some("2"));
    assert_eq!(resp.get_header("ratelimit-reset"), Some("3600"), "one request missing at 1/h");
}

#[test]
fn headers_false_leaves_allowed_responses_alone() {
    let limit = plugin(json!({"rate": "1/h", "headers": false}));
    let mut req = from("10.0.0.1");
    assert!(allowed(&limit, &mut req));
    let mut resp = TestResponse::new(200);
    respond(&limit, &mut req, &mut resp);
    assert!(resp.headers.is_empty());
    assert_eq!(request(&limit, &mut req).unwrap().header("retry-after"), Some("3600"));
}

#[test]
fn on_response_adds_nothing_when_on_request_refused() {
    let limit = plugin(json!({"rate": "1/h"}));
    let mut req = from("10.0.0.1");
    let mut resp = TestResponse::new(502);
    respond(&limit, &mut req, &mut resp);
    assert!(resp.headers.is_empty());
}

#[test]
fn different_ips_have_independent_buckets() {
    let limit = plugin(json!({"rate": "1/h"}));
    assert!(allowed(&limit, &mut from("10.0.0.1")));
    assert!(!allowed(&limit, &mut from("10.0.0.1")));
    assert!(allowed(&limit, &mut from("10.0.0.2")));
    let mut v6 = TestRequest::get("/").client("[2001:db8::1]:443");
    assert!(allowed(&limit, &mut v6));
    assert_eq!(v6.get_metadata("ratelimit.key"), Some("2001:db8::1"));
    assert_eq!(limit.tracked_keys(), 3);
}

#[test]
fn header_key_limits_per_header_value_not_per_ip() {
    let limit = plugin(json!({"rate": "1/h", "key": "header:X-Api-Key"}));
    let mut first = with_header("k1");
    assert!(allowed(&limit, &mut first));
    assert_eq!(first.get_metadata("ratelimit.key"), Some("k1"));
    assert!(!allowed(&limit, &mut with_header("k1")));
    assert!(allowed(&limit, &mut with_header("k2")), "same IP, other key");
}

#[test]
fn metadata_key_limits_per_metadata_value() {
    let limit = plugin(json!({"rate": "1/h", "key": "metadata:jwt.sub"}));
    let user = |sub: &str| TestRequest::get("/").metadata("jwt.sub", sub);
    let mut alice = user("alice");
    assert!(allowed(&limit, &mut alice));
    assert_eq!(alice.get_metadata("ratelimit.key"), Some("alice"));
    assert!(!allowed(&limit, &mut user("alice")));
    assert!(allowed(&limit, &mut user("bob")));
}

#[test]
fn missing_key_reject_answers_400_without_making_a_bucket() {
    let limit = plugin(json!({"rate": "1/h", "key": "header:x-api-key", "missing_key": "reject"}));
    for mut req in [TestRequest::get("/"), with_header("  ")] {
        let resp = request(&limit, &mut req).expect("request without key allowed");
        assert_eq!(resp.status, 400);
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"]["code"], "RATE_LIMIT_KEY_MISSING");
        assert_eq!(body["error"]["details"]["key"], "header:x-api-key");
        assert_eq!(body["error"]["request_id"], "test-request");
    }
    assert_eq!(limit.tracked_keys(), 0);
    assert!(allowed(&limit, &mut with_header("k1")));
}

#[test]
fn missing_key_shared_puts_keyless_requests_in_one_bucket() {
    let limit = plugin(json!({"rate": "1/h", "key": "metadata:jwt.sub"}));
    let mut anonymous = from("10.0.0.1");
    assert!(allowed(&limit, &mut anonymous));
    assert_eq!(anonymous.get_metadata("ratelimit.key"), Some(""));
    assert!(!allowed(&limit, &mut from("10.0.0.2")), "another client, same shared bucket");
    assert!(allowed(&limit, &mut TestRequest::get("/").metadata("jwt.sub", "alice")));
}

#[test]
fn evicting_removes_keys_whose_bucket_has_refilled() {
    // Burst 1 at 1000/s: a bucket is full again 1 ms after its request.
    let limit = plugin(json!({"rate": "1000/s", "burst": 1}));
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        assert!(allowed(&limit, &mut from(ip)));
    }
    assert_eq!(limit.tracked_keys(), 3);
    thread::sleep(Duration::from_millis(20));
    limit.evict_idle_keys();
    assert_eq!(limit.tracked_keys(), 0);
}

#[test]
fn evicting_keeps_keys_whose_bucket_is_still_draining() {
    let limit = plugin(json!({"rate": "1/h", "burst": 5}));
    assert!(allowed(&limit, &mut from("10.0.0.1")));
    limit.evict_idle_keys();
    assert_eq!(limit.tracked_keys(), 1);
}

#[test]
fn the_sweeper_thread_evicts_on_its_own() {
    let settings: Settings = Config::from_json(r#"{"rate": "1000/s", "burst": 1}"#).parse().unwrap();
    let limit = RateLimit::start(settings.validate().unwrap(), Duration::from_millis(5)).unwrap();
    assert!(allowed(&limit, &mut from("10.0.0.1")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while limit.tracked_keys() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(limit.tracked_keys(), 0);
    AsyncPlugin::shutdown(&limit);
}

#[test]
fn shutdown_stops_and_joins_the_sweeper_promptly() {
    let limit = plugin(json!({"rate": "10/s"}));
    assert!(sweeper_running(&limit));
    let started = Instant::now();
    AsyncPlugin::shutdown(&limit);
    assert!(started.elapsed() < SWEEP_PERIOD, "shutdown waited for the next sweep");
    assert!(!sweeper_running(&limit));
    let Backend::Memory { limiter, .. } = &limit.backend else { unreachable!() };
    assert_eq!(Arc::strong_count(limiter), 1, "the thread has released the limiter");
    AsyncPlugin::shutdown(&limit);
    assert!(allowed(&limit, &mut from("10.0.0.1")), "requests still work, only eviction stopped");
}

#[test]
fn init_rejects_bad_config_with_the_reason() {
    assert_eq!(init_error(json!({"rate": "0/s"})), "invalid rate `0/s`: the count must be at least 1");
    assert_eq!(
        init_error(json!({"rate": "5/m", "key": "query:id"})),
        "invalid key `query:id`: expected `ip`, `header:<name>` or `metadata:<key>`"
    );
    assert!(init_error(json!({"rate": "5/m", "burts": 3})).starts_with("unknown field `burts`"));
}

#[test]
fn shared_backend_without_eval_sets_the_same_headers_and_429_as_in_process() {
    let store = crate::test_store::MemoryStore::new();
    let settings: Settings = Config::from_json(r#"{"rate": "1/h", "burst": 2, "backend": "shared"}"#).parse().unwrap();
    let limit = RateLimit::shared(settings.validate().unwrap(), "per-client", Box::new(store.clone())).unwrap();
    assert!(AsyncPlugin::on_request_now(&limit, &mut from("10.0.0.1").view()).is_none(), "it awaits the state");
    let mut req = from("10.0.0.1");
    assert!(allowed(&limit, &mut req));
    assert_eq!(req.get_metadata("ratelimit.key"), Some("10.0.0.1"));
    assert_eq!(req.get_metadata("ratelimit.remaining"), Some("1"));
    let mut resp = TestResponse::new(200);
    respond(&limit, &mut req, &mut resp);
    assert_eq!(resp.get_header("ratelimit-limit"), Some("2"));
    assert_eq!(resp.get_header("ratelimit-remaining"), Some("1"));
    assert_eq!(resp.get_header("ratelimit-reset"), Some("3600"));
    assert!(allowed(&limit, &mut from("10.0.0.1")));
    let refused = request(&limit, &mut from("10.0.0.1")).expect("third request allowed");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("3600"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    assert!(allowed(&limit, &mut from("10.0.0.2")), "another client, another bucket");
    assert_eq!(limit.tracked_keys(), 0, "nothing is kept in process");
    assert_eq!(store.evals(), 1, "eval was tried once");
}
