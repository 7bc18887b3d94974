//! The `compress` plugin (plugins/compress) in the real host: a 50 KB JSON
//! body from static-response compressed with br, zstd and gzip and decoded
//! here by the reference crates byte for byte; q-value negotiation; small
//! bodies, other types, `no-transform`, HEAD and precompressed bodies left
//! alone; `Vary` and weakened ETags; a streamed response compressed as it
//! streams (the first part decodes before the rest is sent); request bodies
//! decompressed on streaming and buffered routes (and read whole by a Python
//! handler behind the filter), the bomb limit (413) and an unknown coding (415).

use std::{
    convert::Infallible,
    io::{Read, Write},
};

use bytes::Bytes;
use covet_e2e::{Host, Manifest, Reply, Route};
use http::Method;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;

use crate::common::{PATIENCE, assert_problem};

const COMPRESS: &str = "covet-compress";
const STATIC: &str = "covet-static-response";
const FIXTURE: &str = "covet-async-plugin";

/// About 50 KB of JSON: an array of records with varying numbers.
fn json_body() -> Vec<u8> {
    let records: Vec<_> = (0..700u64)
        .map(|i| json!({ "id": i, "name": format!("user-{i}"), "score": (i * 7919) % 1000, "tags": ["a", "b"], "active": i % 3 == 0 }))
        .collect();
    let body = serde_json::to_vec(&records).unwrap();
    assert!((45_000..60_000).contains(&body.len()), "{} bytes", body.len());
    body
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_end(&mut out).expect("gzip"),
        "br" => brotli::Decompressor::new(data, 4096).read_to_end(&mut out).expect("brotli"),
        "zstd" => zstd::stream::read::Decoder::new(data).unwrap().read_to_end(&mut out).expect("zstd"),
        other => panic!("no decoder for {other}"),
    };
    out
}

fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
            e.write_all(data).unwrap();
            e.into_inner()
        }
        "zstd" => zstd::stream::encode_all(data, 3).unwrap(),
        other => panic!("no encoder for {other}"),
    }
}

fn vary(reply: &Reply) -> Vec<String> {
    reply.headers.get_all("vary").iter().flat_map(|v| v.to_str().unwrap().split(',')).map(|v| v.trim().to_ascii_lowercase()).collect()
}

fn statik(body_file: &str, content_type: &str, headers: serde_json::Value) -> serde_json::Value {
    json!({ "body_file": body_file, "content_type": content_type, "headers": headers })
}

async fn static_host() -> Host {
    let manifest = Manifest::new()
        .plugin("compress", COMPRESS, json!({}))
        .plugin("data", STATIC, statik("data.json", "application/json", json!({ "etag": "\"v1\"", "vary": "origin" })))
        .plugin("varied", STATIC, statik("data.json", "application/json", json!({ "vary": "Accept-Encoding" })))
        .plugin("small", STATIC, statik("small.json", "application/json", json!({})))
        .plugin("png", STATIC, statik("data.json", "image/png", json!({})))
        .plugin("no-transform", STATIC, statik("data.json", "application/json", json!({ "cache-control": "public, no-transform" })))
        .plugin("pre", STATIC, statik("data.json.gz", "application/json", json!({ "content-encoding": "gzip" })));
    let manifest = ["data", "varied", "small", "png", "no-transform", "pre"]
        .iter()
        .fold(manifest, |m, name| m.route(Route::new(&format!("/{name}")).methods(["GET", "HEAD"]).filters(["compress"]).handler(name)));
    let host = Host::builder(manifest.to_yaml())
        .file("data.json", json_body())
        .file("small.json", &br#"{"ok":true}"#[..])
        .file("data.json.gz", encode("gzip", &json_body()))
        .start();
    host.wait_ready().await;
    host
}

async fn get(host: &Host, path: &str, accept: &str) -> Reply {
    let headers: &[(&str, &str)] = if accept.is_empty() { &[] } else { &[("accept-encoding", accept)] };
    host.http1().send(Method::GET, path, headers, Bytes::new()).await.expect("a reply")
}

#[tokio::test]
async fn each_codec_round_trips_fifty_kilobytes_of_json() {
    let host = static_host().await;
    let plain = json_body();
    for coding in ["br", "zstd", "gzip"] {
        for client in [host.http1(), host.http2()] {
            let reply = client.send(Method::GET, "/data", &[("accept-encoding", coding)], Bytes::new()).await.unwrap();
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("content-encoding"), Some(coding), "{:?}", reply.headers);
            assert_eq!(reply.header("content-length"), None, "the compressed length is not the original's");
            assert!(reply.body.len() < plain.len() / 3, "{coding}: {} bytes", reply.body.len());
            assert_eq!(decode(coding, &reply.body), plain, "{coding} over {:?}", reply.version);
            assert_eq!(reply.header("etag"), Some("W/\"v1\""), "a strong ETag is weakened");
            assert_eq!(vary(&reply), ["origin", "accept-encoding"], "vary appended to the handler's");
        }
    }
    let reply = get(&host, "/varied", "gzip").await;
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert_eq!(vary(&reply), ["accept-encoding"], "not named twice");
}

