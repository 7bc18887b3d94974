//! Load generator for `bench/soak.sh`: keep-alive HTTP/1.1 load over several
//! routes for `--duration-secs` while one plugin is swapped every
//! `--swap-ms`, rotating over the routes' plugins, each swapped between its
//! two versions through the admin API. Every `--sample-secs` it reads the
//! host's memory from `/proc/<--host-pid>/status` and prints one CSV row;
//! at the end one JSON line with the totals.
//!
//! The routes come from a JSON file (`--spec`): a list of
//! `{ "path", "plugin", "swaps": [body_v1, body_v2], "stamp": "header" | "label" }`.
//! A response counts as failed unless it is a 200 stamped `v1` or `v2`:
//! exactly one `x-plugin-build` header (`"header"`), or a JSON body whose
//! `label` is the version (`"label"`, for the WASM probe). Connection errors
//! count as failures too.
//!
//! ```text
//! soak-load --target 127.0.0.1:8080 --admin 127.0.0.1:9901 --spec routes.json \
//!   --host-pid 1234 [--duration-secs 1800] [--swap-ms 1000] [--conns 8] [--sample-secs 10]
//! ```

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

struct Args {
    target: SocketAddr,
    admin: SocketAddr,
    routes: Vec<Route>,
    host_pid: u32,
    duration: Duration,
    swap_every: Duration,
    conns: usize,
    sample_every: Duration,
}

/// One swappable route.
struct Route {
    path: String,
    plugin: String,
    /// The admin swap bodies making v1 and v2 live.
    swaps: [String; 2],
    /// Where the version stamp is: `x-plugin-build` or the JSON body's `label`.
    stamp_in_header: bool,
}

fn args() -> Args {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(key) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{key} needs a value"));
        map.insert(key.trim_start_matches("--").to_string(), value);
    }
    let get = |k: &str, default: Option<&str>| {
        map.get(k)
            .cloned()
            .or(default.map(str::to_owned))
            .unwrap_or_else(|| panic!("--{k} is required"))
    };
    let num = |k: &str, d: &str| {
        get(k, Some(d))
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("--{k}: {e}"))
    };
    let spec = std::fs::read_to_string(get("spec", None)).expect("--spec FILE readable");
    let spec: Vec<Value> = serde_json::from_str(&spec).expect("--spec: a JSON list of routes");
    let routes = spec
        .iter()
        .map(|r| Route {
            path: r["path"].as_str().expect("route path").to_owned(),
            plugin: r["plugin"].as_str().expect("route plugin").to_owned(),
            swaps: [r["swaps"][0].to_string(), r["swaps"][1].to_string()],
            stamp_in_header: r["stamp"] == "header",
        })
        .collect();
    Args {
        target: get("target", None).parse().expect("--target ADDR"),
        admin: get("admin", None).parse().expect("--admin ADDR"),
        routes,
        host_pid: num("host-pid", "0") as u32,
        duration: Duration::from_secs(num("duration-secs", "1800")),
        swap_every: Duration::from_millis(num("swap-ms", "1000")),
        conns: num("conns", "8") as usize,
        sample_every: Duration::from_secs(num("sample-secs", "10")),
    }
}

/// What the load workers saw, over the whole run.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    non_200: AtomicU64,
    conn_errors: AtomicU64,
    bad_stamps: AtomicU64,
    swaps: AtomicU64,
    swap_errors: AtomicU64,
    /// The first few failures, for the report.
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.non_200.load(Ordering::Relaxed)
            + self.conn_errors.load(Ordering::Relaxed)
            + self.bad_stamps.load(Ordering::Relaxed)
    }

    fn example(&self, what: String) {
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 10 {
            examples.push(what);
        }
    }
}

async fn connect(
    addr: SocketAddr,
) -> Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// The version a 200's stamp names, or why there is none.
fn stamp(headers: &http::HeaderMap, body: &[u8], in_header: bool) -> Result<(), String> {
    let version = if in_header {
        let stamps: Vec<_> = headers.get_all("x-plugin-build").iter().collect();
        match stamps.as_slice() {
            [one] => one.to_str().unwrap_or("").to_owned(),
            other => return Err(format!("stamps {other:?}")),
        }
    } else {
        let json: Value =
            serde_json::from_slice(body).map_err(|e| format!("body not JSON: {e}"))?;
        json["label"].as_str().unwrap_or("").to_owned()
    };
    match version.as_str() {
        "v1" | "v2" => Ok(()),
        other => Err(format!("version {other:?}")),
    }
}

