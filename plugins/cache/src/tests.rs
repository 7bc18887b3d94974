//! Unit tests of the rules (directives, freshness, keys, config) and the
//! helpers the flow tests share: a [`Client`] that runs one exchange
//! through the plugin's phases against an origin closure, as the host would.

use covet_plugin_api::{
    Config, Flow, Response,
    testing::{TestRequest, TestResponse, block_on},
};

use crate::{
    Cache,
    directives::Directives,
    freshness::{Ask, Use, evaluate},
    key,
    policy::Policy,
    settings::{ByteSize, Settings},
};

/// A cache from a JSON config (no host: L1 only).
pub fn cache(json: &str) -> Cache {
    let settings: Settings = Config::from_json(json).parse().unwrap();
    Cache::new(settings, None).unwrap()
}

/// What the client got.
#[derive(Debug)]
pub struct Got {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// `cache.status`.
    pub meta: Option<String>,
    /// Whether the origin was asked (in line, not in the background).
    pub origin: bool,
    /// The request as the origin saw it (for the validators).
    pub sent: Option<TestRequest>,
}

impl Got {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// `Cache-Status`.
    pub fn cs(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
}

fn from_response(resp: Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let headers = resp.headers.iter().map(|h| (h.name.to_string(), h.value.to_string())).collect();
    (resp.status, headers, resp.body.to_vec())
}

/// Runs on_request (the fast path, then the waiting one).
pub fn on_request(cache: &Cache, req: &mut TestRequest) -> Flow {
    let mut view = req.view();
    match cache.request_now(&mut view) {
        Some(flow) => flow,
        None => block_on(cache.request_waiting(&mut view)),
    }
}

/// Runs on_response.
pub fn on_response(cache: &Cache, req: &mut TestRequest, resp: &mut TestResponse) {
    cache.response(&mut req.view(), &mut resp.view());
}

/// One exchange: the cache's phases around `origin` (run for a forward, and
/// for the background run of `RespondAndContinue`).
pub fn exchange(cache: &Cache, mut req: TestRequest, origin: &dyn Fn(&TestRequest) -> TestResponse) -> Got {
    match on_request(cache, &mut req) {
        Flow::Continue => {
            let mut resp = origin(&req);
            on_response(cache, &mut req, &mut resp);
            let meta = req.get_metadata("cache.status").map(str::to_string);
            Got { status: resp.status, headers: resp.headers, body: resp.body, meta, origin: true, sent: Some(req) }
        }
        Flow::Respond(r) => {
            let (status, headers, body) = from_response(r);
            let meta = req.get_metadata("cache.status").map(str::to_string);
            Got { status, headers, body, meta, origin: false, sent: None }
        }
        Flow::RespondAndContinue(r) => {
            let (status, headers, body) = from_response(r);
            let meta = req.get_metadata("cache.status").map(str::to_string);
            let mut fresh = origin(&req);
            on_response(cache, &mut req, &mut fresh);
            Got { status, headers, body, meta, origin: false, sent: Some(req) }
        }
    }
}

/// A 200 with these headers and body.
pub fn ok(headers: &[(&str, &str)], body: &str) -> TestResponse {
    let mut r = TestResponse::new(200);
    r.headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    r.body = body.as_bytes().to_vec();
    r
}

pub fn get(uri: &str) -> TestRequest {
    TestRequest::get(uri).header("host", "Example.COM:8080")
}

#[test]
fn directives_parse_and_first_value_wins() {
    let d = Directives::parse(r#"public, max-age=60, s-maxage="30", no-cache="set-cookie, x-a", max-age=5, stale-while-revalidate=10"#);
    assert!(d.public && !d.no_cache && !d.private);
    assert_eq!((d.max_age, d.s_maxage, d.stale_while_revalidate), (Some(60), Some(30), Some(10)));
    assert_eq!(d.no_cache_fields, ["set-cookie", "x-a"]);
    let bad = Directives::parse("max-age=abc, MAX-STALE, Only-If-Cached");
    assert_eq!(bad.max_age, Some(0), "an invalid max-age is stale");
    assert_eq!(bad.max_stale, Some(None));
    assert!(bad.only_if_cached);
}

fn policy(lifetime_s: u64) -> Policy {
    Policy { lifetime_ms: lifetime_s * 1000, ..Policy::default() }
}

#[test]
fn evaluate_fresh_stale_and_request_limits() {
    let p = policy(60);
    let at = 1_000_000;
    assert_eq!(evaluate(&p, at, at + 10_000, &Ask::default()), Use::Fresh { age_secs: 10, ttl_secs: 50 });
    let old = Ask { max_age: Some(5), ..Ask::default() };
    assert!(matches!(evaluate(&p, at, at + 10_000, &old), Use::Revalidate { .. }));
    let close = Ask { min_fresh: Some(55), ..Ask::default() };
    assert!(matches!(evaluate(&p, at, at + 10_000, &close), Use::Revalidate { .. }));
    let stale_ok = Ask { max_stale: Some(Some(10)), ..Ask::default() };
    assert_eq!(evaluate(&p, at, at + 65_000, &stale_ok), Use::Fresh { age_secs: 65, ttl_secs: -5 });
    let swr = Policy { swr_ms: 10_000, sie_ms: 100_000, ..policy(60) };
    assert_eq!(evaluate(&swr, at, at + 65_000, &Ask::default()), Use::StaleWhileRevalidate { age_secs: 65, stale_secs: 5 });
    assert_eq!(evaluate(&swr, at, at + 75_000, &Ask::default()), Use::Revalidate { age_secs: 75, stale_secs: 15, if_error: true });
    let strict = Policy { must_revalidate: true, ..swr };
    assert_eq!(evaluate(&strict, at, at + 65_000, &stale_ok), Use::Revalidate { age_secs: 65, stale_secs: 5, if_error: false });
    let no_cache = Policy { no_cache: true, ..policy(60) };
    assert!(matches!(evaluate(&no_cache, at, at + 1, &Ask::default()), Use::Revalidate { .. }));
}

#[test]
fn keys_lowercase_the_host_sort_the_query_and_add_headers() {
    let plain = cache("null");
    let req = &mut get("/a/b?z=1&a=2&m").header("x-tenant", "t1");
    assert_eq!(key::primary(&req.view(), plain.settings()), "example.com/a/b?a=2&m&z=1");
    let custom = cache(r#"{"key": {"host": false, "query": ["z", "q"], "headers": ["X-Tenant"]}}"#);
    assert_eq!(key::primary(&req.view(), custom.settings()), "/a/b?z=1\nx-tenant: t1");
    let none = cache(r#"{"key": {"query": "none"}}"#);
    assert_eq!(key::primary(&req.view(), none.settings()), "example.com/a/b");
    let v6 = &mut TestRequest::get("/").header("host", "[::1]:443");
    assert_eq!(key::primary(&v6.view(), plain.settings()), "[::1]/");
}

#[test]
fn variant_keys_normalise_whitespace_and_vary_star_is_none() {
    let a = &mut get("/").header("accept-encoding", "gzip,   br");
    let b = &mut get("/").header("accept-encoding", "gzip, br");
    let names = key::vary_names("Accept-Encoding, accept-encoding").unwrap();
    assert_eq!(names, ["accept-encoding"]);
    assert_eq!(key::variant("k", &names, &a.view()), key::variant("k", &names, &b.view()));
    assert_ne!(key::variant("k", &names, &get("/").view()), key::variant("k", &names, &b.view()));
    assert!(key::vary_names("accept, *").is_none());
}

#[test]
fn config_reads_sizes_durations_and_refuses_unknown_keys() {
    let s: Settings = Config::from_json(r#"{"max_memory": "64KiB", "lock_timeout": "250ms", "ttl": 60}"#).parse().unwrap();
    assert_eq!(s.max_memory, ByteSize(64 << 10));
    assert_eq!(s.lock_timeout.0, std::time::Duration::from_millis(250));
    assert_eq!(s.ttl.unwrap().0, std::time::Duration::from_secs(60));
    assert_eq!(ByteSize::parse("1GiB").unwrap(), ByteSize(1 << 30));
    assert!(ByteSize::parse("12 parsecs").unwrap_err().contains("unknown unit"));
    let err = Config::from_json(r#"{"max_memroy": 1}"#).parse::<Settings>().unwrap_err();
    assert!(err.contains("unknown field `max_memroy`"), "{err}");
    let err = Config::from_json(r#"{"key": {"hots": true}}"#).parse::<Settings>().unwrap_err();
    assert!(err.contains("unknown field `hots`"), "{err}");
    let err = crate::settings::parse(r#"{"purge_poll": "soon"}"#).unwrap_err();
    assert!(err.starts_with("purge_poll: invalid duration \"soon\""), "{err}");
    let err = crate::settings::parse(r#"{"rules": [{"path_prefix": "/a", "ttl": "1x"}]}"#).unwrap_err();
    assert!(err.starts_with("rules[0].ttl: invalid duration"), "{err}");
    assert!(crate::settings::parse("null").is_ok());
    let err = Config::from_json(r#"{"purge_poll": "1ms"}"#).parse::<Settings>().unwrap().check().unwrap_err();
    assert!(err.to_string().contains("purge_poll"), "{err}");
    let err = Config::from_json(r#"{"rules": [{"path_prefix": "/a"}]}"#).parse::<Settings>().unwrap().check().unwrap_err();
    assert!(err.to_string().contains("rules[0] does nothing"), "{err}");
}

/// The cost of a fresh L1 hit through the plugin's fast path (with the test
/// request view, not the host's): `cargo test -p covet-cache --release -- --ignored --nocapture hit_cost`.
#[test]
#[ignore = "a measurement, not a check"]
fn hit_cost() {
    let c = cache("null");
    exchange(&c, get("/bench?b=1&a=2"), &|_: &TestRequest| ok(&[("cache-control", "max-age=600"), ("content-type", "application/json")], "{}"));
    let rounds = 200_000;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        let mut req = get("/bench?b=1&a=2");
        let flow = c.request_now(&mut req.view());
        assert!(matches!(flow, Some(Flow::Respond(_))));
    }
    let per_hit = started.elapsed() / rounds;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        let mut req = get("/bench?b=1&a=2");
        let mut view = req.view();
        view.set_metadata("cache.status", "hit");
        view.set_metadata("cache.key", "example.com/bench?a=2&b=1");
        std::hint::black_box(&view);
    }
    let harness = started.elapsed() / rounds;
    println!("fresh L1 hit: {per_hit:?} per call, of which {harness:?} is the test request and its metadata");
}