#[tokio::test]
async fn the_client_q_values_choose_the_coding() {
    let host = static_host().await;
    let plain = json_body();
    for (accept, chosen) in [
        ("gzip, deflate, br, zstd", Some("br")),
        ("gzip;q=1, br;q=0.5, zstd;q=0.7", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("*", Some("br")),
        ("*;q=0.5, zstd", Some("zstd")),
        ("br;q=0, zstd;q=0, gzip;q=0", None),
        ("*;q=0", None),
        ("deflate", None),
        ("gzip;q=0.4, identity", None),
        ("", None),
    ] {
        let reply = get(&host, "/data", accept).await;
        assert_eq!(reply.header("content-encoding"), chosen, "accept-encoding {accept:?}");
        assert!(vary(&reply).contains(&"accept-encoding".to_string()), "{accept:?}: identity varies too");
        match chosen {
            Some(coding) => assert_eq!(decode(coding, &reply.body), plain),
            None => {
                assert_eq!(reply.body, plain, "{accept:?}: sent as is");
                assert_eq!(reply.header("etag"), Some("\"v1\""), "{accept:?}: the strong ETag stays");
            }
        }
    }
}

#[tokio::test]
async fn small_other_types_no_transform_head_and_precompressed_are_left_alone() {
    let host = static_host().await;
    let small = get(&host, "/small", "gzip, br").await;
    assert_eq!((small.header("content-encoding"), &small.body[..]), (None, &br#"{"ok":true}"#[..]));
    assert_eq!(small.header("content-length"), Some("11"));
    for path in ["/png", "/no-transform"] {
        let reply = get(&host, path, "gzip, br").await;
        assert_eq!(reply.header("content-encoding"), None, "{path}");
        assert_eq!(reply.body, json_body(), "{path}");
        assert!(!vary(&reply).contains(&"accept-encoding".to_string()), "{path}: not a candidate, no vary");
    }
    let pre = get(&host, "/pre", "gzip, br, zstd").await;
    assert_eq!(pre.headers.get_all("content-encoding").iter().collect::<Vec<_>>(), ["gzip"], "no double compression");
    assert_eq!(decode("gzip", &pre.body), json_body(), "the handler's gzip, once");
    let head = host.http1().send(Method::HEAD, "/data", &[("accept-encoding", "gzip")], Bytes::new()).await.unwrap();
    assert_eq!((head.status.as_u16(), head.header("content-encoding")), (200, None), "HEAD is not compressed");
    assert_eq!(head.header("content-length").map(str::to_string), Some(json_body().len().to_string()));
}

/// Reads response frames until the gzip stream decodes to at least `want` bytes.
async fn read_until(body: &mut hyper::body::Incoming, decoder: &mut flate2::write::GzDecoder<Vec<u8>>, want: usize) {
    while decoder.get_ref().len() < want {
        let frame = tokio::time::timeout(PATIENCE, body.frame()).await.expect("compressed output in time");
        let frame = frame.expect("more body").expect("a frame");
        if let Ok(data) = frame.into_data() {
            decoder.write_all(&data).unwrap();
            decoder.flush().unwrap();
        }
    }
}

#[tokio::test]
async fn a_streamed_response_is_compressed_as_it_streams() {
    let manifest = Manifest::new()
        .plugin("compress", COMPRESS, json!({ "encodings": ["gzip"] }))
        .plugin("echo", FIXTURE, json!({ "mode": "echo" }))
        .route(Route::new("/echo").methods(["POST"]).filters(["compress"]).handler("echo"));
    let host = Host::start(manifest.to_yaml()).await;
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let frames = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    }));
    let req = http::Request::post(format!("http://{}/echo", host.addr()))
        .header("accept-encoding", "gzip")
        .header("x-echo-content-type", "text/event-stream")
        .body(StreamBody::new(frames))
        .unwrap();
    let first: Vec<u8> = (0..4000u32).flat_map(|i| format!("data: event {i}\n").into_bytes()).collect();
    let second = b"data: the end\n".repeat(500);
    tx.send(Bytes::from(first.clone())).await.unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req)).await.expect("head in time").expect("a response");
    assert_eq!(resp.headers().get("content-encoding").map(|v| v.as_bytes()), Some(&b"gzip"[..]));
    assert!(resp.headers().get("content-length").is_none());
    let mut body = resp.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    // The request body is still open: what came out so far was flushed for it.
    read_until(&mut body, &mut decoder, first.len()).await;
    assert_eq!(decoder.get_ref(), &first, "the first part decodes before the second is sent");
    tx.send(Bytes::from(second.clone())).await.unwrap();
    drop(tx);
    while let Some(frame) = tokio::time::timeout(PATIENCE, body.frame()).await.expect("the rest in time") {
        if let Ok(data) = frame.expect("a frame").into_data() {
            decoder.write_all(&data).unwrap();
        }
    }
    let whole = decoder.finish().expect("a complete gzip stream");
    assert_eq!(whole, [first, second].concat());
}

