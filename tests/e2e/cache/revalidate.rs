//! Validation (RFC 9111 4.3): a stale entry with an `ETag` or a
//! `Last-Modified` is revalidated with `If-None-Match` / `If-Modified-Since`;
//! the origin's 304 refreshes the stored entry (its headers updated, RFC
//! 9111 4.3.4) and the client gets the stored body; a client's own
//! conditionals are answered 304 from a fresh entry.

use covet_e2e::{Answer, Origin, http_date_in};
use serde_json::json;

use super::{assert_hit, assert_miss, cache_status, gateway, get, get_with, is_hit, let_expire, origin_seq, ttl};

/// Stores `path` (answered by `answer(cache_control)`), lets it go stale,
/// and asks again: the origin must get `conditional: expected` and answer
/// 304; the client the stored body; the entry is then fresh again with the
/// 304's headers.
async fn revalidated(origin: &Origin, path: &str, answer: impl Fn(&str) -> Answer, conditional: &str, expected: &str) {
    origin.set(path, answer("max-age=1"));
    let host = gateway(origin, json!({})).await;
    let first = assert_miss(&host, origin, path).await;
    let_expire().await;
    // The 304 brings a longer lifetime: the refreshed entry is fresh for sure.
    origin.set(path, answer("max-age=60"));
    let reply = get(&host, path).await;
    let seen = origin.seen(path);
    assert_eq!(seen.len(), 2, "the stale entry went to the origin");
    assert_eq!(seen[1].header(conditional), Some(expected), "{conditional} on the revalidation: {:?}", seen[1].headers);
    assert_eq!(seen[1].status, 304, "the origin saw a matching validator");
    assert_eq!(reply.status, 200, "the client asked unconditionally");
    assert_eq!(reply.body, first.body, "the stored body");
    assert_eq!(cache_status(&reply), "covet; fwd=stale; fwd-status=304; stored");
    let hit = assert_hit(&host, origin, path).await;
    assert_eq!(origin_seq(&hit), 2, "the 304's headers were stored (RFC 9111 4.3.4)");
    assert!(ttl(&cache_status(&hit)) > 50, "the 304's max-age=60 is the new lifetime: {}", cache_status(&hit));
    assert_eq!(hit.body, first.body);
}

#[tokio::test]
async fn revalidation_with_etag() {
    let origin = Origin::start().await;
    let answer = |cc: &str| Answer::cached(cc, "tagged body").header("etag", "\"v1\"");
    revalidated(&origin, "/tagged", answer, "if-none-match", "\"v1\"").await;
}

#[tokio::test]
async fn revalidation_with_last_modified() {
    let origin = Origin::start().await;
    let modified = http_date_in(-3_600);
    let answer = |cc: &str| Answer::cached(cc, "dated body").header("last-modified", &modified);
    revalidated(&origin, "/dated", answer, "if-modified-since", &modified).await;
}

#[tokio::test]
async fn a_changed_resource_replaces_the_entry() {
    let origin = Origin::start().await;
    origin.set("/changing", Answer::cached("max-age=1", "old").header("etag", "\"v1\""));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/changing").await;
    let_expire().await;
    origin.set("/changing", Answer::cached("max-age=60", "new").header("etag", "\"v2\""));
    let reply = get(&host, "/changing").await;
    assert_eq!(reply.text(), "new", "the origin's 200 replaced the entry");
    assert_eq!(origin.seen("/changing")[1].status, 200);
    let hit = assert_hit(&host, &origin, "/changing").await;
    assert_eq!((hit.text(), hit.header("etag")), ("new".to_owned(), Some("\"v2\"")));
}

#[tokio::test]
async fn if_none_match_is_answered_from_the_cache() {
    let origin = Origin::start().await;
    origin.set("/e", Answer::cached("max-age=60", "etagged").header("etag", "\"abc\""));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/e").await;
    for tag in ["\"abc\"", "W/\"abc\"", "\"zzz\", \"abc\""] {
        let reply = get_with(&host, "/e", &[("if-none-match", tag)]).await;
        assert_eq!(reply.status, 304, "If-None-Match: {tag}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some("\"abc\""), "a 304 carries the validator");
        assert!(is_hit(&reply), "{}", cache_status(&reply));
    }
    let other = get_with(&host, "/e", &[("if-none-match", "\"other\"")]).await;
    assert_eq!((other.status.as_u16(), other.text()), (200, "etagged".to_owned()));
    assert!(is_hit(&other));
    assert_eq!(origin.hits("/e"), 1, "every conditional was answered by the cache");
}

#[tokio::test]
async fn if_modified_since_is_answered_from_the_cache() {
    let origin = Origin::start().await;
    let modified = http_date_in(-3_600);
    origin.set("/m", Answer::cached("max-age=60", "dated").header("last-modified", &modified));
    let host = gateway(&origin, json!({})).await;
    assert_miss(&host, &origin, "/m").await;
    for since in [modified.clone(), http_date_in(-60)] {
        let reply = get_with(&host, "/m", &[("if-modified-since", &since)]).await;
        assert_eq!(reply.status, 304, "If-Modified-Since: {since} (modified {modified})");
        assert_eq!(reply.header("last-modified"), Some(modified.as_str()));
    }
    let older = get_with(&host, "/m", &[("if-modified-since", &http_date_in(-7_200))]).await;
    assert_eq!((older.status.as_u16(), older.text()), (200, "dated".to_owned()), "modified since then");
    assert_eq!(origin.hits("/m"), 1, "every conditional was answered by the cache");
}
