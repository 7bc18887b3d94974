//! Unit tests of what the purge follower and the shared tier do without a
//! host: recording bans by seq, the purge log's text, the re-read rule, the
//! L2 frame, the bound on background writes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use covet_plugin_api::host::Host;
use covet_plugin_api::{Body, Header, Headers};

use super::{ban, entry, settings};
use crate::store::bans::{BAN_LIFETIME_MS, BanSet, parse_log};
use crate::store::follower::{BEHIND_POLLS, record, rereads_left};
use crate::store::shared::{Shared, Slot};
use crate::store::{
    BanKind, MAX_WRITES_IN_FLIGHT, SharedStats, Store, decode_frame, encode_frame, now_ms,
};

#[test]
fn recording_bans_keeps_each_seq_once_skips_old_ones_and_prunes() {
    let bans = RwLock::new(BanSet::default());
    let now = now_ms();
    let log = vec![
        ban(1, BanKind::Key, "a", None, now - BAN_LIFETIME_MS - 1),
        ban(3, BanKind::Key, "c", None, now - 10),
        ban(2, BanKind::Tag, "b", None, now - 20),
    ];
    let fresh = record(&bans, log.clone(), now);
    assert_eq!(
        fresh.iter().map(|b| b.seq).collect::<Vec<_>>(),
        vec![3, 2],
        "a ban older than 24 h is not kept"
    );
    assert!(record(&bans, log, now).is_empty(), "a ban is applied once");
    // Seq 4 was appended after 5 (two purges at once): it is still new.
    let fresh = record(
        &bans,
        vec![
            ban(5, BanKind::Key, "e", None, now),
            ban(4, BanKind::Key, "d", None, now),
        ],
        now,
    );
    assert_eq!(fresh.len(), 2);
    assert_eq!(bans.read().unwrap().len(), 4);
    // A day later every one of them has aged out.
    assert!(record(&bans, Vec::new(), now + BAN_LIFETIME_MS + 1).is_empty());
    assert!(bans.read().unwrap().is_empty());
}

#[test]
fn a_log_behind_its_counter_is_read_again_for_a_while() {
    let log = vec![
        ban(1, BanKind::Key, "a", None, 1),
        ban(2, BanKind::Key, "b", None, 2),
    ];
    assert_eq!(
        rereads_left(Some(2), &log, false, 0),
        0,
        "the log has every counted purge"
    );
    assert_eq!(rereads_left(None, &[], false, 0), 0, "no purge yet");
    // Purge 3 is counted, its append not landed: read again next polls.
    assert_eq!(rereads_left(Some(3), &log, false, 0), BEHIND_POLLS);
    assert_eq!(
        rereads_left(Some(3), &log, true, BEHIND_POLLS),
        BEHIND_POLLS - 1
    );
    assert_eq!(
        rereads_left(Some(3), &log, true, 1),
        0,
        "a writer that died is not waited for forever"
    );
    // The counter moved again meanwhile: wait afresh.
    assert_eq!(rereads_left(Some(4), &log, false, 3), BEHIND_POLLS);
}

#[test]
fn the_purge_log_text_reads_as_bans() {
    let text = br#"[{"seq":1,"kind":"key","value":"a.test/x","host":null,"at_ms":5},
                    {"seq":2,"kind":"prefix","value":"/s/","host":"a.test","at_ms":6},
                    {"seq":3,"kind":"tag","value":"t","at_ms":7}]"#;
    let bans = parse_log(text).expect("a log");
    assert_eq!(bans[0], ban(1, BanKind::Key, "a.test/x", None, 5));
    assert_eq!(bans[1], ban(2, BanKind::Prefix, "/s/", Some("a.test"), 6));
    assert_eq!(bans[2], ban(3, BanKind::Tag, "t", None, 7));
    let error = parse_log(b"{\"seq\":1}").expect_err("not an array");
    assert!(error.contains("purge.log"), "{error}");
}