async fn worker(
    addr: SocketAddr,
    path: Arc<str>,
    in_header: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut sender = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(s) = sender.as_mut() else {
            sender = connect(addr).await;
            if sender.is_none() {
                tally.conn_errors.fetch_add(1, Ordering::Relaxed);
                tally.example(format!("{path}: connect failed"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        };
        let req = Request::get(&*path)
            .header("host", "soak")
            .body(Empty::new())
            .expect("request");
        let resp = match s.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => {
                tally.conn_errors.fetch_add(1, Ordering::Relaxed);
                tally.example(format!("{path}: {e}"));
                sender = None;
                continue;
            }
        };
        let (parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                tally.conn_errors.fetch_add(1, Ordering::Relaxed);
                tally.example(format!("{path}: body: {e}"));
                sender = None;
                continue;
            }
        };
        if parts.status != 200 {
            tally.non_200.fetch_add(1, Ordering::Relaxed);
            tally.example(format!(
                "{path}: {} {}",
                parts.status,
                String::from_utf8_lossy(&body)
            ));
        } else if let Err(e) = stamp(&parts.headers, &body, in_header) {
            tally.bad_stamps.fetch_add(1, Ordering::Relaxed);
            tally.example(format!("{path}: {e}"));
        } else {
            tally.ok.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn swap(
    admin: SocketAddr,
    plugin: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(), String> {
    let stream = TcpStream::connect(admin).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::post(format!("/v1/plugins/{plugin}/swap")).header("host", "admin");
    req = req.header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        return Err(format!(
            "{plugin}: {status}: {}",
            String::from_utf8_lossy(&text)
        ));
    }
    Ok(())
}

/// Swaps one plugin per tick, rotating over the routes; each route
/// alternates v2, v1, v2, … (the host starts on v1).
async fn swapper(args: Arc<Args>, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let token = std::env::var("COVET_ADMIN_TOKEN").ok();
    let mut tick = tokio::time::interval(args.swap_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let route = &args.routes[n % args.routes.len()];
        let round = n / args.routes.len();
        let body = &route.swaps[(round + 1) % 2];
        match swap(args.admin, &route.plugin, body, token.as_deref()).await {
            Ok(()) => tally.swaps.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tally.example(format!("swap {e}"));
                tally.swap_errors.fetch_add(1, Ordering::Relaxed)
            }
        };
        n += 1;
    }
}

/// `VmRSS`, `RssAnon`, `RssFile` (KiB) and `Threads` of the host.
fn memory(pid: u32) -> [u64; 4] {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    [
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:"),
        field("Threads:"),
    ]
}

fn sample(args: &Args, tally: &Tally, started: Instant) {
    let [rss, anon, file, threads] = memory(args.host_pid);
    println!(
        "{:.0},{rss},{anon},{file},{threads},{},{},{},{}",
        started.elapsed().as_secs_f64(),
        tally.swaps.load(Ordering::Relaxed),
        tally.ok.load(Ordering::Relaxed) + tally.failures(),
        tally.failures(),
        tally.swap_errors.load(Ordering::Relaxed),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Arc::new(args());
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    println!("t_s,rss_kib,rss_anon_kib,rss_file_kib,threads,swaps,requests,failures,swap_errors");
    let started = Instant::now();
    sample(&args, &tally, started);
    let mut workers = Vec::new();
    for route in &args.routes {
        let path: Arc<str> = Arc::from(route.path.as_str());
        for _ in 0..args.conns {
            let w = worker(
                args.target,
                path.clone(),
                route.stamp_in_header,
                stop.clone(),
                tally.clone(),
            );
            workers.push(tokio::spawn(w));
        }
    }
    let swapper = tokio::spawn(swapper(args.clone(), stop.clone(), tally.clone()));
    let mut tick = tokio::time::interval(args.sample_every);
    tick.tick().await;
    while started.elapsed() < args.duration {
        tick.tick().await;
        sample(&args, &tally, started);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = swapper.await;
    for w in workers {
        let _ = w.await;
    }
    sample(&args, &tally, started);
    let report = json!({
        "seconds": started.elapsed().as_secs_f64(),
        "connections_per_route": args.conns,
        "routes": args.routes.iter().map(|r| r.path.clone()).collect::<Vec<_>>(),
        "requests_ok": tally.ok.load(Ordering::Relaxed),
        "non_200": tally.non_200.load(Ordering::Relaxed),
        "connection_errors": tally.conn_errors.load(Ordering::Relaxed),
        "bad_stamps": tally.bad_stamps.load(Ordering::Relaxed),
        "swaps": tally.swaps.load(Ordering::Relaxed),
        "swap_errors": tally.swap_errors.load(Ordering::Relaxed),
        "failure_examples": *tally.examples.lock().unwrap(),
    });
    println!("# {report}");
}
