//! Slow read over HTTP/2, with large streamed responses on many streams:
//! peers that never send WINDOW_UPDATE (while answering every PING, so
//! keep-alive does not save the host), and peers that open a huge window but
//! never read the socket. `send_timeout` must close both, and what they pin
//! meanwhile stays bounded: one body chunk per stream for the first, h2's
//! per-stream send buffer (64 KiB; with hyper's default of 400 KiB the RSS
//! grew 105 MiB here, past the 64 MiB bound) for the second.

use std::net::SocketAddr;

use tokio::task::JoinSet;

use super::{
    Meter, Bystander, judge, manifest,
    wire::{self, ACK, WINDOW_UPDATE, END_HEADERS, END_STREAM, Frame, GOAWAY, HEADERS, PING, frame, get_block},
};
use crate::common::PATIENCE;
use covet_e2e::Host;

/// Attacking connections, and streams each.
const CONNECTIONS: usize = 4;
const STREAMS: u32 = 100;

/// One attacking connection: opens its streams, answers PINGs, never opens
/// its window. Returns the GOAWAY it got and whether the connection ended.
async fn starve(addr: SocketAddr) -> (Option<Frame>, bool, usize) {
    let (mut reader, mut writer) = wire::handshake(addr, &[]).await;
    let block = get_block("/download");
    let requests: Vec<u8> = (0..STREAMS).flat_map(|i| frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, &block)).collect();
    assert!(writer.write(&requests).await, "requests written");
    let (mut goaway, mut data) = (None, 0);
    let started = std::time::Instant::now();
    while started.elapsed() < 3 * PATIENCE {
        let Some(f) = reader.next(PATIENCE).await else {
            return (goaway, true, data);
        };
        match f.kind {
            PING if f.flags & ACK == 0 => {
                let _ = writer.write(&frame(PING, ACK, 0, &f.payload)).await;
            }
            GOAWAY => goaway = Some(f),
            wire::DATA => data += f.payload.len(),
            _ => {}
        }
    }
    (goaway, false, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_open_their_window_get_goaway_and_pin_little() {
    let host = Host::start(manifest(&[("send_timeout", "2s"), ("h2_keepalive_interval", "1s")])).await;
    let meter = Meter::start(&host);
    let bystander = Bystander::start(&host, "/echo");
    let mut peers = JoinSet::new();
    for _ in 0..CONNECTIONS {
        peers.spawn(starve(host.addr()));
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = peers.join_next().await {
        outcomes.push(outcome.expect("a starving peer"));
    }
    let cost = meter.stop().await;
    let served = bystander.finish().await;
    let received: usize = outcomes.iter().map(|(_, _, data)| data).sum();
    for (goaway, closed, data) in &outcomes {
        let goaway = goaway.as_ref().unwrap_or_else(|| panic!("no GOAWAY for a peer that took {data} bytes"));
        assert_eq!(goaway.error_code(), wire::NO_ERROR, "{goaway:?}");
        assert!(closed, "the starving connection stayed open after GOAWAY");
    }
    let outcome = format!("{CONNECTIONS}x{STREAMS} streams; {received} bytes sent before the windows closed; every peer GOAWAY 0x0 and closed");
    judge("slow read (window never opened)", &cost, served, &outcome);
}

/// SETTINGS_INITIAL_WINDOW_SIZE, and the largest window.
const INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// Hoarding connections: each grew the host's RSS about 17 MiB (the send
/// buffer and the chunk over it, per stream); with hyper's default, 52 MiB.
const HOARDERS: usize = 2;

/// One peer that opens every window wide, requests, and never reads; after
/// `stall`, reads what the kernels held. Returns whether the connection
/// had ended by then.
async fn hoard(addr: SocketAddr, stall: std::time::Duration) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    let (mut reader, mut writer) = wire::handshake_on(stream, &wire::setting(INITIAL_WINDOW_SIZE, MAX_WINDOW)).await;
    let mut opening = frame(WINDOW_UPDATE, 0, 0, &(MAX_WINDOW - 65_535).to_be_bytes());
    let block = get_block("/download");
    opening.extend((0..STREAMS).flat_map(|i| frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, &block)));
    assert!(writer.write(&opening).await, "requests written");
    tokio::time::sleep(stall).await;
    let (_, closed) = reader.until_closed(|_| {}).await;
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_open_their_window_but_never_read_are_cut_and_pin_little() {
    let host = Host::start(manifest(&[("send_timeout", "1s")])).await;
    let meter = Meter::start(&host);
    let bystander = Bystander::start(&host, "/echo");
    let mut peers = JoinSet::new();
    for _ in 0..HOARDERS {
        // Longer than send_timeout and the close after it.
        peers.spawn(hoard(host.addr(), std::time::Duration::from_secs(5)));
    }
    while let Some(closed) = peers.join_next().await {
        assert!(closed.expect("a hoarding peer"), "a peer that never read was never cut off");
    }
    let cost = meter.stop().await;
    let served = bystander.finish().await;
    // Its GOAWAY cannot reach a peer that reads nothing: only the close is checked.
    let outcome = format!("{HOARDERS}x{STREAMS} streams, window 2^31-1, socket never read; every connection closed");
    judge("slow read (window open, socket never read)", &cost, served, &outcome);
}
