//! Unit tests of the store outside a host: L1 (byte bound, expiry, purges),
//! ban matching and indexing; the follower's and the shared tier's parts in
//! `tests_shared.rs`. The L2 and purge
//! follower paths against a real host and redis-server are in
//! `tests/e2e/cache/store.rs`.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use covet_plugin_api::{Body, Header, Headers};

use super::bans::BanSet;
use super::follower::record;
use super::l1::{L1, weigh};
use super::{Ban, BanKind, Entry, Meta, Store, StoreSettings, now_ms};
use crate::policy::Policy;

/// An hour from now.
fn later() -> u64 {
    now_ms() + 3_600_000
}

/// An entry for `host` + `path` stored at `stored_at_ms`, with `tags` and a body of `body_len` bytes.
fn entry_at(host: &str, path: &str, tags: &[&str], body_len: usize, stored_at_ms: u64) -> Entry {
    let primary = format!("{host}{path}");
    let meta = Meta {
        key: primary.clone(),
        primary,
        host: host.to_owned(),
        path: path.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        stored_at_ms,
        keep_until_ms: later(),
        policy: Policy::default(),
    };
    let headers = Headers::from(vec![
        Header::new("content-type", "text/plain"),
        Header::new("etag", "\"v1\""),
    ]);
    Entry {
        meta: Arc::new(meta),
        status: 200,
        headers,
        body: Body::from(vec![b'x'; body_len]),
    }
}

fn entry(host: &str, path: &str, tags: &[&str]) -> Entry {
    entry_at(host, path, tags, 16, now_ms())
}

/// `base` stored as the variant `secondary` of its primary key.
fn variant(base: &Entry, secondary: &str) -> Entry {
    let mut meta = (*base.meta).clone();
    meta.key = format!("{}\n{secondary}", meta.primary);
    Entry {
        meta: Arc::new(meta),
        ..base.clone()
    }
}

fn ban(seq: u64, kind: BanKind, value: &str, host: Option<&str>, at_ms: u64) -> Ban {
    Ban {
        seq,
        kind,
        value: value.to_owned(),
        host: host.map(str::to_owned),
        at_ms,
    }
}

fn settings(max_memory: u64) -> StoreSettings {
    StoreSettings {
        max_memory,
        shared: true,
        namespace: "cache".to_owned(),
        purge_poll: Duration::from_millis(200),
        shared_timeout: Duration::from_millis(50),
    }
}

fn store(max_memory: u64) -> Store {
    Store::new(&settings(max_memory), None).expect("a store without a host")
}

#[test]
fn the_byte_bound_holds_under_a_stream_of_unique_keys() {
    let max = 256 * 1024;
    let store = store(max);
    let one = u64::from(weigh(
        "example.com/page/00000",
        &entry_at("example.com", "/page/00000", &[], 3000, now_ms()),
    ));
    for i in 0..2000 {
        store.put(entry_at(
            "example.com",
            &format!("/page/{i:05}"),
            &[],
            3000,
            now_ms(),
        ));
        let stats = store.stats();
        assert!(
            stats.bytes <= max,
            "after {i} puts L1 holds {} bytes, over its bound {max}",
            stats.bytes
        );
    }
    let stats = store.stats();
    assert!(
        stats.bytes > max - 2 * one,
        "L1 should be nearly full, holds {} of {max}",
        stats.bytes
    );
    assert_eq!(
        stats.entries,
        stats.bytes / one,
        "every entry weighs the same"
    );
    // Least recently used goes first: the newest page is there, the first is long gone.
    assert!(store.get_local("example.com/page/01999").is_some());
    assert!(store.get_local("example.com/page/00000").is_none());
}

#[test]
fn the_bytes_held_stay_within_the_bound_between_maintenance_runs() {
    let max = 64 * 1024;
    let l1 = L1::new(max);
    let mut most = 0;
    for i in 0..3000 {
        let size = 200 + (i * 37) % 1500;
        l1.insert(entry_at("a.test", &format!("/{i}"), &["t"], size, now_ms()));
        // What the map holds now, counted entry by entry (not moka's tally).
        let held: u64 = l1
            .cache
            .iter()
            .map(|(key, entry)| u64::from(weigh(&key, &entry)))
            .sum();
        most = most.max(held);
    }
    assert!(
        most <= max,
        "L1 held {most} bytes at one point, over its bound {max}"
    );
    assert!(most > max / 2, "the test filled L1 ({most} of {max})");
}

