//! Load generator for `bench/swap.sh`. Keeps `--conns` keep-alive HTTP/1.1
//! connections busy on `--path` (each on its own TCP connection, so a
//! dropped connection is seen), first in a steady phase, then while swapping
//! plugin `--plugin` between builds `--v1` and `--v2` `--swaps` times through
//! the admin API. Prints one JSON object: request latency percentiles in both
//! phases, failures (non-200, connection errors, responses without exactly
//! one `x-plugin-build`), swap latency percentiles (admin request sent →
//! response: the new build is live when it returns), and in how many swap
//! epochs the load saw the new build.
//!
//! ```text
//! swap-load --target 127.0.0.1:8080 --admin 127.0.0.1:9901 --plugin app \
//!   --v1 /abs/libv1.so --v2 /abs/libv2.so [--conns 50] [--swaps 100] \
//!   [--steady-secs 10] [--gap-ms 50]
//! ```

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

struct Args {
    target: SocketAddr,
    admin: SocketAddr,
    plugin: String,
    path: String,
    builds: [String; 2],
    conns: usize,
    swaps: usize,
    steady: Duration,
    gap: Duration,
}

fn args() -> Args {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{key} needs a value"));
        map.insert(key.trim_start_matches("--").to_string(), value);
    }
    let get = |k: &str, default: Option<&str>| {
        map.get(k).cloned().or(default.map(str::to_owned)).unwrap_or_else(|| panic!("--{k} is required"))
    };
    let num = |k: &str, d: &str| get(k, Some(d)).parse::<u64>().unwrap_or_else(|e| panic!("--{k}: {e}"));
    Args {
        target: get("target", None).parse().expect("--target ADDR"),
        admin: get("admin", None).parse().expect("--admin ADDR"),
        plugin: get("plugin", Some("app")),
        path: get("path", Some("/app")),
        builds: [get("v1", None), get("v2", None)],
        conns: num("conns", "50") as usize,
        swaps: num("swaps", "100") as usize,
        steady: Duration::from_secs(num("steady-secs", "10")),
        gap: Duration::from_millis(num("gap-ms", "50")),
    }
}

/// What the load workers saw.
#[derive(Default)]
struct Tally {
    /// The phase in progress: 0 warm-up, 1 steady, 2 swapping.
    phase: AtomicUsize,
    /// Latencies in µs, by phase.
    latencies: Mutex<[Vec<u32>; 3]>,
    non_200: AtomicU64,
    conn_errors: AtomicU64,
    bad_stamps: AtomicU64,
    /// Responses by build (v1, v2).
    by_build: [AtomicU64; 2],
    /// The swap epoch (number of swaps done) and the build it made live.
    epoch: AtomicUsize,
    /// Epochs in which a worker saw the build that epoch made live.
    seen_in_epoch: Mutex<Vec<bool>>,
}

async fn connect(addr: SocketAddr) -> Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