#[test]
fn a_frame_round_trips() {
    let mut original = entry("a.test", "/frame", &["t1", "t2"]);
    original.status = 404;
    original.body = Body::from((0..=255u8).cycle().take(70_000).collect::<Vec<u8>>());
    original.headers = Headers::from(vec![
        Header::new("vary", "accept-encoding"),
        Header::new("x-empty", ""),
    ]);
    let frame = encode_frame(&original);
    assert!(
        frame.len() < original.body.len() + 600,
        "the frame is compact: {} bytes",
        frame.len()
    );
    let back = decode_frame(&frame).expect("decodes");
    assert_eq!(back.status, 404);
    assert_eq!(&*back.headers, &*original.headers);
    assert_eq!(&*back.body, &*original.body);
    assert_eq!(back.meta.key, original.meta.key);
    assert_eq!(back.meta.primary, original.meta.primary);
    assert_eq!(
        (&back.meta.host, &back.meta.path),
        (&original.meta.host, &original.meta.path)
    );
    assert_eq!(back.meta.tags, original.meta.tags);
    assert_eq!(
        (back.meta.stored_at_ms, back.meta.keep_until_ms),
        (original.meta.stored_at_ms, original.meta.keep_until_ms)
    );
}

#[test]
fn a_bad_frame_is_an_error_not_a_panic() {
    let frame = encode_frame(&entry("a.test", "/f", &[]));
    let body_start = frame.len() - 16;
    for cut in [0, 1, 3, 5, 20, body_start - 1] {
        assert!(decode_frame(&frame[..cut]).is_err(), "cut at {cut}");
    }
    let mut wrong_version = frame.clone();
    wrong_version[0] = 9;
    assert!(
        decode_frame(&wrong_version)
            .expect_err("version")
            .contains("version")
    );
    // A header count far beyond the bytes left.
    let meta_len = u32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let mut huge = frame[..1 + 4 + meta_len + 2].to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode_frame(&huge).is_err());
}

#[test]
fn background_writes_are_bounded_and_give_their_slot_back() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut slots: Vec<Slot> = (0..MAX_WRITES_IN_FLIGHT)
        .map(|_| Slot::take(&in_flight).expect("a free slot"))
        .collect();
    assert!(
        Slot::take(&in_flight).is_none(),
        "no slot past {MAX_WRITES_IN_FLIGHT}"
    );
    drop(slots.pop());
    assert_eq!(
        in_flight.load(Ordering::Relaxed),
        MAX_WRITES_IN_FLIGHT - 1,
        "a finished write gives its slot back"
    );
    let again = Slot::take(&in_flight).expect("the freed slot");
    assert_eq!(in_flight.load(Ordering::Relaxed), MAX_WRITES_IN_FLIGHT);
    drop((again, slots));
    assert_eq!(in_flight.load(Ordering::Relaxed), 0);
}

#[test]
fn a_write_that_cannot_be_spawned_is_counted_and_frees_its_slot() {
    let host = Host::unavailable();
    let shared = Shared::new(host.clone(), host.state("cache"), Duration::from_millis(50));
    shared.write(entry("a.test", "/w", &[]));
    let stats = shared.stats();
    assert_eq!(
        (stats.write_errors, stats.writes, stats.writes_in_flight),
        (1, 0, 0),
        "{stats:?}"
    );
    let mut past = entry("a.test", "/past", &[]);
    Arc::make_mut(&mut past.meta).keep_until_ms = now_ms() - 1;
    shared.write(past);
    assert_eq!(
        shared.stats().write_errors,
        1,
        "an entry past use is not written at all"
    );
}

#[test]
fn a_host_without_services_gives_an_l1_only_store() {
    let store = Store::new(&settings(1 << 20), Some(Host::unavailable())).expect("L1 only");
    store.put(entry("a.test", "/l1", &[]));
    assert!(store.get_local("a.test/l1").is_some());
    assert_eq!(store.shared_stats(), SharedStats::default());
    store.shutdown();
}
