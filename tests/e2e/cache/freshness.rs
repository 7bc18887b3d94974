//! Freshness (RFC 9111 4.2) and storability (RFC 9111 3): `s-maxage` over
//! `max-age` over `Expires - Date` over the heuristic; `Age` on every reply
//! from the cache, counting the origin's own `Age`; `no-store` (response and
//! request), `private` and `Set-Cookie` never stored; a request with
//! `Authorization` stored only with `public`, `s-maxage` or
//! `must-revalidate`; the config's `ttl` and per-path rules (TTL override,
//! bypass by path, header and cookie).

use std::time::Duration;

use covet_e2e::{Answer, Origin, http_date_in};
use serde_json::json;

use super::{age, assert_hit, assert_miss, cache_status, gateway, get, get_with, is_hit, let_expire, ttl};

#[tokio::test]
async fn max_age_is_fresh_and_age_grows_on_hits() {
    let origin = Origin::start().await;
    origin.set("/fresh", Answer::cached("max-age=60", "fresh body"));
    let host = gateway(&origin, json!({})).await;
    let first = assert_miss(&host, &origin, "/fresh").await;
    assert_eq!(cache_status(&first), "covet; fwd=uri-miss; stored");
    let hit = assert_hit(&host, &origin, "/fresh").await;
    assert_eq!(hit.text(), "fresh body");
    let first_age = age(&hit);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let later = assert_hit(&host, &origin, "/fresh").await;
    // Whole seconds of a time that grew by 2.1 s grow by at least 2.
    assert!(age(&later) >= first_age + 2, "Age grows with time in the cache: {first_age} then {:?}", later.headers);
    let left = ttl(&cache_status(&later));
    assert!((1..=58).contains(&left), "ttl = max-age - age: {}", cache_status(&later));
}

