//! Bounds: the in-process tier never holds more than `max_memory` (a stream
//! of unique keys evicts the early ones and keeps the recent ones), and a
//! response larger than `max_object_size` streams through uncached, whether
//! it declares its length or is chunked, while a chunked one under the
//! limit is stored.

use covet_e2e::{Answer, Origin};
use serde_json::json;

use super::{assert_hit, assert_miss, gateway, get, get_with};

const OBJECT: usize = 4 * 1024;
const OBJECTS: usize = 2_000;
const MAX_MEMORY: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_unique_keys_stays_within_max_memory() {
    let origin = Origin::start().await;
    origin.set("/m/*", Answer::cached("max-age=600", vec![b'm'; OBJECT]));
    let host = gateway(&origin, json!({ "max_memory": "1MiB" })).await;
    for n in 0..OBJECTS {
        let reply = get(&host, &format!("/m/{n}")).await;
        assert_eq!((reply.status.as_u16(), reply.body.len()), (200, OBJECT), "/m/{n}");
    }
    assert_eq!(origin.requests(), OBJECTS, "every key was a miss");
    // The most recent keys are still there...
    for n in (OBJECTS - 20..OBJECTS).rev() {
        assert_hit(&host, &origin, &format!("/m/{n}")).await;
    }
    // ...the early ones were evicted.
    for n in 0..20 {
        assert_miss(&host, &origin, &format!("/m/{n}")).await;
    }
    // No more than max_memory's worth of objects is held (probed without storing anything).
    let mut held = 0;
    for n in 0..OBJECTS {
        let reply = get_with(&host, &format!("/m/{n}"), &[("cache-control", "only-if-cached")]).await;
        match reply.status.as_u16() {
            200 => held += 1,
            504 => {}
            other => panic!("/m/{n} only-if-cached: {other} {}", reply.text()),
        }
    }
    assert!(held * OBJECT <= MAX_MEMORY, "{held} objects of {OBJECT} bytes are held under a {MAX_MEMORY}-byte bound");
    assert!(held >= 20, "the cache still holds recent objects: {held}");
    assert_eq!(origin.requests(), OBJECTS + 20, "the probes never reached the origin");
}

#[tokio::test]
async fn larger_than_max_object_size_streams_through_uncached() {
    let limit = 64 * 1024;
    let origin = Origin::start().await;
    origin.set("/big", Answer::cached("max-age=60", vec![b'b'; 4 * limit]));
    origin.set("/big-chunked", Answer::cached("max-age=60", vec![b'c'; 4 * limit]).chunked());
    origin.set("/small-chunked", Answer::cached("max-age=60", vec![b's'; limit / 2]).chunked());
    let host = gateway(&origin, json!({ "max_object_size": limit })).await;
    for path in ["/big", "/big-chunked"] {
        for _ in 0..2 {
            let reply = assert_miss(&host, &origin, path).await;
            assert_eq!((reply.status.as_u16(), reply.body.len()), (200, 4 * limit), "{path} streamed whole");
        }
    }
    let first = assert_miss(&host, &origin, "/small-chunked").await;
    assert_eq!(first.body.len(), limit / 2);
    let hit = assert_hit(&host, &origin, "/small-chunked").await;
    assert_eq!(hit.body, first.body, "the chunked answer under the limit was stored whole");
}