async fn worker(addr: SocketAddr, path: Arc<str>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut local: [Vec<u32>; 3] = Default::default();
    let mut sender = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(s) = sender.as_mut() else {
            sender = connect(addr).await;
            if sender.is_none() {
                tally.conn_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        };
        let req = Request::get(&*path).header("host", "bench").body(Empty::new()).expect("request");
        let started = Instant::now();
        let epoch = tally.epoch.load(Ordering::Acquire);
        let resp = match s.send_request(req).await {
            Ok(resp) => resp,
            Err(_) => {
                tally.conn_errors.fetch_add(1, Ordering::Relaxed);
                sender = None;
                continue;
            }
        };
        let (parts, body) = resp.into_parts();
        if body.collect().await.is_err() {
            tally.conn_errors.fetch_add(1, Ordering::Relaxed);
            sender = None;
            continue;
        }
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        local[tally.phase.load(Ordering::Relaxed)].push(micros);
        if parts.status != 200 {
            tally.non_200.fetch_add(1, Ordering::Relaxed);
        }
        let stamps: Vec<_> = parts.headers.get_all("x-plugin-build").iter().collect();
        let build = match stamps.as_slice() {
            [one] if *one == "v1" => 0,
            [one] if *one == "v2" => 1,
            _ => {
                tally.bad_stamps.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        tally.by_build[build].fetch_add(1, Ordering::Relaxed);
        // Epoch e ≥ 1 made build (e % 2) live (epoch 1 → v2, epoch 2 → v1, …).
        if epoch >= 1 && build == epoch % 2 {
            let mut seen = tally.seen_in_epoch.lock().unwrap();
            if let Some(flag) = seen.get_mut(epoch - 1) {
                *flag = true;
            }
        }
    }
    let mut all = tally.latencies.lock().unwrap();
    for (phase, latencies) in local.iter_mut().enumerate() {
        all[phase].append(latencies);
    }
}

fn percentiles(mut v: Vec<u32>) -> serde_json::Value {
    v.sort_unstable();
    let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    json!({ "requests": v.len(), "p50_us": at(0.5), "p99_us": at(0.99), "max_us": v.last().copied().unwrap_or(0) })
}

async fn swap_to(admin: SocketAddr, plugin: &str, path: &str, token: Option<&str>) -> Result<Duration, String> {
    let stream = TcpStream::connect(admin).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let body = json!({ "path": path }).to_string();
    let mut req = Request::post(format!("/v1/plugins/{plugin}/swap")).header("host", "admin");
    req = req.header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let status = resp.status();
    let text = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&text)));
    }
    Ok(took)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let token = std::env::var("COVET_ADMIN_TOKEN").ok();
    let tally = Arc::new(Tally::default());
    *tally.seen_in_epoch.lock().unwrap() = vec![false; args.swaps];
    let stop = Arc::new(AtomicBool::new(false));
    let path: Arc<str> = Arc::from(args.path.as_str());
    let workers: Vec<_> =
        (0..args.conns).map(|_| tokio::spawn(worker(args.target, path.clone(), stop.clone(), tally.clone()))).collect();

    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    tally.phase.store(1, Ordering::Relaxed);
    let steady_started = Instant::now();
    tokio::time::sleep(args.steady).await;
    tally.phase.store(2, Ordering::Relaxed);
    let steady_secs = steady_started.elapsed().as_secs_f64();

    let swapping_started = Instant::now();
    let mut swap_ms = Vec::with_capacity(args.swaps);
    let mut swap_errors = Vec::new();
    for i in 0..args.swaps {
        let build = &args.builds[(i + 1) % 2];
        match swap_to(args.admin, &args.plugin, build, token.as_deref()).await {
            Ok(took) => swap_ms.push(took.as_secs_f64() * 1e3),
            Err(e) => swap_errors.push(e),
        }
        tally.epoch.store(i + 1, Ordering::Release);
        tokio::time::sleep(args.gap).await;
    }
    let swapping_secs = swapping_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let [_, steady, swapping] = std::mem::take(&mut *tally.latencies.lock().unwrap());

    swap_ms.sort_by(f64::total_cmp);
    let at = |q: f64| swap_ms.get(((swap_ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    let seen = tally.seen_in_epoch.lock().unwrap().iter().filter(|s| **s).count();
    let (steady_n, swapping_n) = (steady.len() as f64, swapping.len() as f64);
    let report = json!({
        "connections": args.conns,
        "steady": { "rps": steady_n / steady_secs, "latency": percentiles(steady) },
        "swapping": { "rps": swapping_n / swapping_secs, "latency": percentiles(swapping) },
        "failures": {
            "non_200": tally.non_200.load(Ordering::Relaxed),
            "connection_errors": tally.conn_errors.load(Ordering::Relaxed),
            "bad_build_stamps": tally.bad_stamps.load(Ordering::Relaxed),
            "swap_errors": swap_errors,
        },
        "responses_by_build": { "v1": tally.by_build[0].load(Ordering::Relaxed), "v2": tally.by_build[1].load(Ordering::Relaxed) },
        "swaps": { "count": swap_ms.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": swap_ms.last().copied().unwrap_or(0.0) },
        "epochs_new_build_seen": seen,
    });
    println!("{report}");
}
