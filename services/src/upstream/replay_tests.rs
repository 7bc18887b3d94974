//! Tests of the replay buffer: bodies streamed in chunks, read by successive attempts.

use bytes::Bytes;
use http::HeaderMap;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::Replay;
use crate::http::{BoxError, RequestBody};

/// A body streaming `chunks` chunks of `size` bytes, chunk `i` filled with byte `i`.
fn streamed(chunks: usize, size: usize) -> RequestBody {
    let frames = (0..chunks).map(move |i| Ok::<_, BoxError>(Frame::data(Bytes::from(vec![i as u8; size]))));
    StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

fn expected(chunks: usize, size: usize) -> Vec<u8> {
    (0..chunks).flat_map(|i| vec![i as u8; size]).collect()
}

async fn read_all(body: RequestBody) -> Vec<u8> {
    body.collect().await.expect("body reads").to_bytes().to_vec()
}

#[tokio::test]
async fn a_body_read_past_the_limit_is_not_replayable() {
    let replay = Replay::new(Some(streamed(64, 16 * 1024)), 64 * 1024);
    assert!(replay.replayable());
    let first = replay.attempt_body().expect("first attempt");
    assert_eq!(read_all(first).await, expected(64, 16 * 1024), "the first attempt still gets the whole 1 MiB");
    assert!(!replay.replayable());
    assert!(replay.attempt_body().is_none());
}

#[tokio::test]
async fn a_body_within_the_limit_reads_the_same_twice() {
    let replay = Replay::new(Some(streamed(10, 1024)), 64 * 1024);
    let first = read_all(replay.attempt_body().expect("first")).await;
    let second = read_all(replay.attempt_body().expect("second")).await;
    assert_eq!(first, expected(10, 1024));
    assert_eq!(second, first);
    assert!(replay.replayable());
}

#[tokio::test]
async fn a_partly_read_body_replays_what_was_read_and_continues() {
    let replay = Replay::new(Some(streamed(8, 100)), 64 * 1024);
    let mut first = replay.attempt_body().expect("first");
    for i in 0..3u8 {
        let frame = first.frame().await.expect("a frame").expect("no error");
        assert_eq!(frame.into_data().expect("data"), Bytes::from(vec![i; 100]));
    }
    drop(first);
    let second = replay.attempt_body().expect("second");
    assert_eq!(http_body::Body::size_hint(&second).lower(), 300, "the 3 replayed chunks (the stream gives no hint)");
    assert_eq!(read_all(second).await, expected(8, 100));
    let third = replay.attempt_body().expect("third");
    assert_eq!(read_all(third).await, expected(8, 100));
}

#[tokio::test]
async fn an_abandoned_attempt_fails_when_polled() {
    let replay = Replay::new(Some(streamed(4, 10)), 1024);
    let mut first = replay.attempt_body().expect("first");
    first.frame().await.expect("a frame").expect("data");
    let _second = replay.attempt_body().expect("second");
    let error = first.frame().await.expect("an error frame").expect_err("abandoned");
    assert!(error.to_string().contains("abandoned"), "{error}");
}

#[tokio::test]
async fn trailers_are_replayed() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().expect("value"));
    let frames =
        vec![Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"hello"))), Ok(Frame::trailers(trailers.clone()))];
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
    let replay = Replay::new(Some(body), 1024);
    for attempt in 0..2 {
        let collected = replay.attempt_body().expect("attempt").collect().await.expect("reads");
        assert_eq!(collected.trailers(), Some(&trailers), "attempt {attempt}");
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"hello"), "attempt {attempt}");
    }
}

#[tokio::test]
async fn a_failed_source_is_not_replayable() {
    let frames = vec![
        Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"x"))),
        Err::<Frame<Bytes>, BoxError>("client went away".into()),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
    let replay = Replay::new(Some(body), 1024);
    let error = replay.attempt_body().expect("first").collect().await.expect_err("source error");
    assert!(error.to_string().contains("client went away"), "{error}");
    assert!(!replay.replayable());
    assert!(replay.attempt_body().is_none());
}

#[tokio::test]
async fn no_body_is_always_an_empty_body() {
    let replay = Replay::new(None, 0);
    for _ in 0..3 {
        let body = replay.attempt_body().expect("an empty body");
        assert!(http_body::Body::is_end_stream(&body));
        assert!(read_all(body).await.is_empty());
    }
    assert!(replay.replayable());
}

#[test]
fn attempt_bodies_are_send() {
    fn send<T: Send>(_: &T) {}
    let replay = Replay::new(Some(crate::http::full("x")), 10);
    send(&replay);
    send(&replay.attempt_body());
}
