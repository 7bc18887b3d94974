//! Rule and labelling tests: bypass rules, `ttl` overrides, methods and
//! invalidation, tags, `Cache-Status` parameters, freshness from `Expires`
//! and the heuristic.

use covet_plugin_api::testing::TestRequest;

use crate::{
    freshness::{Arrival, Verdict, judge},
    tests::{cache, exchange, get, ok},
    tests_flow::with_method,
};

fn cached(c: &crate::Cache, req: impl Fn() -> TestRequest, headers: &[(&str, &str)]) -> bool {
    exchange(c, req(), &|_: &TestRequest| ok(headers, "x"));
    !exchange(c, req(), &|_: &TestRequest| ok(&[], "y")).origin
}

#[test]
fn bypass_rules_match_prefix_header_and_cookie() {
    let c = cache(
        r#"{"rules": [
            {"path_prefix": "/admin/", "bypass": true},
            {"header": "X-No-Cache", "bypass": true},
            {"cookie": "session", "bypass": true}
        ]}"#,
    );
    let fresh = [("cache-control", "max-age=60")];
    let admin = exchange(&c, get("/admin/x"), &|_: &TestRequest| ok(&fresh, "x"));
    assert_eq!((admin.cs(), admin.meta.as_deref()), ("covet; fwd=bypass", Some("bypass")));
    assert!(!cached(&c, || get("/admin/x"), &fresh));
    assert!(!cached(&c, || get("/h").header("x-no-cache", "1"), &fresh));
    assert!(!cached(&c, || get("/k").header("cookie", "a=1; session=abc"), &fresh));
    assert!(cached(&c, || get("/k").header("cookie", "sessionx=1"), &fresh), "another cookie");
    assert!(cached(&c, || get("/public"), &fresh));
}

