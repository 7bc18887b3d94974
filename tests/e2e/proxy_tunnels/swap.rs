//! The proxy plugin swapped 100 times under load: while a few tasks keep
//! sending GETs through the proxy and WebSockets through it keep echoing
//! (three over HTTP/1.1 and one over HTTP/2 opened before, two during the
//! swaps), the plugin is reloaded and re-configured through the admin API
//! 100 times. No request may fail, each
//! swap is live when it returns, every WebSocket echoes throughout, still
//! echoes afterwards and closes cleanly (the tunnels belong to the host, not
//! to the instance), and every replaced instance then shuts down.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use covet_e2e::{Client, Host};
use serde_json::json;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    task::JoinHandle,
};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

use super::{
    PROXY, TICK, assert_echo, close_cleanly,
    extended_connect::{h2_connection, h2_websocket, origin},
    http1_upstream, pattern, proxy_config, start,
    upstream::mixed_upstream,
    ws_connect,
};
use crate::{
    common::PATIENCE,
    swap::{admin_post, status, swap},
};

const SWAPS: usize = 100;
const LOADERS: usize = 4;
/// HTTP/1.1 WebSockets open before the swaps (with one over HTTP/2; two
/// more are opened during them).
const SOCKETS: usize = 3;

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// The `Via` values the upstream saw on load requests (one per config).
    vias: Mutex<HashSet<String>>,
    failures: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_failure.lock().unwrap().get_or_insert(what);
    }
}

/// GETs `/load/<worker>/<n>` through the proxy until `stop`; each must be
/// a 200 with the upstream's `ok <path>`.
async fn load(client: Client, worker: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = format!("/load/{worker}/{n}");
        match client.get(&path).await {
            Ok(reply) if reply.status == 200 && reply.text() == format!("ok {path}") => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                let via = reply.header("x-seen-via").unwrap_or_default().to_string();
                tally.vias.lock().unwrap().insert(via);
            }
            Ok(reply) => tally.fail(format!("{path}: {} {}", reply.status, reply.text())),
            Err(e) => tally.fail(format!("{path}: {e}")),
        }
        n += 1;
    }
}

/// Swap `i`: even ones reload the artifact with its config (`/reload`), odd
/// ones swap in a config naming the proxy `edge-<i>` in `Via` (`/swap`); each
/// makes a new instance. Returns the `Via` name now live.
async fn swap_once(host: &Host, i: usize, live: &str) -> String {
    let (reply, now) = if i.is_multiple_of(2) {
        (admin_post(host, &format!("/v1/plugins/{PROXY}/reload"), json!({})).await, live.to_string())
    } else {
        let name = format!("edge-{i}");
        (swap(host, PROXY, json!({ "config": proxy_config(json!({ "via": name })) })).await, name)
    };
    assert_eq!(reply.status, 200, "swap {i}: {}", reply.text());
    now
}

/// Asserts a request sent now goes through the instance naming itself `via`.
async fn assert_live(probe: &Client, i: usize, via: &str) {
    let reply = probe.get("/probe").await.expect("probe through the proxy");
    assert_eq!(reply.status, 200, "probe after swap {i}: {}", reply.text());
    let seen = reply.header("x-seen-via").unwrap_or_default();
    assert!(
        seen.split(',').any(|entry| entry.trim().ends_with(&format!(" {via}"))),
        "after swap {i} the upstream saw via {seen:?}, not {via}"
    );
}

/// Echoes numbered messages on `ws` until `stop` (a wrong or missing echo
/// panics the task), then a 64 KiB message, and closes cleanly; returns how
/// many messages came back before `stop`.
async fn chatter<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    id: usize,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        assert_echo(&mut ws, Message::text(format!("socket {id} message {n}"))).await;
        n += 1;
    }
    assert_echo(&mut ws, Message::binary(pattern(64 * 1024 + id))).await;
    close_cleanly(ws).await;
    n
}

/// Opens WebSocket `id` through covet and keeps it talking until `stop`.
async fn open_chatter(host: &Host, id: usize, stop: &Arc<AtomicBool>) -> JoinHandle<u64> {
    let ws = ws_connect(host.addr(), &format!("/ws/{id}")).await;
    tokio::spawn(chatter(ws, id, stop.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_swapped_100_times_under_load_fails_nothing_and_keeps_websockets() {
    let host = start(http1_upstream(mixed_upstream(None).await), json!({})).await;
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let mut sockets = Vec::new();
    for id in 0..SOCKETS {
        sockets.push(open_chatter(&host, id, &stop).await);
    }
    // And one over an HTTP/2 extended CONNECT stream.
    let mut h2 = h2_connection(host.addr()).await;
    let ws = h2_websocket(&mut h2, &origin(&host), "/ws/h2").await;
    sockets.push(tokio::spawn(chatter(ws, sockets.len(), stop.clone())));
    let loaders: Vec<_> =
        (0..LOADERS).map(|w| tokio::spawn(load(Client::http1(host.addr()), w, stop.clone(), tally.clone()))).collect();
    tokio::time::sleep(TICK).await;

    let (probe, mut live) = (host.http1(), "covet".to_string());
    for i in 0..SWAPS {
        live = swap_once(&host, i, &live).await;
        assert_live(&probe, i, &live).await;
        if i % 40 == 20 {
            // More tunnels, opened on instances that are replaced later.
            sockets.push(open_chatter(&host, sockets.len(), &stop).await);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for loader in loaders {
        loader.await.expect("load task");
    }

    let failures = tally.failures.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "first failure: {:?}", tally.first_failure.lock().unwrap());
    assert!(tally.ok.load(Ordering::Relaxed) > 0, "the load ran");
    let vias = tally.vias.lock().unwrap().len();
    assert!(vias > 1, "the load went through more than one instance: {vias} `Via` names seen");
    assert_eq!(status(&host, PROXY).await["swaps"], SWAPS, "every swap took effect");
    assert_websockets_still_echo(sockets).await;
    assert_instances_retired(&host).await;
}

/// Every WebSocket echoed through the swaps, then echoed a 64 KiB message
/// and closed cleanly.
async fn assert_websockets_still_echo(sockets: Vec<JoinHandle<u64>>) {
    let mut echoed = 0;
    for (id, socket) in sockets.into_iter().enumerate() {
        echoed += socket.await.unwrap_or_else(|e| panic!("WebSocket {id} through the swaps: {e}"));
    }
    assert!(echoed > 0, "the WebSockets talked during the swaps");
}

/// Once the tunnels are closed, every replaced instance has shut down.
async fn assert_instances_retired(host: &Host) {
    let retired = || host.logs().matches("plugin instance retired").count();
    let deadline = std::time::Instant::now() + PATIENCE;
    while retired() < SWAPS && std::time::Instant::now() < deadline {
        tokio::time::sleep(TICK).await;
    }
    assert_eq!(retired(), SWAPS, "every replaced instance shut down once:\n{}", host.logs());
}
