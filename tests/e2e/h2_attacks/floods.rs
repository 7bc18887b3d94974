//! SETTINGS and PING floods: thousands of frames a second that each ask for
//! an acknowledgement. h2 answers one at a time (a flood that does not read
//! its ACKs stalls itself); the host also counts them and closes a peer past
//! 500 a second with GOAWAY.

use super::{
    attack,
    wire::{self, NO_ERROR, PING, SETTINGS, frame, setting},
};
use covet_e2e::Host;

/// SETTINGS_INITIAL_WINDOW_SIZE.
const INITIAL_WINDOW_SIZE: u16 = 0x4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_flood_gets_goaway() {
    let host = Host::start(super::manifest(&[])).await;
    let (reader, writer) = wire::handshake(host.addr(), &[]).await;
    let goaway = attack(&host, "SETTINGS flood", writer, reader, |mut w| async move {
        let floods = (0..100_000u32).map(|i| frame(SETTINGS, 0, 0, &setting(INITIAL_WINDOW_SIZE, 65_535 + i % 2)));
        super::flood(&mut w, floods).await
    })
    .await;
    assert_eq!(goaway.error_code(), NO_ERROR, "{goaway:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_gets_goaway() {
    let host = Host::start(super::manifest(&[])).await;
    let (reader, writer) = wire::handshake(host.addr(), &[]).await;
    let goaway = attack(&host, "PING flood", writer, reader, |mut w| async move {
        let floods = (0..100_000u64).map(|i| frame(PING, 0, 0, &i.to_be_bytes()));
        super::flood(&mut w, floods).await
    })
    .await;
    assert_eq!(goaway.error_code(), NO_ERROR, "{goaway:?}");
}