#[test]
fn ttl_from_a_rule_or_the_config_replaces_the_response_lifetime() {
    let c = cache(r#"{"ttl": "1s", "rules": [{"path_prefix": "/static/", "ttl": "1h"}]}"#);
    let got = exchange(&c, get("/static/a.css"), &|_: &TestRequest| ok(&[], "a"));
    assert_eq!(got.cs(), "covet; fwd=uri-miss; stored", "no freshness from the origin, the rule's ttl");
    let hit = exchange(&c, get("/static/a.css"), &|_: &TestRequest| ok(&[], "b"));
    assert!(hit.cs().starts_with("covet; hit; ttl=3599") || hit.cs().starts_with("covet; hit; ttl=3600"), "{}", hit.cs());
    assert!(!cached(&c, || get("/other"), &[("cache-control", "no-store")]), "ttl never stores no-store");
    assert!(!cached(&c, || get("/priv"), &[("cache-control", "private")]), "nor private");
}

#[test]
fn other_methods_bypass_and_unsafe_ones_invalidate() {
    let c = cache("null");
    let fresh = [("cache-control", "max-age=60"), ("vary", "accept")];
    exchange(&c, get("/item").header("accept", "a"), &|_: &TestRequest| ok(&fresh, "a"));
    exchange(&c, get("/item").header("accept", "b"), &|_: &TestRequest| ok(&fresh, "b"));
    let options = exchange(&c, with_method(get("/item"), "OPTIONS"), &|_: &TestRequest| ok(&[], ""));
    assert_eq!(options.cs(), "covet; fwd=method");
    assert!(!exchange(&c, get("/item").header("accept", "a"), &|_: &TestRequest| ok(&[], "y")).origin, "OPTIONS changes nothing");
    let mut failed = ok(&[], "");
    failed.status = 500;
    exchange(&c, with_method(get("/item"), "POST"), &|_: &TestRequest| failed.clone());
    assert!(!exchange(&c, get("/item").header("accept", "a"), &|_: &TestRequest| ok(&[], "y")).origin, "a failed POST changes nothing");
    let post = exchange(&c, with_method(get("/item"), "POST"), &|_: &TestRequest| ok(&[], "created"));
    assert_eq!(post.meta.as_deref(), Some("bypass"));
    assert!(exchange(&c, get("/item").header("accept", "a"), &|_: &TestRequest| ok(&[], "y")).origin, "invalidated");
    assert!(exchange(&c, get("/item").header("accept", "b"), &|_: &TestRequest| ok(&[], "y")).origin, "every variant");
}

#[test]
fn tags_are_recorded_and_stripped_and_the_key_is_exposed_on_request() {
    let c = cache(r#"{"expose_key": true}"#);
    let got = exchange(&c, get("/t?b=2&a=1"), &|_: &TestRequest| {
        ok(&[("cache-control", "max-age=60"), ("surrogate-key", "a b"), ("cache-tag", "c, d")], "x")
    });
    assert_eq!(got.header("surrogate-key"), None);
    assert_eq!(got.header("cache-tag"), None);
    assert_eq!(got.cs(), r#"covet; fwd=uri-miss; stored; key="example.com/t?a=1&b=2""#);
    let entry = c.store().get_local("example.com/t?a=1&b=2").expect("stored");
    assert_eq!(entry.meta.tags, ["a", "b", "c", "d"]);
    assert_eq!((entry.meta.host.as_str(), entry.meta.path.as_str()), ("example.com", "/t"));
    let hit = exchange(&c, get("/t?a=1&b=2"), &|_: &TestRequest| ok(&[], "y"));
    assert_eq!(hit.header("surrogate-key"), None, "not stored either");
    let quiet = cache(r#"{"status_header": false, "strip_tag_headers": false}"#);
    let got = exchange(&quiet, get("/t"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60"), ("cache-tag", "c")], "x"));
    assert_eq!((got.header("cache-status"), got.header("cache-tag")), (None, Some("c")));
}

fn arrival<'a>(status: u16, headers: &'a [covet_plugin_api::Header], now: u64) -> Arrival<'a> {
    Arrival { status, headers, request_time_ms: now, response_time_ms: now, ttl: None, authorized: false }
}

#[test]
fn lifetimes_from_expires_and_the_heuristic() {
    use covet_plugin_api::Header;
    let c = cache("null");
    let now = 1_700_000_000_000u64;
    let date = |ms: u64| httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
    let expires = [Header::new("date", date(now)), Header::new("expires", date(now + 120_000))];
    let Verdict::Store(p, _) = judge(&arrival(200, &expires, now), c.settings()) else { panic!("stored") };
    assert_eq!(p.lifetime_ms, 120_000);
    let bad = [Header::new("expires", "0"), Header::new("etag", "\"e\"")];
    let Verdict::Store(p, _) = judge(&arrival(200, &bad, now), c.settings()) else { panic!("stored for revalidation") };
    assert_eq!(p.lifetime_ms, 0, "an invalid Expires is already expired");
    let modified = [Header::new("date", date(now)), Header::new("last-modified", date(now - 100_000_000))];
    let Verdict::Store(p, _) = judge(&arrival(200, &modified, now), c.settings()) else { panic!("heuristic") };
    assert_eq!(p.lifetime_ms, 10_000_000, "10% of the time since Last-Modified");
    let ancient = [Header::new("date", date(now)), Header::new("last-modified", date(now - 100 * 86_400_000))];
    let Verdict::Store(p, _) = judge(&arrival(200, &ancient, now), c.settings()) else { panic!("heuristic") };
    assert_eq!(p.lifetime_ms, 86_400_000, "at most a day");
    assert!(matches!(judge(&arrival(302, &modified, now), c.settings()), Verdict::Skip(_)), "302 is not heuristically cacheable");
    let off = cache(r#"{"heuristic": false}"#);
    assert!(matches!(judge(&arrival(200, &[Header::new("date", date(now))], now), off.settings()), Verdict::Skip(_)));
    let aged = [Header::new("date", date(now - 5_000)), Header::new("age", "30"), Header::new("cache-control", "max-age=60")];
    let Verdict::Store(p, _) = judge(&arrival(200, &aged, now), c.settings()) else { panic!("stored") };
    assert_eq!(p.initial_age_ms, 30_000, "Age beats the apparent age");
}

#[test]
fn stored_headers_leave_out_hop_by_hop_and_qualified_private_fields() {
    use covet_plugin_api::Header;
    use crate::freshness::{freshen, storable_headers};
    let headers = [
        Header::new("cache-control", "max-age=60, private=\"x-user\""),
        Header::new("connection", "x-hop"),
        Header::new("x-hop", "1"),
        Header::new("x-user", "alice"),
        Header::new("transfer-encoding", "chunked"),
        Header::new("content-type", "text/plain"),
        Header::new("cache-tag", "t"),
        Header::new("age", "3"),
    ];
    let kept = storable_headers(&headers, &["cache-tag".to_string()]);
    let names: Vec<&str> = kept.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["cache-control", "content-type"]);
    let fresh = [Header::new("content-type", "text/html"), Header::new("content-length", "0"), Header::new("x-new", "1")];
    let merged = freshen(&kept, &fresh);
    let pairs: Vec<(&str, &str)> = merged.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
    assert_eq!(pairs, [("cache-control", "max-age=60, private=\"x-user\""), ("content-type", "text/html"), ("x-new", "1")]);
}

#[test]
fn cache_status_texts_and_metadata_values() {
    use crate::status::Outcome;
    assert_eq!(Outcome::Hit { ttl: 5 }.header("covet", None), "covet; hit; ttl=5");
    assert_eq!(Outcome::StaleIfError { stale: 3 }.header("edge", None), "edge; hit; ttl=-3; detail=stale-if-error");
    assert_eq!(Outcome::Stale { fwd_status: 304, stored: true }.metadata(), "revalidated");
    assert_eq!(Outcome::Request { stored: false }.header("covet", Some("h/p\nx: \"q\"")), r#"covet; fwd=request; key="h/p x: \"q\"""#);
    assert_eq!(Outcome::Method.metadata(), "bypass");
}