#[test]
fn the_weight_counts_key_headers_body_and_meta() {
    let small = entry_at("a.test", "/x", &[], 10, now_ms());
    let big_body = entry_at("a.test", "/x", &[], 10_010, now_ms());
    let tagged = entry_at("a.test", "/x", &["a-long-surrogate-key"], 10, now_ms());
    let base = weigh("a.test/x", &small);
    assert_eq!(weigh("a.test/x", &big_body), base + 10_000);
    assert!(weigh("a.test/x", &tagged) > base + 20);
    assert!(weigh("a.test/x-with-a-longer-key", &small) > base);
    assert!(base > 10 + 8 + "content-type".len() as u32 + "text/plain".len() as u32);
}

#[test]
fn an_entry_heavier_than_the_whole_tier_is_not_kept() {
    let store = store(4096);
    store.put(entry_at("a.test", "/huge", &[], 10_000, now_ms()));
    assert!(store.get_local("a.test/huge").is_none());
    assert_eq!(store.stats().entries, 0);
}

#[test]
fn entries_expire_at_keep_until() {
    let store = store(1 << 20);
    let mut gone = entry("a.test", "/past", &[]);
    Arc::make_mut(&mut gone.meta).keep_until_ms = now_ms() - 1;
    store.put(gone);
    assert!(
        store.get_local("a.test/past").is_none(),
        "an entry already past use is not stored"
    );

    let mut short = entry("a.test", "/short", &[]);
    Arc::make_mut(&mut short.meta).keep_until_ms = now_ms() + 150;
    store.put(short);
    assert!(
        store.get_local("a.test/short").is_some(),
        "usable until keep_until_ms"
    );
    thread::sleep(Duration::from_millis(400));
    assert!(
        store.get_local("a.test/short").is_none(),
        "gone once keep_until_ms has passed"
    );
}

#[test]
fn an_entry_kept_forever_is_stored_without_overflow() {
    let store = store(1 << 20);
    let mut forever = entry("a.test", "/forever", &[]);
    Arc::make_mut(&mut forever.meta).keep_until_ms = u64::MAX;
    store.put(forever);
    assert!(store.get_local("a.test/forever").is_some());
    assert_eq!(store.stats().entries, 1);
}

#[test]
fn a_stored_entry_comes_back_sharing_its_body_and_headers() {
    let store = store(1 << 20);
    let stored = entry("a.test", "/shared", &["t1"]);
    store.put(stored.clone());
    let got = store.get_local("a.test/shared").expect("stored");
    assert!(got.body.same(&stored.body) && got.headers.same(&stored.headers));
    assert_eq!(got.status, 200);
    assert_eq!(got.meta.tags, vec!["t1".to_owned()]);
    store.remove("a.test/shared");
    assert!(store.get_local("a.test/shared").is_none());
}

#[test]
fn bans_match_by_key_prefix_host_and_tag() {
    let page = entry("shop.test", "/static/app.js", &["assets", "v7"]);
    let meta = &*page.meta;
    let at = now_ms() + 1;
    assert!(ban(1, BanKind::Key, "shop.test/static/app.js", None, at).matches(meta));
    assert!(
        !ban(1, BanKind::Key, "shop.test/static/app", None, at).matches(meta),
        "a key ban is exact"
    );
    assert!(ban(1, BanKind::Prefix, "/static/", None, at).matches(meta));
    assert!(
        ban(1, BanKind::Prefix, "/static/", Some("SHOP.test"), at).matches(meta),
        "hosts compare without case"
    );
    assert!(!ban(1, BanKind::Prefix, "/static/", Some("other.test"), at).matches(meta));
    assert!(!ban(1, BanKind::Prefix, "/api/", None, at).matches(meta));
    assert!(ban(1, BanKind::Tag, "v7", None, at).matches(meta));
    assert!(!ban(1, BanKind::Tag, "v8", None, at).matches(meta));
}

#[test]
fn a_ban_removes_what_was_stored_at_or_before_it_not_after() {
    let t = now_ms();
    let before = entry_at("a.test", "/p", &[], 1, t - 1);
    let same = entry_at("a.test", "/p", &[], 1, t);
    let after = entry_at("a.test", "/p", &[], 1, t + 1);
    let purge = ban(3, BanKind::Key, "a.test/p", None, t);
    assert!(purge.matches(&before.meta) && purge.matches(&same.meta));
    assert!(
        !purge.matches(&after.meta),
        "stored after the purge: a fresh copy"
    );
    let set = BanSet::of(&[purge]);
    assert!(set.removes(&before.meta) && set.removes(&same.meta) && !set.removes(&after.meta));
}

