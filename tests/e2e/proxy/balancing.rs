//! Balancing policies, observed by which upstream answered (`x-upstream`):
//! smooth weighted round robin gives exact shares per cycle, least request
//! keeps away from an endpoint holding its requests, ring hash and Maglev
//! keep a key on one endpoint and spread different keys, bounded load
//! spills a hot key off its busy endpoint, and a sticky cookie (with its
//! ttl) pins a client to the endpoint chosen first until that one goes away.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use covet_e2e::{Host, TestUpstream};
use http::Method;
use serde_json::{Value, json};

use super::{answered_by, gateway, get, manifest};

/// How many requests the least-request test sends.
const SPREAD: usize = 40;

#[tokio::test]
async fn round_robin_gives_each_endpoint_its_weight() {
    let ups = [TestUpstream::start("a").await, TestUpstream::start("b").await, TestUpstream::start("c").await];
    let endpoints: Vec<Value> =
        ups.iter().zip([1, 2, 3]).map(|(u, weight)| json!({ "addr": u.endpoint(), "weight": weight })).collect();
    let host = Host::start(manifest(json!({ "endpoints": endpoints }), json!({}), "/{*rest}")).await;
    let mut shares = BTreeMap::new();
    for _ in 0..60 {
        let reply = get(&host, "/rr").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        *shares.entry(answered_by(&reply)).or_insert(0) += 1;
    }
    let expected: BTreeMap<String, i32> = [("a".into(), 10), ("b".into(), 20), ("c".into(), 30)].into();
    assert_eq!(shares, expected, "weights 1:2:3 over 10 cycles");
    assert_eq!([ups[0].requests(), ups[1].requests(), ups[2].requests()], [10, 20, 30], "what the upstreams counted");
}

#[tokio::test]
async fn least_request_keeps_away_from_an_endpoint_holding_its_requests() {
    let slow = TestUpstream::start("slow").await;
    let fast = [TestUpstream::start("f1").await, TestUpstream::start("f2").await, TestUpstream::start("f3").await];
    slow.hold();
    let host = gateway(&[&slow, &fast[0], &fast[1], &fast[2]], json!({ "balance": "least_request" })).await;
    let client = host.http1();
    let mut held = Vec::new();
    for _ in 0..SPREAD {
        let before = slow.requests();
        let c = client.clone();
        let request = tokio::spawn(async move { c.get("/lr").await });
        // One at a time: either it was answered by a fast endpoint, or it is now held by the slow one.
        while !request.is_finished() && slow.requests() == before {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if slow.requests() > before {
            held.push(request);
        } else {
            let reply = request.await.unwrap().expect("an answer");
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_ne!(answered_by(&reply), "slow");
        }
    }
    let fast_total: usize = fast.iter().map(TestUpstream::requests).sum();
    assert_eq!(slow.requests() + fast_total, SPREAD);
    // Round robin would give it SPREAD / 4 exactly; two random choices pick it only when both land on it.
    assert!(slow.requests() < SPREAD / 4, "the busy endpoint got {} of {SPREAD}", slow.requests());
    slow.release();
    for request in held {
        let reply = request.await.unwrap().expect("a held request answers once released");
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, "slow".to_owned()));
    }
}

#[tokio::test]
async fn ring_hash_keeps_a_key_on_one_endpoint_and_spreads_keys() {
    consistent_hashing("ring_hash").await;
}

#[tokio::test]
async fn maglev_keeps_a_key_on_one_endpoint_and_spreads_keys() {
    consistent_hashing("maglev").await;
}