fn upload_host_manifest() -> Manifest {
    let compress = json!({ "decompress_requests": true, "max_decompressed_size": 1 << 20 });
    Manifest::new()
        .limit("max_body", "4MiB")
        .plugin("compress", COMPRESS, compress)
        .plugin("count", FIXTURE, json!({ "mode": "count" }))
        .plugin("tag", "covet-headers", json!({ "response": { "set": { "x-buffered": "yes" } } }))
        // Every plugin streams: the body is decompressed as the handler reads it.
        .route(Route::new("/stream").methods(["POST"]).filters(["compress"]).handler("count"))
        // headers buffers the body: it is decompressed whole in on_request.
        .route(Route::new("/buffered").methods(["POST"]).filters(["compress", "tag"]).handler("count"))
}

#[tokio::test]
async fn request_bodies_are_decompressed_within_the_limit() {
    let host = Host::start(upload_host_manifest().to_yaml()).await;
    let plain = [b"a".repeat(300_000), b"b".repeat(200_000)].concat();
    for coding in ["gzip", "br", "zstd"] {
        let compressed = encode(coding, &plain);
        for path in ["/stream", "/buffered"] {
            let reply = host.http1().send(Method::POST, path, &[("content-encoding", coding)], compressed.clone()).await.unwrap();
            assert_eq!((reply.status.as_u16(), reply.text()), (200, "bytes=500000 a=300000 A=0".to_string()), "{coding} {path}");
        }
    }
    let plain = host.http1().send(Method::POST, "/stream", &[], &b"aaa"[..]).await.unwrap();
    assert_eq!(plain.text(), "bytes=3 a=3 A=0", "no content-encoding: untouched");
}

#[tokio::test]
async fn a_decompression_bomb_is_a_413_and_an_unknown_coding_a_415() {
    let host = Host::start(upload_host_manifest().to_yaml()).await;
    let zeros = vec![0u8; 8 << 20]; // 8 MiB of zeros: a few KB compressed, over the 1 MiB limit
    for coding in ["gzip", "br", "zstd"] {
        let bomb = encode(coding, &zeros);
        assert!(bomb.len() < 64 * 1024, "{coding}: {} bytes", bomb.len());
        for path in ["/stream", "/buffered"] {
            let reply = host.http1().send(Method::POST, path, &[("content-encoding", coding)], bomb.clone()).await.unwrap();
            let error = assert_problem(&reply, 413, "PAYLOAD_TOO_LARGE");
            assert_eq!(error["details"]["max_decompressed_size"], 1 << 20, "{coding} {path}");
        }
    }
    let reply = host.http1().send(Method::POST, "/stream", &[("content-encoding", "deflate")], &b"x"[..]).await.unwrap();
    let error = assert_problem(&reply, 415, "UNSUPPORTED_CONTENT_ENCODING");
    assert_eq!(error["details"]["content_encoding"], "deflate");
    assert_eq!(reply.header("accept-encoding"), Some("gzip, br, zstd"));
    let reply = host.http1().send(Method::POST, "/buffered", &[("content-encoding", "gzip")], &b"not gzip at all"[..]).await.unwrap();
    assert_problem(&reply, 400, "BAD_REQUEST_BODY");
    // The host served on: a good request after the refusals.
    let ok = host.http1().send(Method::POST, "/stream", &[("content-encoding", "gzip")], encode("gzip", b"aa")).await.unwrap();
    assert_eq!(ok.text(), "bytes=2 a=2 A=0");
}

/// An ASGI app answering with the length and the first bytes of the body it read.
const BODY_ECHO: &str = r#"
async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    text = f"bytes={len(body)} head={body[:5].decode()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})
"#;

#[tokio::test]
async fn a_python_handler_reads_the_body_decompressed_by_the_filter_before_it() {
    let compress = json!({ "decompress_requests": true, "max_decompressed_size": 1 << 20 });
    let yaml = Manifest::new()
        .plugin("compress", COMPRESS, compress)
        .route(Route::new("/echo").methods(["POST"]).filters(["compress"]).handler("app"))
        .to_yaml()
        .replace("routes:\n", "  app:\n    kind: python\n    asgi: echo.py:app\nroutes:\n");
    let host = Host::builder(yaml).file("echo.py", BODY_ECHO).start();
    host.wait_ready().await;
    let plain = [b"hello".repeat(1_000), b"z".repeat(5_000)].concat();
    for coding in ["gzip", "br", "zstd"] {
        let reply = host.http1().send(Method::POST, "/echo", &[("content-encoding", coding)], encode(coding, &plain)).await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "bytes=10000 head=hello".to_string()), "{coding}");
    }
    let bomb = encode("gzip", &vec![0u8; 4 << 20]);
    let reply = host.http1().send(Method::POST, "/echo", &[("content-encoding", "gzip")], bomb).await.unwrap();
    assert_eq!(reply.status.as_u16(), 413, "the bomb limit still holds in front of a buffered handler");
}
