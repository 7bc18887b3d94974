//! Unit tests: negotiation, type matching, ETags, and the streams against
//! the reference decoders.

use std::{
    io::Read,
    sync::{Arc, atomic::AtomicBool},
    task::{Context, Poll},
};

use covet_plugin_api::{BodyStream, Chunk};

use crate::{Coding, Compressing, Decoder, Decoding, Encoder, Levels, Settings, TypePattern, decode_all, negotiate, no_transform, type_matches, weaken_etag};

const PREF: &[Coding] = &[Coding::Brotli, Coding::Zstd, Coding::Gzip];

#[test]
fn negotiation_follows_q_values_then_server_order() {
    assert_eq!(negotiate("gzip, deflate, br, zstd", PREF), Some(Coding::Brotli));
    assert_eq!(negotiate("gzip, zstd", PREF), Some(Coding::Zstd));
    assert_eq!(negotiate("gzip;q=1.0, br;q=0.5", PREF), Some(Coding::Gzip), "higher q wins over server order");
    assert_eq!(negotiate("br;q=0.8, zstd;q=0.8", PREF), Some(Coding::Brotli), "a tie goes to the server's order");
    assert_eq!(negotiate("x-gzip", PREF), Some(Coding::Gzip));
    assert_eq!(negotiate("GZIP;Q=0.3", PREF), Some(Coding::Gzip));
    assert_eq!(negotiate("deflate", PREF), None);
    assert_eq!(negotiate("", PREF), None);
}

#[test]
fn q_zero_excludes_and_star_covers_the_rest() {
    assert_eq!(negotiate("br;q=0, gzip", PREF), Some(Coding::Gzip));
    assert_eq!(negotiate("br;q=0, zstd;q=0, gzip;q=0", PREF), None);
    assert_eq!(negotiate("*", PREF), Some(Coding::Brotli));
    assert_eq!(negotiate("*;q=0.5, gzip", PREF), Some(Coding::Gzip), "gzip named at q=1 beats br via * at 0.5");
    assert_eq!(negotiate("*;q=0, gzip", PREF), Some(Coding::Gzip));
    assert_eq!(negotiate("*;q=0", PREF), None);
    assert_eq!(negotiate("br;q=0, *", PREF), Some(Coding::Zstd), "an explicit q=0 beats *");
}

#[test]
fn identity_and_malformed_q_values() {
    assert_eq!(negotiate("gzip;q=0.5, identity", PREF), None, "identity rated higher is honoured");
    assert_eq!(negotiate("gzip, identity;q=0", PREF), Some(Coding::Gzip));
    assert_eq!(negotiate("gzip;q=1.5", PREF), None, "q over 1 is malformed: member ignored");
    assert_eq!(negotiate("gzip;q=0.0001", PREF), None, "more than three decimals is malformed");
    assert_eq!(negotiate("gzip;q=abc, zstd", PREF), Some(Coding::Zstd));
    assert_eq!(negotiate("gzip;q=0.001", PREF), Some(Coding::Gzip));
    assert_eq!(negotiate("gzip", &[Coding::Zstd]), None, "only the configured codings are offered");
}

fn patterns(list: &[&str]) -> Vec<TypePattern> {
    list.iter().map(|t| TypePattern::parse(t).unwrap()).collect()
}

#[test]
fn content_types_match_exact_prefix_and_suffix() {
    let types = patterns(crate::negotiate::DEFAULT_TYPES);
    for t in ["text/html", "text/plain; charset=utf-8", "application/json", "APPLICATION/JSON;charset=UTF-8", "application/problem+json", "application/atom+xml", "image/svg+xml"] {
        assert!(type_matches(t, &types), "{t} should be compressible");
    }
    for t in ["image/png", "application/octet-stream", "video/mp4", "", "application/jsonx", "application/zip"] {
        assert!(!type_matches(t, &types), "{t} should not be compressible");
    }
    assert!(TypePattern::parse("json").is_err());
    assert!(TypePattern::parse("/*").is_err());
    assert_eq!(TypePattern::parse("Text/*").unwrap(), TypePattern::Prefix("text/".into()));
}

#[test]
fn strong_etags_are_weakened_once() {
    assert_eq!(weaken_etag("\"abc\"").as_deref(), Some("W/\"abc\""));
    assert_eq!(weaken_etag("W/\"abc\""), None);
    assert!(no_transform("public, No-Transform, max-age=60"));
    assert!(!no_transform("public, max-age=60"));
}

