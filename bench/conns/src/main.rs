//! Opens N HTTP/1.1 connections at once, sends one `GET` on each and reads
//! its response, then holds every connection open and idle: the accept-storm
//! and memory-per-connection half of `bench/scale.sh`.
//!
//! Usage: `covet-conns ADDR N HOLD_SECS [PATH]`. Prints one JSON line when
//! every connection has answered or failed (times in ms from the start):
//! `{"conns","answered","errors","all_connected_ms","all_answered_ms","p50_ms","p99_ms"}`,
//! then `holding` and keeps the connections for HOLD_SECS (the script reads
//! the server's RSS meanwhile).

use std::{
    io::Write,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinSet,
};

/// How long one connection may take to connect and be answered.
const DEADLINE: Duration = Duration::from_secs(30);

struct Opened {
    stream: TcpStream,
    connected: Duration,
    answered: Duration,
}

/// A socket bound to loopback source address number `i` (127.0.0.2 and up),
/// its port left to `connect` (IP_BIND_ADDRESS_NO_PORT). With one source
/// address, Linux's search for a free ephemeral port to one destination
/// grows with the ports in use: past ~10,000 connections each `connect`
/// took ~200 µs of the client's core, and the storm measured the client.
fn socket_from(i: usize) -> std::io::Result<TcpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let source = std::net::Ipv4Addr::new(127, 0, ((i / 250) % 250) as u8, (2 + i % 250) as u8);
    socket.bind(&std::net::SocketAddr::from((source, 0)).into())?;
    socket.set_nonblocking(true)?;
    Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(socket)))
}

async fn open(i: usize, addr: std::net::SocketAddr, request: std::sync::Arc<[u8]>, start: Instant) -> std::io::Result<Opened> {
    let mut stream = match addr.ip().is_loopback() && addr.is_ipv4() {
        true => socket_from(i)?.connect(addr).await?,
        false => TcpStream::connect(addr).await?,
    };
    let connected = start.elapsed();
    stream.write_all(&request).await?;
    let mut buf = [0u8; 1024];
    let mut seen = Vec::new();
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before the response"));
        }
        seen.extend_from_slice(&buf[..n]);
        if complete(&seen) {
            break;
        }
    }
    if !seen.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(String::from_utf8_lossy(&seen[..seen.len().min(40)]).into_owned()));
    }
    Ok(Opened { stream, connected, answered: start.elapsed() })
}

/// Whether `seen` holds a whole response head and its Content-Length body.
fn complete(seen: &[u8]) -> bool {
    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    seen.len() >= end + 4 + length
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(n), Some(hold)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: covet-conns ADDR N HOLD_SECS [PATH]");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N is a number");
    let hold: u64 = hold.parse().expect("HOLD_SECS is a number");
    let path = args.get(4).map_or("/", String::as_str);
    let addr: std::net::SocketAddr = addr.parse().expect("ADDR is IP:PORT");
    let request: std::sync::Arc<[u8]> = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes().into();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let request = request.clone();
        tasks.spawn(async move { tokio::time::timeout(DEADLINE, open(i, addr, request, start)).await });
    }
    let (mut held, mut errors, mut first_error) = (Vec::with_capacity(n), 0usize, None);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("no panics") {
            Ok(Ok(opened)) => held.push(opened),
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(_) => {
                errors += 1;
                first_error.get_or_insert_with(|| "timed out".to_owned());
            }
        }
    }
    let mut answered: Vec<Duration> = held.iter().map(|o| o.answered).collect();
    answered.sort();
    let all_connected = held.iter().map(|o| o.connected).max().unwrap_or_default();
    println!(
        "{{\"conns\":{n},\"answered\":{},\"errors\":{errors},\"first_error\":{:?},\"all_connected_ms\":{:.1},\"all_answered_ms\":{:.1},\"p50_ms\":{:.1},\"p99_ms\":{:.1}}}",
        held.len(),
        first_error.unwrap_or_default(),
        all_connected.as_secs_f64() * 1000.0,
        percentile(&answered, 1.0),
        percentile(&answered, 0.5),
        percentile(&answered, 0.99),
    );
    println!("holding");
    let _ = std::io::stdout().flush();
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(held.into_iter().map(|o| o.stream).collect::<Vec<_>>());
}