#[tokio::test]
async fn max_age_runs_out() {
    let origin = Origin::start().await;
    origin.set("/short", Answer::cached("max-age=1", "short"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/short").await;
    let_expire().await;
    let again = assert_miss(&host, &origin, "/short").await;
    assert_eq!(again.text(), "short");
}

#[tokio::test]
async fn s_maxage_wins_over_max_age() {
    let origin = Origin::start().await;
    origin.set("/shared-longer", Answer::cached("max-age=0, s-maxage=60", "a"));
    origin.set("/shared-shorter", Answer::cached("max-age=60, s-maxage=0", "b"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/shared-longer").await;
    assert_hit(&host, &origin, "/shared-longer").await;
    assert_miss(&host, &origin, "/shared-shorter").await;
    assert_miss(&host, &origin, "/shared-shorter").await;
}

#[tokio::test]
async fn expires_minus_date_gives_the_lifetime() {
    let origin = Origin::start().await;
    origin.set("/expires-later", Answer::ok("later").header("expires", &http_date_in(120)));
    origin.set("/expired", Answer::ok("past").header("expires", &http_date_in(-120)));
    origin.set("/expires-bad", Answer::ok("bad").header("expires", "0"));
    let host = gateway(&origin, json!({ "heuristic": false })).await;
    assert_miss(&host, &origin, "/expires-later").await;
    let hit = assert_hit(&host, &origin, "/expires-later").await;
    assert!((100..=120).contains(&ttl(&cache_status(&hit))), "{}", cache_status(&hit));
    for path in ["/expired", "/expires-bad"] {
        assert_miss(&host, &origin, path).await;
        assert_miss(&host, &origin, path).await;
    }
    // max-age beats Expires.
    origin.set("/both", Answer::cached("max-age=60", "both").header("expires", &http_date_in(-120)));
    assert_miss(&host, &origin, "/both").await;
    assert_hit(&host, &origin, "/both").await;
}

#[tokio::test]
async fn the_origins_age_counts() {
    let origin = Origin::start().await;
    origin.set("/aged", Answer::cached("max-age=60", "aged").header("age", "30"));
    origin.set("/too-old", Answer::cached("max-age=60", "old").header("age", "100"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/aged").await;
    let hit = assert_hit(&host, &origin, "/aged").await;
    assert!(age(&hit) >= 30, "the Age it arrived with counts: {:?}", hit.headers);
    assert!(ttl(&cache_status(&hit)) <= 30, "{}", cache_status(&hit));
    assert_miss(&host, &origin, "/too-old").await;
    assert_miss(&host, &origin, "/too-old").await;
}

#[tokio::test]
async fn heuristic_freshness_from_last_modified() {
    let origin = Origin::start().await;
    origin.set("/doc", Answer::ok("doc").header("last-modified", &http_date_in(-10 * 86_400)));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/doc").await;
    let hit = assert_hit(&host, &origin, "/doc").await;
    let left = ttl(&cache_status(&hit));
    assert!((80_000..=86_400).contains(&left), "10% of 10 days, at most a day: {}", cache_status(&hit));
    let strict = gateway(&origin, json!({ "heuristic": false })).await;
    assert_miss(&strict, &origin, "/doc").await;
    assert_miss(&strict, &origin, "/doc").await;
}

#[tokio::test]
async fn no_store_private_and_set_cookie_are_never_stored() {
    let origin = Origin::start().await;
    origin.set("/no-store", Answer::cached("no-store, max-age=60", "x"));
    origin.set("/private", Answer::cached("private, max-age=60", "x"));
    origin.set("/cookie", Answer::cached("max-age=60", "x").header("set-cookie", "sid=1"));
    origin.set("/vary-star", Answer::cached("max-age=60", "x").header("vary", "*"));
    let host = gateway(&origin, json!({})).await;
    for path in ["/no-store", "/private", "/cookie", "/vary-star"] {
        let first = assert_miss(&host, &origin, path).await;
        assert!(!cache_status(&first).contains("stored"), "{path}: {}", cache_status(&first));
        assert_miss(&host, &origin, path).await;
    }
}

#[tokio::test]
async fn a_request_with_no_store_is_not_stored() {
    let origin = Origin::start().await;
    origin.set("/asked", Answer::cached("max-age=60", "x"));
    let host = gateway(&origin, json!({})).await;
    let first = get_with(&host, "/asked", &[("cache-control", "no-store")]).await;
    assert_eq!((first.status.as_u16(), origin.hits("/asked")), (200, 1));
    assert_miss(&host, &origin, "/asked").await;
    assert_hit(&host, &origin, "/asked").await;
}

#[tokio::test]
async fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let origin = Origin::start().await;
    let cases = [
        ("/auth/plain", "max-age=60", 2),
        ("/auth/public", "public, max-age=60", 1),
        ("/auth/s-maxage", "s-maxage=60", 1),
        ("/auth/must-revalidate", "must-revalidate, max-age=60", 1),
    ];
    for (path, cache_control, _) in cases {
        origin.set(path, Answer::cached(cache_control, "mine"));
    }
    let host = gateway(&origin, json!({})).await;
    let auth = [("authorization", "Bearer abc")];
    for (path, cache_control, expected) in cases {
        for _ in 0..2 {
            assert_eq!(get_with(&host, path, &auth).await.status, 200);
        }
        assert_eq!(origin.hits(path), expected, "{path} with {cache_control}");
    }
}

#[tokio::test]
async fn the_ttl_config_replaces_the_origins_lifetime() {
    let origin = Origin::start().await;
    origin.set("/short", Answer::cached("max-age=1", "short"));
    origin.set("/never", Answer::cached("no-store", "never"));
    let host = gateway(&origin, json!({ "ttl": "60s" })).await;
    assert_miss(&host, &origin, "/short").await;
    let_expire().await;
    let hit = assert_hit(&host, &origin, "/short").await;
    assert!(ttl(&cache_status(&hit)) > 50, "{}", cache_status(&hit));
    assert_miss(&host, &origin, "/never").await;
    assert_miss(&host, &origin, "/never").await;
}

#[tokio::test]
async fn rules_override_the_ttl_and_bypass() {
    let origin = Origin::start().await;
    origin.set("/static/plain", Answer::ok("no cache headers at all"));
    origin.set("/static/zero", Answer::cached("max-age=0", "zero"));
    origin.set("/static/never", Answer::cached("no-store", "never"));
    origin.set("/admin/panel", Answer::cached("max-age=60", "admin"));
    origin.set("/page", Answer::cached("max-age=60", "page"));
    let rules = json!([
        { "path_prefix": "/static/", "ttl": "1h" },
        { "path_prefix": "/admin/", "bypass": true },
        { "header": "x-no-cache", "bypass": true },
        { "cookie": "session", "bypass": true },
    ]);
    let host = gateway(&origin, json!({ "heuristic": false, "rules": rules })).await;
    for path in ["/static/plain", "/static/zero"] {
        assert_miss(&host, &origin, path).await;
        let hit = assert_hit(&host, &origin, path).await;
        assert!(ttl(&cache_status(&hit)) > 3_500, "{path}: {}", cache_status(&hit));
    }
    assert_miss(&host, &origin, "/static/never").await;
    assert_miss(&host, &origin, "/static/never").await;
    for _ in 0..2 {
        let reply = assert_miss(&host, &origin, "/admin/panel").await;
        assert_eq!(cache_status(&reply), "covet; fwd=bypass");
    }
    assert_miss(&host, &origin, "/page").await;
    assert_hit(&host, &origin, "/page").await;
    for headers in [[("x-no-cache", "1")], [("cookie", "theme=dark; session=abc")]] {
        let reply = get_with(&host, "/page", &headers).await;
        assert_eq!(cache_status(&reply), "covet; fwd=bypass", "{headers:?}");
    }
    assert_eq!(origin.hits("/page"), 3, "both bypasses went to the origin");
    let other_cookie = get_with(&host, "/page", &[("cookie", "theme=dark")]).await;
    assert!(is_hit(&other_cookie), "another cookie does not bypass: {}", cache_status(&other_cookie));
    assert_eq!(get(&host, "/page").await.text(), "page");
}