#[test]
fn settings_are_checked() {
    let bad = |json: &str| crate::Compress::new(serde_json::from_str::<Settings>(json).unwrap()).err().map(|e| e.to_string());
    assert!(bad(r#"{"encodings": []}"#).unwrap().contains("at least one"));
    assert!(bad(r#"{"encodings": ["gzip", "gzip"]}"#).unwrap().contains("twice"));
    assert!(bad(r#"{"levels": {"gzip": 10}}"#).unwrap().contains("levels.gzip"));
    assert!(bad(r#"{"types": ["json"]}"#).unwrap().contains("bad content type"));
    assert!(serde_json::from_str::<Settings>(r#"{"encodings": ["deflate"]}"#).is_err());
    assert!(bad(r#"{"levels": {"br": 11, "zstd": 19}, "min_size": 0}"#).is_none());
}

fn block_on_collect(mut body: BodyStream) -> Vec<Result<Vec<u8>, String>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut out = Vec::new();
    loop {
        match body.poll_chunk(&mut cx) {
            Poll::Ready(Some(Ok(c))) => out.push(Ok(c.to_vec())),
            Poll::Ready(Some(Err(e))) => out.push(Err(e)),
            Poll::Ready(None) => return out,
            Poll::Pending => panic!("a ready source never waits"),
        }
    }
}

fn decompress(coding: Coding, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        Coding::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap(),
        Coding::Brotli => brotli::Decompressor::new(data, 4096).read_to_end(&mut out).unwrap(),
        Coding::Zstd => zstd::stream::read::Decoder::new(data).unwrap().read_to_end(&mut out).unwrap(),
    };
    out
}

/// JSON-like text with pseudo-random numbers: compressible, but not trivially.
fn sample(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while out.len() < len {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.extend_from_slice(format!("{{\"id\":{},\"score\":{}}},", x >> 44, (x >> 20) % 1000).as_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_large_body_compresses_in_bounded_chunks_and_round_trips() {
    let plain = sample(1_000_000);
    for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
        let encoder = Encoder::new(coding, &Levels::default(), None).unwrap();
        let chunks = block_on_collect(Compressing::body(BodyStream::from_bytes(plain.clone()), encoder));
        let chunks: Vec<Vec<u8>> = chunks.into_iter().map(Result::unwrap).collect();
        assert!(chunks.len() > 1, "{coding:?}: output handed on as it is made");
        let compressed = chunks.concat();
        assert!(compressed.len() < plain.len() / 2, "{coding:?}: {} bytes", compressed.len());
        assert_eq!(decompress(coding, &compressed), plain, "{coding:?} round trip");
    }
}

#[test]
fn a_waiting_source_gets_its_bytes_flushed() {
    // A channel with one chunk sent and the sender alive: the source is Pending
    // after it, so what was compressed must come out decodable now.
    let (tx, rx) = BodyStream::channel(4);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(std::pin::pin!(tx.send(Chunk::from(b"first part of the stream ".to_vec()))).poll(&mut cx).is_ready());
    let encoder = Encoder::new(Coding::Gzip, &Levels::default(), None).unwrap();
    let mut body = Compressing::body(rx, encoder);
    let Poll::Ready(Some(Ok(first))) = body.poll_chunk(&mut cx) else { panic!("flushed output") };
    let mut partial = Vec::new();
    let mut decoder = flate2::write::GzDecoder::new(&mut partial);
    std::io::Write::write_all(&mut decoder, &first).unwrap();
    std::io::Write::flush(&mut decoder).unwrap();
    drop(decoder);
    assert_eq!(partial, b"first part of the stream ");
    assert!(body.poll_chunk(&mut cx).is_pending());
    drop(tx);
    let rest = block_on_collect(body);
    let all = [first.to_vec(), rest.into_iter().map(Result::unwrap).collect::<Vec<_>>().concat()].concat();
    assert_eq!(decompress(Coding::Gzip, &all), b"first part of the stream ");
}

fn compress_all(coding: Coding, plain: &[u8]) -> Vec<u8> {
    let mut encoder = Encoder::new(coding, &Levels::default(), Some(plain.len() as u64)).unwrap();
    encoder.write(plain).unwrap();
    let mut out = encoder.take();
    out.extend(encoder.finish().unwrap());
    out
}

#[test]
fn request_decoding_round_trips_and_stops_bombs() {
    let plain = sample(200_000);
    for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
        let compressed = compress_all(coding, &plain);
        assert_eq!(decode_all(coding, &compressed, 200_000).unwrap(), plain);
        let e = decode_all(coding, &compressed, 199_999).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge, "{coding:?}: {e}");
        let e = decode_all(coding, &compressed[..compressed.len() / 2], 1 << 20).unwrap_err();
        assert_ne!(e.kind(), std::io::ErrorKind::FileTooLarge, "{coding:?}: truncated is not a bomb");

        let over = Arc::new(AtomicBool::new(false));
        let stream = Decoding::body(BodyStream::from_bytes(compressed.clone()), Decoder::new(coding, 1000).unwrap(), over.clone());
        let chunks = block_on_collect(stream);
        assert!(chunks.last().unwrap().as_ref().unwrap_err().contains("larger than 1000"), "{coding:?}");
        assert!(over.load(std::sync::atomic::Ordering::Acquire));
        let collected: usize = chunks.iter().filter_map(|c| c.as_ref().ok()).map(Vec::len).sum();
        assert!(collected <= 1000, "{coding:?}: no more than the limit is let through");
    }
}
