//! Flow tests: whole exchanges through the phases (miss, hit, revalidation,
//! stale-while-revalidate, stale-if-error, coalescing, streaming, limits).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use covet_plugin_api::{
    BodyStream, Flow,
    testing::{TestRequest, TestResponse, block_on},
};

use crate::{
    tee::Tee,
    tests::{cache, exchange, get, ok, on_request, on_response},
};

/// `req` with another method.
pub fn with_method(mut req: TestRequest, method: &str) -> TestRequest {
    req.method = method.into();
    req
}

#[test]
fn a_miss_is_stored_and_the_next_request_is_a_hit_with_age() {
    let c = cache("null");
    let origin = |_: &TestRequest| ok(&[("cache-control", "max-age=60"), ("content-type", "text/plain"), ("x-origin", "1")], "hello");
    let first = exchange(&c, get("/a"), &origin);
    assert!(first.origin);
    assert_eq!(first.cs(), "covet; fwd=uri-miss; stored");
    assert_eq!(first.meta.as_deref(), Some("miss"));
    let second = exchange(&c, get("/a"), &origin);
    assert!(!second.origin, "answered from the cache");
    assert_eq!((second.status, second.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(second.header("x-origin"), Some("1"));
    assert_eq!(second.header("age"), Some("0"));
    assert!(second.cs().starts_with("covet; hit; ttl="), "{}", second.cs());
    assert_eq!(second.meta.as_deref(), Some("hit"));
    let head = exchange(&c, with_method(get("/a"), "HEAD"), &origin);
    assert!(!head.origin, "HEAD is answered from the GET entry");
}

#[test]
fn hits_share_the_stored_body_and_headers() {
    let c = cache("null");
    exchange(&c, get("/s"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60")], "x"));
    let mut hits = Vec::new();
    for _ in 0..3 {
        let Flow::Respond(r) = on_request(&c, &mut get("/s")) else { panic!("a hit") };
        hits.push(r);
    }
    assert!(hits[0].body.same(&hits[1].body), "the stored body is shared");
    // Two of three hits fall in one second of age: their header lists are one.
    assert!(hits[0].headers.same(&hits[1].headers) || hits[1].headers.same(&hits[2].headers));
}

#[test]
fn what_must_not_be_stored_is_not() {
    let c = cache("null");
    let again = |uri: &str| exchange(&c, get(uri), &|_: &TestRequest| ok(&[], "y")).origin;
    for (i, cc) in ["no-store", "private", "max-age=60, no-store"].iter().enumerate() {
        let uri = format!("/n{i}");
        exchange(&c, get(&uri), &|_: &TestRequest| ok(&[("cache-control", cc)], "x"));
        assert!(again(&uri), "{cc} was stored");
    }
    exchange(&c, get("/cookie"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60"), ("set-cookie", "a=1")], "x"));
    assert!(again("/cookie"));
    let auth = || get("/auth").header("authorization", "Bearer t");
    exchange(&c, auth(), &|_: &TestRequest| ok(&[("cache-control", "max-age=60")], "x"));
    assert!(exchange(&c, auth(), &|_: &TestRequest| ok(&[], "y")).origin, "authorized and not public");
    exchange(&c, auth(), &|_: &TestRequest| ok(&[("cache-control", "public, max-age=60")], "x"));
    assert!(!exchange(&c, auth(), &|_: &TestRequest| ok(&[], "y")).origin, "public may be stored");
    let mut partial = ok(&[("cache-control", "max-age=60")], "x");
    partial.status = 206;
    exchange(&c, get("/p"), &|_: &TestRequest| partial.clone());
    assert!(again("/p"), "206 is not stored");
    let mut err = ok(&[], "x");
    err.status = 500;
    exchange(&c, get("/e"), &|_: &TestRequest| err.clone());
    assert!(again("/e"), "500 without explicit freshness");
    let head = exchange(&c, with_method(get("/h"), "HEAD"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60")], ""));
    assert_eq!(head.cs(), "covet; fwd=uri-miss");
    assert!(again("/h"), "a HEAD miss is not stored");
    exchange(&c, get("/ns").header("cache-control", "no-store"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60")], "x"));
    assert!(again("/ns"), "request no-store");
}

#[test]
fn variants_are_stored_apart_and_vary_star_not_at_all() {
    let c = cache("null");
    let origin = |r: &TestRequest| {
        let enc = r.get_header("accept-encoding").unwrap_or("none").to_string();
        ok(&[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")], &enc)
    };
    let gz = || get("/v").header("accept-encoding", "gzip");
    assert_eq!(exchange(&c, gz(), &origin).cs(), "covet; fwd=uri-miss; stored");
    let hit = exchange(&c, gz(), &origin);
    assert_eq!((hit.origin, hit.body.as_slice()), (false, &b"gzip"[..]));
    let br = exchange(&c, get("/v").header("accept-encoding", "br"), &origin);
    assert_eq!((br.cs(), br.body.as_slice()), ("covet; fwd=vary-miss; stored", &b"br"[..]));
    assert_eq!(exchange(&c, get("/v").header("accept-encoding", "br"), &origin).body, b"br");
    assert_eq!(exchange(&c, gz(), &origin).body, b"gzip", "the first variant is still there");
    exchange(&c, get("/star"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60"), ("vary", "*")], "x"));
    assert!(exchange(&c, get("/star"), &|_: &TestRequest| ok(&[], "y")).origin);
}

fn not_modified(_: &TestRequest) -> TestResponse {
    let mut r = TestResponse::new(304);
    r.headers = vec![("cache-control".into(), "max-age=60".into()), ("etag".into(), "\"v1\"".into()), ("x-v".into(), "2".into())];
    r
}

#[test]
fn a_stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let c = cache("null");
    let stale = |_: &TestRequest| ok(&[("cache-control", "max-age=10"), ("age", "20"), ("etag", "\"v1\""), ("x-v", "1")], "body");
    exchange(&c, get("/r"), &stale);
    let got = exchange(&c, get("/r"), &not_modified);
    assert_eq!(got.sent.as_ref().unwrap().get_header("if-none-match"), Some("\"v1\""), "the cache's validator");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"body"[..]));
    assert_eq!(got.cs(), "covet; fwd=stale; fwd-status=304; stored");
    assert_eq!(got.meta.as_deref(), Some("revalidated"));
    assert_eq!(got.header("x-v"), Some("2"), "headers updated from the 304");
    let hit = exchange(&c, get("/r"), &|_: &TestRequest| ok(&[], "wrong"));
    assert_eq!((hit.origin, hit.body.as_slice(), hit.header("x-v")), (false, &b"body"[..], Some("2")));
    let cond = exchange(&c, get("/r").header("if-none-match", "W/\"v1\""), &|_: &TestRequest| ok(&[], "wrong"));
    assert_eq!((cond.status, cond.origin, cond.header("etag")), (304, false, Some("\"v1\"")));
    assert!(cond.body.is_empty());
    let ims = exchange(&c, get("/r").header("if-none-match", "\"v0\""), &|_: &TestRequest| ok(&[], "wrong"));
    assert_eq!(ims.status, 200, "another etag gets the full response");
}

#[test]
fn a_client_no_cache_goes_to_the_origin_and_only_if_cached_gets_504() {
    let c = cache("null");
    let origin = |_: &TestRequest| ok(&[("cache-control", "max-age=60")], "v");
    exchange(&c, get("/q"), &origin);
    let forced = exchange(&c, get("/q").header("cache-control", "no-cache"), &origin);
    assert!(forced.origin);
    assert_eq!(forced.cs(), "covet; fwd=request; stored");
    assert!(exchange(&c, get("/q").header("pragma", "no-cache"), &origin).origin);
    assert!(exchange(&c, get("/q").header("cache-control", "max-age=0"), &origin).origin, "request max-age=0");
    let none = exchange(&c, get("/absent").header("cache-control", "only-if-cached"), &origin);
    assert_eq!((none.status, none.origin), (504, false));
    assert_eq!(exchange(&c, get("/q").header("cache-control", "only-if-cached"), &origin).status, 200);
}

#[test]
fn stale_while_revalidate_answers_stale_and_refreshes_once_in_the_background() {
    let c = cache("null");
    exchange(&c, get("/w"), &|_: &TestRequest| ok(&[("cache-control", "max-age=1, stale-while-revalidate=60"), ("age", "5"), ("etag", "\"a\"")], "old"));
    let mut first = get("/w").header("if-none-match", "\"client\"");
    let Flow::RespondAndContinue(stale) = on_request(&c, &mut first) else { panic!("stale-while-revalidate") };
    assert_eq!(stale.body.as_slice(), b"old");
    let cs = stale.header("cache-status").unwrap();
    assert!(cs.starts_with("covet; hit; ttl=-") && cs.ends_with("detail=stale-while-revalidate"), "{cs}");
    assert_eq!(first.get_metadata("cache.status"), Some("stale"));
    assert_eq!(first.get_header("if-none-match"), Some("\"a\""), "the background request carries the cache's validator");
    let mut second = get("/w");
    assert!(matches!(on_request(&c, &mut second), Flow::Respond(_)), "one background refresh per key");
    let mut fresh = ok(&[("cache-control", "max-age=60")], "new");
    on_response(&c, &mut first, &mut fresh);
    let hit = exchange(&c, get("/w"), &|_: &TestRequest| ok(&[], "wrong"));
    assert_eq!((hit.origin, hit.body.as_slice()), (false, &b"new"[..]));
}

#[test]
fn stale_if_error_replaces_an_origin_error_with_the_stale_entry() {
    let failing = |_: &TestRequest| {
        let mut r = ok(&[("content-type", "text/plain")], "boom");
        r.status = 503;
        r
    };
    let c = cache(r#"{"stale_if_error": "1h"}"#);
    exchange(&c, get("/f"), &|_: &TestRequest| ok(&[("cache-control", "max-age=1"), ("age", "10"), ("x-k", "1")], "kept"));
    let got = exchange(&c, get("/f"), &failing);
    assert_eq!((got.status, got.body.as_slice(), got.header("x-k")), (200, &b"kept"[..], Some("1")));
    assert_eq!(got.header("content-type"), None, "the error's headers are gone");
    assert!(got.cs().ends_with("detail=stale-if-error"), "{}", got.cs());
    let strict = cache(r#"{"stale_if_error": "1h"}"#);
    exchange(&strict, get("/f"), &|_: &TestRequest| ok(&[("cache-control", "max-age=1, must-revalidate"), ("age", "10")], "kept"));
    assert_eq!(exchange(&strict, get("/f"), &failing).status, 503, "must-revalidate forbids it");
}

#[test]
fn coalesced_waiters_are_served_from_the_leaders_result() {
    let c = cache("null");
    let mut leader = get("/c");
    assert!(matches!(on_request(&c, &mut leader), Flow::Continue));
    assert!(c.request_now(&mut get("/c").view()).is_none(), "a waiter waits");
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let mut w = get("/c");
            let flow = on_request(&c, &mut w);
            (matches!(&flow, Flow::Respond(r) if r.body.as_slice() == b"one"), w.get_metadata("cache.status").map(str::to_string))
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut resp = ok(&[("cache-control", "max-age=60")], "one");
        on_response(&c, &mut leader, &mut resp);
        assert_eq!(waiting.join().unwrap(), (true, Some("hit".to_string())));
    });
}

#[test]
fn waiters_go_to_the_origin_when_the_leader_stores_nothing() {
    let c = cache("null");
    let mut leader = get("/c2");
    assert!(matches!(on_request(&c, &mut leader), Flow::Continue));
    std::thread::scope(|s| {
        let waiting = s.spawn(|| matches!(on_request(&c, &mut get("/c2")), Flow::Continue));
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut resp = ok(&[("cache-control", "no-store")], "private");
        on_response(&c, &mut leader, &mut resp);
        assert!(waiting.join().unwrap(), "the waiter forwards");
    });
    assert!(c.flights.is_empty());
}

#[test]
fn a_body_over_max_object_size_streams_through_uncached() {
    let c = cache(r#"{"max_object_size": 4}"#);
    let got = exchange(&c, get("/big"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60")], "0123456789"));
    assert_eq!(got.body, b"0123456789", "the client gets it all");
    assert!(exchange(&c, get("/big"), &|_: &TestRequest| ok(&[], "y")).origin, "not stored");
    let declared = exchange(&c, get("/cl"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60"), ("content-length", "10")], "0123456789"));
    assert_eq!(declared.cs(), "covet; fwd=uri-miss", "a declared length over the limit is not teed");
}

/// Sets its flag when dropped.
struct Released(Arc<AtomicBool>);
impl Drop for Released {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn the_tee_passes_chunks_on_and_stores_only_a_whole_body() {
    let stored = Arc::new(std::sync::Mutex::new(None));
    let released = Arc::new(AtomicBool::new(false));
    let (tx, body) = BodyStream::channel(4);
    block_on(tx.send(b"part".to_vec())).unwrap();
    tx.abort("origin went away");
    let (s, guard) = (stored.clone(), Released(released.clone()));
    let teed = Tee::body(body, 100, Box::new(move |b| drop((s.lock().unwrap().replace(b), guard))));
    assert!(block_on(teed.collect(100)).unwrap_err().contains("went away"));
    assert!(stored.lock().unwrap().is_none(), "a broken body stores nothing");
    assert!(released.load(Ordering::SeqCst), "and lets the leader go");
    let (tx, body) = BodyStream::channel(4);
    let s = stored.clone();
    let teed = Tee::body(body, 100, Box::new(move |b| drop(s.lock().unwrap().replace(b))));
    block_on(tx.send(b"ab".to_vec())).unwrap();
    block_on(tx.send(b"cd".to_vec())).unwrap();
    drop(tx);
    assert_eq!(block_on(teed.collect(100)).unwrap(), b"abcd");
    assert_eq!(stored.lock().unwrap().as_deref(), Some(&b"abcd"[..]));
}

#[test]
fn a_range_request_is_answered_whole_on_a_hit_and_not_stored_on_a_miss() {
    let c = cache("null");
    let mut partial = ok(&[("cache-control", "max-age=60"), ("content-range", "bytes 0-1/4")], "ab");
    partial.status = 206;
    let miss = exchange(&c, get("/rg").header("range", "bytes=0-1"), &|_: &TestRequest| partial.clone());
    assert_eq!((miss.status, miss.cs()), (206, "covet; fwd=uri-miss"));
    exchange(&c, get("/rg"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60")], "abcd"));
    let hit = exchange(&c, get("/rg").header("range", "bytes=0-1"), &|_: &TestRequest| partial.clone());
    assert_eq!((hit.status, hit.origin, hit.body.as_slice()), (200, false, &b"abcd"[..]));
}

#[test]
fn last_modified_revalidates_and_a_conditional_client_gets_the_304() {
    let c = cache("null");
    let lm = "Tue, 01 Dec 2026 10:00:00 GMT";
    exchange(&c, get("/lm"), &|_: &TestRequest| ok(&[("cache-control", "max-age=1"), ("age", "9"), ("last-modified", lm)], "page"));
    let cond = get("/lm").header("if-modified-since", lm);
    let got = exchange(&c, cond, &|r: &TestRequest| {
        assert_eq!(r.get_header("if-modified-since"), Some(lm), "the client's own condition goes on");
        let mut r = TestResponse::new(304);
        r.headers = vec![("cache-control".into(), "max-age=60".into())];
        r
    });
    assert_eq!((got.status, got.cs()), (304, "covet; fwd=stale; fwd-status=304; stored"));
    let since = exchange(&c, get("/lm").header("if-modified-since", "Wed, 02 Dec 2026 10:00:00 GMT"), &|_: &TestRequest| ok(&[], "x"));
    assert_eq!((since.status, since.origin), (304, false), "answered from the refreshed entry");
    let before = exchange(&c, get("/lm").header("if-modified-since", "Mon, 30 Nov 2026 10:00:00 GMT"), &|_: &TestRequest| ok(&[], "x"));
    assert_eq!((before.status, before.body.as_slice()), (200, &b"page"[..]));
}

#[test]
fn a_stale_entry_refetched_with_a_200_is_replaced() {
    let c = cache("null");
    exchange(&c, get("/re"), &|_: &TestRequest| ok(&[("cache-control", "max-age=1"), ("age", "9"), ("etag", "\"1\"")], "one"));
    let got = exchange(&c, get("/re"), &|_: &TestRequest| ok(&[("cache-control", "max-age=60"), ("etag", "\"2\"")], "two"));
    assert_eq!((got.cs(), got.meta.as_deref()), ("covet; fwd=stale; fwd-status=200; stored", Some("miss")));
    assert_eq!(exchange(&c, get("/re"), &|_: &TestRequest| ok(&[], "x")).body, b"two");
}

#[test]
fn concurrent_revalidations_of_a_stale_entry_coalesce() {
    let c = cache("null");
    exchange(&c, get("/sc"), &|_: &TestRequest| ok(&[("cache-control", "max-age=1"), ("age", "9"), ("etag", "\"1\"")], "one"));
    let mut leader = get("/sc");
    assert!(matches!(on_request(&c, &mut leader), Flow::Continue));
    assert!(c.request_now(&mut get("/sc").view()).is_none(), "the second waits for the revalidation");
    let mut answer = not_modified(&leader);
    on_response(&c, &mut leader, &mut answer);
    assert!(matches!(c.request_now(&mut get("/sc").view()), Some(Flow::Respond(_))), "then it is a hit");
}
