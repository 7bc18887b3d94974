//! One hello-world HTTP/1.1 server on four runtimes, to decide which io_uring
//! runtime covet's `io: uring` backend should sit on (docs/io.md,
//! "Alternatives measured"). Every variant: one thread (pin it with taskset),
//! hyper 1's HTTP/1.1 server connection (keep-alive), `TCP_NODELAY`, and the
//! same response as `bench/hello-hyper` (200, `content-type: text/plain;
//! charset=utf-8`, `content-length: 13`).
//!
//! Usage: `uring-alt RUNTIME [ADDR]` (ADDR defaults to 127.0.0.1:0), RUNTIME one of
//! - `tokio-epoll`   tokio current_thread, `TokioIo<TcpStream>` (the baseline);
//! - `tokio-uring`   tokio-uring 0.5 through covet's adapter `UringStream`
//!   (its source, host/src/server/uring/stream.rs, compiled in via #[path]);
//! - `monoio-poll`   monoio io_uring driver, stream `into_poll_io()` +
//!   `monoio_compat::hyper::MonoioIo` (io_uring poll-add readiness, then
//!   plain read/write syscalls: the path monoio's own hyper example uses);
//! - `monoio-rent`   monoio io_uring driver, owned-buffer (completion) I/O via
//!   `monoio_compat::StreamWrapper` + `TokioIo` (the same shape as covet's adapter);
//! - `compio`        compio io_uring driver, `cyper_core::HyperStream`.
//!
//! Prints `listening on http://ADDR` once bound.

use std::{convert::Infallible, io::Write, net::SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};

#[path = "../../../host/src/server/uring/stream.rs"]
#[allow(dead_code, unsafe_op_in_unsafe_fn)]
mod covet_uring_stream;

/// 13 bytes, like the brief asks (hello-hyper answers "hello").
const BODY: &[u8] = b"Hello, World!";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert("content-type", "text/plain; charset=utf-8".parse().expect("static"));
    Ok(resp)
}

fn announce(addr: SocketAddr) {
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
}

fn tokio_epoll(addr: SocketAddr) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        announce(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
            });
        }
    })
}

fn tokio_uring(addr: SocketAddr) -> std::io::Result<()> {
    let mut builder = tokio_uring::builder();
    builder.entries(1024); // covet's RING_ENTRIES
    tokio_uring::Runtime::new(&builder)?.block_on(async move {
        let listener = tokio_uring::net::TcpListener::bind(addr)?;
        announce(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let stream = covet_uring_stream::UringStream::new(stream);
            tokio_uring::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
            });
        }
    })
}

fn monoio_rt() -> std::io::Result<monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>>> {
    monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().with_entries(1024).enable_timer().build()
}

fn monoio_poll(addr: SocketAddr) -> std::io::Result<()> {
    monoio_rt()?.block_on(async move {
        let listener = monoio::net::TcpListener::bind(addr)?;
        announce(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let stream = monoio::io::IntoPollIo::into_poll_io(stream)?;
            monoio::spawn(async move {
                let io = monoio_compat::hyper::MonoioIo::new(stream);
                let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
            });
        }
    })
}

fn monoio_rent(addr: SocketAddr) -> std::io::Result<()> {
    monoio_rt()?.block_on(async move {
        let listener = monoio::net::TcpListener::bind(addr)?;
        announce(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            monoio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(monoio_compat::StreamWrapper::new(stream));
                let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
            });
        }
    })
}

fn compio(addr: SocketAddr) -> std::io::Result<()> {
    compio::runtime::RuntimeBuilder::new().build()?.block_on(async move {
        let listener = compio::net::TcpListener::bind(addr).await?;
        announce(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            compio::runtime::spawn(async move {
                let io = cyper_core::HyperStream::new_plain(stream);
                let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
            })
            .detach();
        }
    })
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let runtime = args.next().unwrap_or_default();
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    match runtime.as_str() {
        "tokio-epoll" => tokio_epoll(addr),
        "tokio-uring" => tokio_uring(addr),
        "monoio-poll" => monoio_poll(addr),
        "monoio-rent" => monoio_rent(addr),
        "compio" => compio(addr),
        other => {
            eprintln!("usage: uring-alt tokio-epoll|tokio-uring|monoio-poll|monoio-rent|compio [ADDR] (got {other:?})");
            std::process::exit(2)
        }
    }
}
