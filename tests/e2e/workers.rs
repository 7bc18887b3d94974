//! Thread per core on both I/O backends (docs/io.md): `workers:` sets the
//! worker threads, each with its own SO_REUSEPORT listener per address
//! listening with `limits.listen_backlog`; an accept storm (connections
//! opened all at once, each with a request) is answered in full. Runs on
//! epoll, and on io_uring in the suite's `COVET_IO=uring` pass.

use std::{process::Command, time::Duration};

use covet_e2e::{Host, Manifest, Route};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinSet,
};

use crate::common::labelled;

/// Connections the storm opens at once (the test process shares its fd
/// limit with the tests running beside it).
const STORM: usize = 2_000;

fn echo(workers: usize, backlog: u32) -> String {
    let manifest = Manifest::new()
        .limit("listen_backlog", &backlog.to_string())
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/echo").handler("echo"));
    format!("{}\nworkers: {workers}\n", String::from(manifest))
}

/// The listening sockets on `port` and each one's backlog, from `ss`
/// (for a listener, Send-Q is the backlog it was given).
fn listen_backlogs(port: u16) -> Vec<u32> {
    let out = Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output().expect("ss (iproute2) runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2)?.parse().ok())
        .collect()
}

/// Sends one GET on a new connection and reads the answer's status line;
/// keeps the connection open (returned) so the storm stays open at once.
async fn one_request(addr: std::net::SocketAddr) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.write_all(b"GET /echo HTTP/1.1\r\nhost: storm\r\n\r\n").await.map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&head)));
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&head[..head.len().min(40)])));
    }
    Ok(stream)
}

#[tokio::test]
async fn each_worker_has_its_own_listener_with_the_configured_backlog() {
    let host = Host::builder(echo(3, 777)).start();
    host.wait_ready().await;
    let line = host.log_line(&["io backend: "]).await.unwrap_or_default();
    assert!(line.contains("(3 threads)"), "backend line {line:?}; logs:\n{}", host.logs());
    assert_eq!(listen_backlogs(host.addr().port()), vec![777, 777, 777]);
    assert_eq!(host.http1().get("/echo").await.unwrap().status, 200);
}

#[tokio::test]
async fn an_accept_storm_is_answered_in_full_with_no_error() {
    let host = Host::builder(echo(2, 4096)).start();
    host.wait_ready().await;
    let addr = host.addr();
    let mut storm = JoinSet::new();
    for _ in 0..STORM {
        storm.spawn(tokio::time::timeout(Duration::from_secs(30), one_request(addr)));
    }
    let (mut held, mut errors) = (Vec::with_capacity(STORM), Vec::new());
    while let Some(joined) = storm.join_next().await {
        match joined.expect("no panic") {
            Ok(Ok(stream)) => held.push(stream),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("no answer within 30 s".to_owned()),
        }
    }
    assert!(errors.is_empty(), "{} of {STORM} failed, e.g. {:?}", errors.len(), &errors[..errors.len().min(3)]);
    assert_eq!(held.len(), STORM);
    // Every one of them is still a live keep-alive connection.
    let mut first = held.swap_remove(0);
    first.write_all(b"GET /echo HTTP/1.1\r\nhost: storm\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}

#[test]
fn workers_zero_is_refused_at_its_line() {
    let exited = Host::builder(echo(0, 128)).check(crate::common::PATIENCE);
    assert_eq!(exited.status.code(), Some(2), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("key: workers") && exited.stderr.contains("above 0"), "stderr:\n{}", exited.stderr);
}
