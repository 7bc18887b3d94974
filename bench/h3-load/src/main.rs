//! Load generator for `bench/tls.sh`.
//!
//! ```text
//! h3-load certs DIR                                  # DIR/ca.pem, DIR/site.pem, DIR/site.key (rcgen)
//! h3-load h3 ADDR PATH SECONDS CONNS STREAMS CA      # HTTP/3 GETs: CONNS QUIC connections × STREAMS loops
//! h3-load handshakes ADDR PATH SECONDS TASKS CA      # new TLS 1.3 connection + one HTTP/1.1 GET, repeated
//! ```
//!
//! Load modes print one JSON line: `requests`, `errors`, `rps`, `p50_us`, `p99_us`.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use rustls::{ClientConfig, RootCertStore, pki_types::{CertificateDer, ServerName, pem::PemObject}};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What one load task measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(|| format!("missing argument {i}; see the usage in the source"));
    match args.first().map(String::as_str) {
        Some("certs") => certs(&arg(1)?),
        Some("h3") => run(|rt| rt.block_on(h3_load(arg(1)?.parse()?, arg(2)?, secs(&arg(3)?)?, arg(4)?.parse()?, arg(5)?.parse()?, &arg(6)?))),
        Some("handshakes") => run(|rt| rt.block_on(handshakes(arg(1)?.parse()?, arg(2)?, secs(&arg(3)?)?, arg(4)?.parse()?, &arg(5)?))),
        _ => Err("usage: h3-load certs DIR | h3 ADDR PATH SECONDS CONNS STREAMS CA | handshakes ADDR PATH SECONDS TASKS CA".into()),
    }
}

fn secs(text: &str) -> Result<Duration, Error> {
    Ok(Duration::from_secs(text.parse()?))
}

/// Runs on one thread (the bench pins this process to one CPU).
fn run(f: impl FnOnce(&tokio::runtime::Runtime) -> Result<Vec<Tally>, Error>) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let tallies = f(&rt)?;
    report(tallies, started.elapsed());
    Ok(())
}

fn report(tallies: Vec<Tally>, elapsed: Duration) {
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let mut all: Vec<u32> = tallies.into_iter().flat_map(|t| t.latencies_us).collect();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    let line = serde_json::json!({
        "requests": all.len(),
        "errors": errors,
        "rps": all.len() as f64 / elapsed.as_secs_f64(),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
    });
    println!("{line}");
}

fn certs(dir: &str) -> Result<(), Error> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let site = CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &ca)?;
    std::fs::write(format!("{dir}/ca.pem"), ca.pem())?;
    std::fs::write(format!("{dir}/site.pem"), site.pem())?;
    std::fs::write(format!("{dir}/site.key"), key.serialize_pem())?;
    Ok(())
}

fn client_config(ca: &str, alpn: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

async fn h3_load(addr: SocketAddr, path: String, length: Duration, conns: usize, streams: usize, ca: &str) -> Result<Vec<Tally>, Error> {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(client_config(ca, b"h3")?)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let deadline = Instant::now() + length;
    let uri: http::Uri = format!("https://localhost:{}{path}", addr.port()).parse()?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let conn = endpoint.connect(addr, "localhost")?.await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        tokio::spawn(async move { driver.wait_idle().await });
        for _ in 0..streams {
            let (send, uri) = (send.clone(), uri.clone());
            tasks.spawn(h3_loop(send, uri, deadline));
        }
    }
    Ok(tasks.join_all().await)
}

async fn h3_loop(mut send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>, uri: http::Uri, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        match h3_get(&mut send, &uri).await {
            Ok(()) => tally.latencies_us.push(started.elapsed().as_micros() as u32),
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

async fn h3_get(send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>, uri: &http::Uri) -> Result<(), Error> {
    let mut stream = send.send_request(http::Request::get(uri.clone()).body(())?).await?;
    stream.finish().await?;
    let resp = stream.recv_response().await?;
    while let Some(mut chunk) = stream.recv_data().await? {
        chunk.advance(chunk.remaining());
    }
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()).into());
    }
    Ok(())
}

async fn handshakes(addr: SocketAddr, path: String, length: Duration, tasks: usize, ca: &str) -> Result<Vec<Tally>, Error> {
    let connector = tokio_rustls::TlsConnector::from(client_config(ca, b"http/1.1")?);
    let deadline = Instant::now() + length;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (connector, path) = (connector.clone(), path.clone());
        set.spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                match one_connection(&connector, addr, &path).await {
                    Ok(()) => tally.latencies_us.push(started.elapsed().as_micros() as u32),
                    Err(_) => tally.errors += 1,
                }
            }
            tally
        });
    }
    Ok(set.join_all().await)
}

/// TCP connect, full TLS 1.3 handshake (no resumption), one GET, close.
async fn one_connection(connector: &tokio_rustls::TlsConnector, addr: SocketAddr, path: &str) -> Result<(), Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    let driver = tokio::spawn(conn);
    let req = http::Request::get(path).header("host", "localhost").header("connection", "close").body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    drop(sender);
    let _ = driver.await;
    if !status.is_success() {
        return Err(format!("status {status}").into());
    }
    Ok(())
}
