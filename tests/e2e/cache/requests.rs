//! What the request changes (RFC 9111 4.1, 4.4, 5.2.1): one variant per
//! value of the headers `Vary` names; `HEAD` answered from a `GET` entry (a
//! `HEAD` miss goes to the origin as `HEAD` and is not stored); a successful
//! `POST` invalidates the URI, a failed one does not; `Cache-Control:
//! no-cache` and `Pragma: no-cache` go to the origin; `only-if-cached` is a
//! 504 when nothing is stored; request `max-age` limits the age served; an
//! entry stored over HTTP/1.1 is a hit over HTTP/2 (`:authority` is the host).

use covet_e2e::{Answer, Origin};
use http::Method;
use serde_json::json;

use super::{assert_hit, assert_miss, cache_status, gateway, get_with, is_hit, origin_seq, send};

/// Asks `path` with `header: value`; returns whether it hit and which origin answer it carries.
async fn variant(host: &covet_e2e::Host, path: &str, header: &str, value: &str) -> (bool, u64, String) {
    let reply = get_with(host, path, &[(header, value)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    (is_hit(&reply), origin_seq(&reply), cache_status(&reply))
}

#[tokio::test]
async fn vary_keeps_a_variant_per_accept_encoding() {
    let origin = Origin::start().await;
    origin.set("/v", Answer::cached("max-age=60", "variant").header("vary", "Accept-Encoding"));
    let host = gateway(&origin, json!({})).await;
    let (hit, gzip_seq, status) = variant(&host, "/v", "accept-encoding", "gzip").await;
    assert!(!hit && status.contains("stored"), "{status}");
    let (hit, br_seq, status) = variant(&host, "/v", "accept-encoding", "br").await;
    assert!(!hit, "another value is another variant: {status}");
    assert!(status.starts_with("covet; fwd=vary-miss"), "{status}");
    assert_ne!(gzip_seq, br_seq);
    let (hit, seq, status) = variant(&host, "/v", "accept-encoding", "gzip").await;
    assert!(hit && seq == gzip_seq, "{status} seq {seq}");
    let (hit, seq, status) = variant(&host, "/v", "accept-encoding", "br").await;
    assert!(hit && seq == br_seq, "{status} seq {seq}");
    assert_eq!(origin.hits("/v"), 2, "two variants, two origin requests");
}

#[tokio::test]
async fn vary_on_a_custom_header() {
    let origin = Origin::start().await;
    origin.set("/tenant", Answer::cached("max-age=60", "per tenant").header("vary", "X-Tenant"));
    let host = gateway(&origin, json!({})).await;
    let (_, a, _) = variant(&host, "/tenant", "x-tenant", "a").await;
    let (_, b, _) = variant(&host, "/tenant", "x-tenant", "b").await;
    for _ in 0..2 {
        assert_eq!(variant(&host, "/tenant", "x-tenant", "a").await.1, a);
        assert_eq!(variant(&host, "/tenant", "x-tenant", "b").await.1, b);
    }
    let none = get_with(&host, "/tenant", &[]).await;
    assert!(!is_hit(&none), "no x-tenant is a third variant: {}", cache_status(&none));
    assert_eq!(origin.hits("/tenant"), 3);
}

#[tokio::test]
async fn head_is_answered_from_a_get_entry() {
    let origin = Origin::start().await;
    origin.set("/doc", Answer::cached("max-age=60", "twelve bytes"));
    origin.set("/head-first", Answer::cached("max-age=60", "body"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/doc").await;
    let head = send(&host, Method::HEAD, "/doc", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "a HEAD has no body");
    assert!(is_hit(&head), "{}", cache_status(&head));
    assert_eq!(head.header("content-length"), Some("12"), "{:?}", head.headers);
    assert_eq!(origin.hits("/doc"), 1);

    let head = send(&host, Method::HEAD, "/head-first", &[]).await;
    assert_eq!(head.status, 200);
    let seen = origin.seen("/head-first");
    assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["HEAD"], "a HEAD miss goes as HEAD");
    let get = assert_miss(&host, &origin, "/head-first").await;
    assert_eq!(get.text(), "body", "the HEAD answer was not stored as the GET entry");
    assert_hit(&host, &origin, "/head-first").await;
}

#[tokio::test]
async fn a_successful_post_invalidates_the_uri() {
    let origin = Origin::start().await;
    origin.set("/item", Answer::cached("max-age=60", "item"));
    origin.set("/broken", Answer::cached("max-age=60", "broken"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/item").await;
    assert_hit(&host, &origin, "/item").await;
    let post = send(&host, Method::POST, "/item", &[]).await;
    assert_eq!(post.status, 200);
    assert_eq!(cache_status(&post), "covet; fwd=method");
    assert_eq!(origin.hits("/item"), 2, "the POST went to the origin");
    assert_miss(&host, &origin, "/item").await;
    assert_hit(&host, &origin, "/item").await;

    // A failed POST leaves the entry.
    assert_miss(&host, &origin, "/broken").await;
    origin.set("/broken", Answer::cached("max-age=60", "oops").status(500));
    assert_eq!(send(&host, Method::POST, "/broken", &[]).await.status, 500);
    let hit = assert_hit(&host, &origin, "/broken").await;
    assert_eq!(hit.text(), "broken");
}

#[tokio::test]
async fn request_no_cache_and_pragma_go_to_the_origin() {
    let origin = Origin::start().await;
    origin.set("/news", Answer::cached("max-age=60", "news"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/news").await;
    for header in [("cache-control", "no-cache"), ("pragma", "no-cache")] {
        let before = origin.hits("/news");
        let reply = get_with(&host, "/news", &[header]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(origin.hits("/news"), before + 1, "{header:?} reached the origin");
        assert!(cache_status(&reply).starts_with("covet; fwd=request"), "{header:?}: {}", cache_status(&reply));
    }
    let hit = assert_hit(&host, &origin, "/news").await;
    assert_eq!(origin_seq(&hit), 3, "the refetch refreshed the entry");
}

#[tokio::test]
async fn only_if_cached_is_a_504_when_nothing_is_stored() {
    let origin = Origin::start().await;
    origin.set("/maybe", Answer::cached("max-age=60", "maybe"));
    let host = gateway(&origin, json!({})).await;
    let only = [("cache-control", "only-if-cached")];
    let reply = get_with(&host, "/maybe", &only).await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(origin.hits("/maybe"), 0, "only-if-cached never goes to the origin");
    assert_miss(&host, &origin, "/maybe").await;
    let reply = get_with(&host, "/maybe", &only).await;
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "maybe".to_owned()));
    assert!(is_hit(&reply));
    assert_eq!(origin.hits("/maybe"), 1);
}

#[tokio::test]
async fn request_max_age_limits_the_age_served() {
    let origin = Origin::start().await;
    origin.set("/aged", Answer::cached("max-age=600", "aged").header("age", "100"));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/aged").await;
    let young = get_with(&host, "/aged", &[("cache-control", "max-age=1000")]).await;
    assert!(is_hit(&young), "{}", cache_status(&young));
    let before = origin.hits("/aged");
    let fussy = get_with(&host, "/aged", &[("cache-control", "max-age=10")]).await;
    assert_eq!(fussy.status, 200);
    assert_eq!(origin.hits("/aged"), before + 1, "an entry older than the request's max-age is not served");
}

#[tokio::test]
async fn an_entry_stored_over_http1_is_served_over_http2() {
    let origin = Origin::start().await;
    origin.set("/both", Answer::cached("max-age=60", "both"));
    let host = gateway(&origin, json!({})).await;
    // No explicit Host: HTTP/1.1 sends `Host: 127.0.0.1:<port>`, HTTP/2 the same `:authority`.
    let first = host.http1().get("/both").await.expect("GET over HTTP/1.1");
    assert_eq!(cache_status(&first), "covet; fwd=uri-miss; stored");
    let h2 = host.http2().get("/both").await.expect("GET over HTTP/2");
    assert_eq!((h2.version, h2.text()), (http::Version::HTTP_2, "both".to_owned()));
    assert!(is_hit(&h2), "the same key from :authority: {}", cache_status(&h2));
    assert_eq!(origin.hits("/both"), 1);
}