async fn consistent_hashing(policy: &str) {
    let ups = [TestUpstream::start("a").await, TestUpstream::start("b").await, TestUpstream::start("c").await];
    let balance = json!({ "policy": policy, "key": "header:x-user" });
    let host = gateway(&[&ups[0], &ups[1], &ups[2]], json!({ "balance": balance })).await;
    let client = host.http1();
    let by_key = |user: String| {
        let client = client.clone();
        async move {
            let reply = client.send(Method::GET, "/hash", &[("x-user", &user)], "").await.expect("an answer");
            assert_eq!(reply.status, 200, "{}", reply.text());
            answered_by(&reply)
        }
    };
    let mut alice = BTreeSet::new();
    for _ in 0..50 {
        alice.insert(by_key("alice".into()).await);
    }
    assert_eq!(alice.len(), 1, "{policy}: one key, one endpoint: {alice:?}");
    let mut spread = BTreeSet::new();
    for n in 0..20 {
        spread.insert(by_key(format!("user-{n}")).await);
    }
    assert!(spread.len() >= 2, "{policy}: 20 keys all went to {spread:?}");
}

#[tokio::test]
async fn a_sticky_cookie_pins_the_client_to_the_first_endpoint() {
    let ups = [TestUpstream::start("a").await, TestUpstream::start("b").await, TestUpstream::start("c").await];
    let sticky = json!({ "cookie": "covet-sticky", "ttl": "1h" });
    let host = gateway(&[&ups[0], &ups[1], &ups[2]], json!({ "sticky": sticky })).await;
    let first = get(&host, "/sticky").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let chosen = answered_by(&first);
    let set_cookie = first.header("set-cookie").unwrap_or_else(|| panic!("a set-cookie header: {:?}", first.headers));
    assert!(set_cookie.starts_with("covet-sticky="), "{set_cookie}");
    assert!(set_cookie.contains("Max-Age=3600"), "the ttl: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let client = host.http1();
    for _ in 0..20 {
        let reply =
            client.send(Method::GET, "/sticky", &[("cookie", &format!("theme=dark; {cookie}"))], "").await.unwrap();
        assert_eq!((reply.status.as_u16(), answered_by(&reply)), (200, chosen.clone()), "the cookie holds");
    }
    let mut without = BTreeSet::new();
    for _ in 0..6 {
        without.insert(answered_by(&get(&host, "/sticky").await));
    }
    assert!(without.len() >= 2, "without the cookie, requests are balanced: {without:?}");
    // The pinned endpoint goes away: the request is served elsewhere and the cookie re-pinned.
    ups.iter().find(|u| u.name() == chosen).unwrap().stop();
    let moved = client.send(Method::GET, "/sticky", &[("cookie", &cookie)], "").await.unwrap();
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_ne!(answered_by(&moved), chosen);
    let repinned = moved.header("set-cookie").unwrap_or_else(|| panic!("a new cookie: {:?}", moved.headers));
    assert!(repinned.starts_with("covet-sticky=") && !repinned.starts_with(&format!("{cookie};")), "{repinned}");
}

#[tokio::test]
async fn bounded_load_spills_a_hot_key_off_its_busy_endpoint() {
    let ups = [TestUpstream::start("a").await, TestUpstream::start("b").await, TestUpstream::start("c").await];
    ups.iter().for_each(TestUpstream::hold);
    let balance = json!({ "policy": "ring_hash", "key": "header:x-user", "bounded_load": 1.25 });
    let host = gateway(&[&ups[0], &ups[1], &ups[2]], json!({ "balance": balance })).await;
    let arrived = || ups.iter().map(TestUpstream::requests).sum::<usize>();
    let mut held = Vec::new();
    for n in 0..9 {
        let client = host.http1();
        held.push(tokio::spawn(async move { client.send(Method::GET, "/hot", &[("x-user", "hot")], "").await }));
        // One at a time: each is held in flight before the next is sent.
        while arrived() == n && !held[n].is_finished() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let counts: Vec<usize> = ups.iter().map(TestUpstream::requests).collect();
    // Unbounded, all 9 would go to the key's endpoint; bounded, one takes at most ceil(1.25 × 9 / 3) = 4.
    assert!(counts.iter().all(|&n| n <= 4), "in flight per endpoint: {counts:?}");
    ups.iter().for_each(TestUpstream::release);
    for request in held {
        assert_eq!(request.await.unwrap().expect("an answer").status, 200);
    }
}
