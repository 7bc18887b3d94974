//! CPU per outbound HTTP call, two ways, against the same local server:
//! `direct` (hyper-util's pooled client, plain HTTP, what a plugin with its
//! own client would do) and `service` (covet-services' `Outbound`, the host
//! service every plugin kind calls: policy check, timeouts, metrics, the
//! streaming body wrapper). Run by `bench/outbound.sh`, which pins the
//! server and the client to different CPUs.
//!
//! ```text
//! outbound-bench server                 # prints the bound address, serves "hello"
//! outbound-bench direct  URL CALLS CONC # prints calls, cpu_us_per_call, wall_s
//! outbound-bench service URL CALLS CONC
//! ```

use std::{convert::Infallible, sync::Arc, time::Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    match args.first().map(String::as_str) {
        Some("server") => rt.block_on(server()),
        Some(mode @ ("direct" | "service")) if args.len() == 4 => {
            let (url, calls, conc) = (args[1].clone(), parse(&args[2]), parse(&args[3]));
            rt.block_on(client(mode, url, calls, conc));
        }
        _ => {
            eprintln!("usage: outbound-bench server | (direct|service) URL CALLS CONC");
            std::process::exit(2);
        }
    }
}

fn parse(s: &str) -> usize {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s}"))
}

async fn server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Makes `calls` requests with `conc` in flight; prints CPU µs per call.
async fn client(mode: &str, url: String, calls: usize, conc: usize) {
    let caller = Arc::new(Caller::new(mode, &url));
    // Warm up: connections made, allocator and code paths hot.
    run(&caller, &url, calls / 10 + conc, conc).await;
    let (cpu0, wall0) = (cpu_micros(), Instant::now());
    run(&caller, &url, calls, conc).await;
    let (cpu, wall) = (cpu_micros() - cpu0, wall0.elapsed().as_secs_f64());
    println!("mode={mode} calls={calls} cpu_us_per_call={:.2} wall_s={wall:.3}", cpu as f64 / calls as f64);
}

async fn run(caller: &Arc<Caller>, url: &str, calls: usize, conc: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..conc {
        let (caller, url) = (caller.clone(), url.to_string());
        let share = calls / conc + usize::from(worker < calls % conc);
        tasks.spawn(async move {
            for _ in 0..share {
                let body = caller.call(&url).await;
                assert_eq!(&body[..], b"hello", "unexpected body");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a caller task failed");
    }
}

enum Caller {
    Direct(Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>),
    Service(covet_services::http::Outbound),
}

impl Caller {
    fn new(mode: &str, url: &str) -> Caller {
        if mode == "direct" {
            return Caller::Direct(Client::builder(TokioExecutor::new()).build_http());
        }
        let uri: http::Uri = url.parse().expect("url");
        let authority = uri.authority().expect("host").as_str().to_string();
        let policy = covet_services::http::OutboundPolicy::new([authority]).expect("policy");
        let client = covet_services::http::HttpClient::new(Default::default()).expect("client");
        Caller::Service(client.for_plugin("bench", policy))
    }

    async fn call(&self, url: &str) -> Bytes {
        match self {
            Caller::Direct(client) => {
                let resp = client.get(url.parse().expect("url")).await.expect("request");
                resp.into_body().collect().await.expect("body").to_bytes()
            }
            Caller::Service(outbound) => {
                let req = Request::get(url).body(covet_services::http::empty()).expect("request");
                let resp = outbound.send(req, None).await.expect("request");
                resp.into_body().collect().await.expect("body").to_bytes()
            }
        }
    }
}

/// User + system CPU time of this process, in microseconds.
fn cpu_micros() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    micros(usage.ru_utime) + micros(usage.ru_stime)
}
