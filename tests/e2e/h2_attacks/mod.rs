//! HTTP/2 attacks against the real host, each spoken frame by frame over a
//! raw socket ([`wire`]): rapid reset (CVE-2023-44487), CONTINUATION flood
//! (CVE-2024-27316), an HPACK bomb, SETTINGS and PING floods, and a peer
//! that never opens its flow-control window. Each test asserts that the
//! attacking connection gets GOAWAY (with the error code the host chose) and
//! is closed, that the host's CPU time and RSS growth stay within generous
//! bounds a real failure would break ([`resources`]), and that a normal
//! client requesting throughout is served every time. Each prints one
//! `hardening | …` line with its figures (docs/hardening.md has the table):
//! `cargo test -p covet-e2e --test e2e h2_attacks -- --nocapture --test-threads 1`.
//! Every test runs on whichever backend `COVET_IO` selects.

mod floods;
pub mod resources;
mod window;
pub mod wire;

use std::time::Duration;

use covet_e2e::{Host, Manifest, Route};
use serde_json::json;

use crate::common::labelled;
use resources::{Bystander, Cost, Meter, mib};
use wire::{
    CANCEL, COMPRESSION_ERROR, CONTINUATION, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, Frame, HEADERS, RST_STREAM,
    Reader, Writer, frame, get_block, literal_indexed,
};

/// Most CPU time one attack may cost the host (a debug build, with the
/// bystander's requests counted in).
pub const CPU_BOUND: Duration = Duration::from_secs(10);
/// Most the host's RSS may grow during one attack.
pub const RSS_BOUND: u64 = 64 << 20;

/// An echo route for bystanders, and a streamed 8 MiB download.
pub fn manifest(limits: &[(&str, &str)]) -> Manifest {
    let manifest = limits.iter().fold(Manifest::new().access_log(false), |m, (k, v)| m.limit(k, v));
    manifest
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .plugin("download", "covet-async-plugin", json!({ "mode": "download", "bytes": 8 << 20 }))
        .route(Route::new("/echo").handler("echo"))
        .route(Route::new("/download").handler("download"))
}

/// Checks an attack's cost against the bounds and prints its line.
pub fn judge(attack: &str, cost: &Cost, served: usize, outcome: &str) {
    println!(
        "hardening | {} | {attack} | cpu {} ms | rss +{:.1} MiB (from {:.1} MiB) | bystander served {served}, failed 0 | {outcome}",
        cost.backend,
        cost.cpu.as_millis(),
        mib(cost.rss_growth),
        mib(cost.rss_before),
    );
    assert!(cost.cpu < CPU_BOUND, "{attack}: the host spent {:?} of CPU", cost.cpu);
    assert!(cost.rss_growth < RSS_BOUND, "{attack}: the host's RSS grew {:.1} MiB", mib(cost.rss_growth));
}

/// Runs `attack` (which writes) against one connection while its reader
/// waits for GOAWAY and the close; measures the host and runs a bystander
/// meanwhile. Returns the GOAWAY and the cost.
async fn attack<F, Fut>(host: &Host, name: &str, writer: Writer, mut reader: Reader, attack: F) -> Frame
where
    F: FnOnce(Writer) -> Fut,
    Fut: Future<Output = usize>,
{
    let meter = Meter::start(host);
    let bystander = Bystander::start(host, "/echo");
    let ((goaway, closed), written) = tokio::join!(reader.until_closed(|_| {}), attack(writer));
    let cost = meter.stop().await;
    let served = bystander.finish().await;
    let goaway = goaway.unwrap_or_else(|| panic!("{name}: no GOAWAY ({written} frames written; closed: {closed})"));
    assert!(closed, "{name}: the connection stayed open after GOAWAY");
    judge(name, &cost, served, &format!("GOAWAY 0x{:x} after {written} frames", goaway.error_code()));
    goaway
}

/// Writes `frames` in batches of about 64 KiB until done or the server
/// stops taking them; returns how many were written.
async fn flood(writer: &mut Writer, frames: impl Iterator<Item = Vec<u8>>) -> usize {
    let (mut batch, mut queued, mut written) = (Vec::new(), 0, 0);
    for f in frames {
        batch.extend(f);
        queued += 1;
        if batch.len() >= 64 * 1024 {
            if !writer.write(&batch).await {
                return written;
            }
            written += queued;
            (queued, batch) = (0, Vec::new());
        }
    }
    if writer.write(&batch).await {
        written += queued;
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_enhance_your_calm() {
    let host = Host::start(manifest(&[])).await;
    let (reader, writer) = wire::handshake(host.addr(), &[]).await;
    let block = get_block("/echo");
    let goaway = attack(&host, "rapid reset", writer, reader, |mut w| async move {
        let streams = (0..20_000u32).map(|i| 1 + 2 * i).flat_map(|id| {
            [frame(HEADERS, END_STREAM | END_HEADERS, id, &block), frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes())]
        });
        flood(&mut w, streams).await
    })
    .await;
    assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM, "{goaway:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_gets_goaway() {
    let host = Host::start(manifest(&[])).await;
    let (reader, writer) = wire::handshake(host.addr(), &[]).await;
    // Each CONTINUATION carries complete 1 KiB headers; END_HEADERS never comes.
    let chunk: Vec<u8> = (0..15).flat_map(|i| literal_indexed(format!("x-c{i}").as_bytes(), &[b'c'; 1024])).collect();
    let goaway = attack(&host, "CONTINUATION flood", writer, reader, |mut w| async move {
        let head = frame(HEADERS, END_STREAM, 1, &get_block("/echo"));
        // 8,000 frames of 15 KiB: 120 MiB if the host kept them.
        let rest = (0..8_000).map(|_| frame(CONTINUATION, 0, 1, &chunk));
        flood(&mut w, std::iter::once(head).chain(rest)).await
    })
    .await;
    assert!([ENHANCE_YOUR_CALM, COMPRESSION_ERROR].contains(&goaway.error_code()), "{goaway:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_continuation_flood_gets_goaway_enhance_your_calm() {
    let host = Host::start(manifest(&[])).await;
    let (reader, writer) = wire::handshake(host.addr(), &[]).await;
    let goaway = attack(&host, "CONTINUATION flood (empty frames)", writer, reader, |mut w| async move {
        let head = frame(HEADERS, END_STREAM, 1, &get_block("/echo"));
        let rest = (0..200_000).map(|_| frame(CONTINUATION, 0, 1, &[]));
        flood(&mut w, std::iter::once(head).chain(rest)).await
    })
    .await;
    assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM, "{goaway:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpack_bomb_gets_goaway_enhance_your_calm() {
    let host = Host::start(manifest(&[])).await;
    let (reader, writer) = wire::handshake(host.addr(), &[]).await;
    let goaway = attack(&host, "HPACK bomb", writer, reader, |mut w| async move {
        // One 4 KiB header into the dynamic table (index 62), then referenced
        // with one byte each: a 16 KiB block that decodes to about 48 MiB.
        let mut first = get_block("/echo");
        first.extend(literal_indexed(b"x-bomb", &[b'b'; 4000]));
        first.extend(std::iter::repeat_n(0x80 | 62, 12_000));
        let refs = vec![0x80 | 62; 16_000];
        let bombs = (0..2_000u32).map(|i| {
            let id = 1 + 2 * i;
            let block = if i == 0 { first.clone() } else { [get_block("/echo"), refs.clone()].concat() };
            frame(HEADERS, END_STREAM | END_HEADERS, id, &block)
        });
        flood(&mut w, bombs).await
    })
    .await;
    assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM, "{goaway:?}");
}