#[test]
fn the_ban_index_answers_as_the_bans_do() {
    let t = now_ms();
    let bans = [
        ban(1, BanKind::Key, "a.test/k", None, t - 50),
        ban(2, BanKind::Key, "a.test/k", None, t - 10),
        ban(3, BanKind::Tag, "red", None, t - 30),
        ban(4, BanKind::Prefix, "/img/", Some("b.test"), t - 20),
    ];
    let set = BanSet::of(&bans);
    let cases = [
        entry_at("a.test", "/k", &[], 1, t - 20),
        entry_at("a.test", "/k", &[], 1, t - 5),
        entry_at("a.test", "/other", &["red"], 1, t - 40),
        entry_at("a.test", "/other", &["red"], 1, t - 25),
        entry_at("b.test", "/img/1.png", &[], 1, t - 25),
        entry_at("a.test", "/img/1.png", &[], 1, t - 25),
        entry_at("b.test", "/img/1.png", &[], 1, t - 15),
    ];
    for case in &cases {
        let expected = bans.iter().any(|b| b.matches(&case.meta));
        assert_eq!(
            set.removes(&case.meta),
            expected,
            "{:?} stored at {}",
            case.meta.key,
            case.meta.stored_at_ms
        );
    }
    assert_eq!(cases.iter().filter(|c| set.removes(&c.meta)).count(), 3);
}

#[test]
fn l1_purge_by_key_drops_every_variant() {
    let store = store(1 << 20);
    let base = entry("a.test", "/v", &[]);
    store.put(base.clone());
    store.put(variant(&base, "accept-encoding: gzip"));
    store.put(variant(&base, "accept-encoding: br"));
    store.put(entry("a.test", "/v2", &[]));
    store.l1.purge(BanSet::of(&[ban(
        1,
        BanKind::Key,
        "a.test/v",
        None,
        now_ms(),
    )]));
    assert!(store.get_local("a.test/v").is_none());
    assert!(store.get_local("a.test/v\naccept-encoding: gzip").is_none());
    assert!(store.get_local("a.test/v\naccept-encoding: br").is_none());
    assert!(
        store.get_local("a.test/v2").is_some(),
        "a key ban names one key, not a prefix"
    );
}

#[test]
fn l1_purge_by_prefix_and_host() {
    let store = store(1 << 20);
    for (host, path) in [
        ("a.test", "/static/1"),
        ("a.test", "/static/2"),
        ("b.test", "/static/1"),
        ("a.test", "/api/1"),
    ] {
        store.put(entry(host, path, &[]));
    }
    store.l1.purge(BanSet::of(&[ban(
        1,
        BanKind::Prefix,
        "/static/",
        Some("a.test"),
        now_ms(),
    )]));
    assert!(
        store.get_local("a.test/static/1").is_none()
            && store.get_local("a.test/static/2").is_none()
    );
    assert!(
        store.get_local("b.test/static/1").is_some(),
        "another host's entries stay"
    );
    assert!(store.get_local("a.test/api/1").is_some());
    store
        .l1
        .purge(BanSet::of(&[ban(2, BanKind::Prefix, "/", None, now_ms())]));
    assert_eq!(
        store.stats().entries,
        0,
        "a prefix of / on every host empties the tier"
    );
}

#[test]
fn l1_purge_by_tag() {
    let store = store(1 << 20);
    store.put(entry("a.test", "/1", &["product-7", "list"]));
    store.put(entry("a.test", "/2", &["product-8", "list"]));
    store.put(entry("a.test", "/3", &[]));
    store.l1.purge(BanSet::of(&[ban(
        1,
        BanKind::Tag,
        "product-7",
        None,
        now_ms(),
    )]));
    assert!(store.get_local("a.test/1").is_none());
    assert!(store.get_local("a.test/2").is_some() && store.get_local("a.test/3").is_some());
    store
        .l1
        .purge(BanSet::of(&[ban(2, BanKind::Tag, "list", None, now_ms())]));
    assert!(store.get_local("a.test/2").is_none() && store.get_local("a.test/3").is_some());
}

#[test]
fn an_l1_purge_spares_entries_stored_after_it() {
    let store = store(1 << 20);
    let t = now_ms();
    store.put(entry_at("a.test", "/old", &["t"], 1, t - 1000));
    store.put(entry_at("a.test", "/new", &["t"], 1, t + 1000));
    store
        .l1
        .purge(BanSet::of(&[ban(1, BanKind::Tag, "t", None, t)]));
    assert!(store.get_local("a.test/old").is_none());
    assert!(store.get_local("a.test/new").is_some());
}

#[test]
fn a_response_received_before_a_known_ban_is_not_stored() {
    let store = store(1 << 20);
    let t = now_ms();
    let fresh = record(
        &store.bans,
        vec![ban(1, BanKind::Prefix, "/news/", None, t)],
        t,
    );
    assert_eq!(fresh.len(), 1);
    store.put(entry_at("a.test", "/news/today", &[], 1, t - 5));
    assert!(
        store.get_local("a.test/news/today").is_none(),
        "fetched before the purge, stored after it"
    );
    store.put(entry_at("a.test", "/news/today", &[], 1, t + 5));
    assert!(store.get_local("a.test/news/today").is_some());
}

#[path = "tests_shared.rs"]
mod shared_tests;
