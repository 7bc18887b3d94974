//! Tunnels on a TLS listener (the example gateway's front): a `wss://`
//! WebSocket over an HTTP/1.1 upgrade (ALPN `http/1.1`) and one over HTTP/2
//! extended CONNECT (ALPN `h2`), both to the plain HTTP/1.1 echo upstream of
//! `websocket.rs`. The certificates are made by the test (harness `certs`).

use std::net::SocketAddr;

use covet_e2e::{Host, certs::Ca};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream, rustls::pki_types::ServerName};
use tokio_tungstenite::tungstenite::Message;

use super::{
    assert_echo, close_cleanly,
    extended_connect::{h2_connection_over, h2_websocket},
    http1_upstream, manifest, patiently, pattern,
    websocket::echo_server,
};

/// The name covet's certificate is for.
const NAME: &str = "localhost";

/// covet with a plain listener (for readiness) and a TLS one, proxying to
/// `upstream`; the CA that issued its certificate.
async fn start_tls(upstream: Value) -> (Host, Ca) {
    let ca = Ca::new("proxy tunnels CA");
    let site = ca.server(&[NAME]);
    let mut manifest: Value = serde_json::from_str(&manifest(upstream, json!({}))).expect("manifest JSON");
    let tls = json!({ "addr": "127.0.0.1:0", "tls": { "cert": "site.pem", "key": "site.key" } });
    manifest["listen"].as_array_mut().expect("listen list").push(tls);
    let builder = Host::builder(manifest.to_string()).listeners(2);
    let host = builder.file("site.pem", site.cert_pem).file("site.key", site.key_pem).start();
    host.wait_ready().await;
    (host, ca)
}

/// A TLS connection to covet's TLS listener offering `alpn`; asserts covet
/// chose it.
async fn tls_connect(addr: SocketAddr, ca: &Ca, alpn: &[u8]) -> TlsStream<TcpStream> {
    let config = ca.client_config(&[alpn], &[&tokio_rustls::rustls::version::TLS13], None);
    let tcp = TcpStream::connect(addr).await.expect("connect to covet's TLS listener");
    let name = ServerName::try_from(NAME).unwrap();
    let tls = patiently("TLS handshake", TlsConnector::from(config).connect(name, tcp)).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn), "covet chose the offered ALPN");
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_over_an_http1_upgrade_on_the_tls_listener() {
    let (upstream, seen) = echo_server().await;
    let (host, ca) = start_tls(http1_upstream(upstream)).await;
    let tls = tls_connect(host.addrs[1], &ca, b"http/1.1").await;
    let handshake = tokio_tungstenite::client_async(format!("wss://{NAME}/secure/chat"), tls);
    let (mut ws, response) = patiently("wss handshake", handshake).await.expect("wss handshake through covet");
    assert_eq!(response.status(), 101);
    assert_echo(&mut ws, Message::text("hello over TLS")).await;
    assert_echo(&mut ws, Message::binary(pattern(1 << 20))).await;
    close_cleanly(ws).await;
    assert_eq!(seen.lock().unwrap().first().map(|(target, _)| target.as_str()), Some("/secure/chat"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_http2_extended_connect_on_the_tls_listener() {
    let (upstream, seen) = echo_server().await;
    let (host, ca) = start_tls(http1_upstream(upstream)).await;
    let tls = tls_connect(host.addrs[1], &ca, b"h2").await;
    let origin = format!("https://{NAME}");
    let mut sender = h2_connection_over(tls, &origin).await;
    let mut ws = h2_websocket(&mut sender, &origin, "/secure/h2").await;
    assert_echo(&mut ws, Message::text("hello over h2 and TLS")).await;
    assert_echo(&mut ws, Message::binary(pattern(1 << 20))).await;
    close_cleanly(ws).await;
    assert_eq!(seen.lock().unwrap().first().map(|(target, _)| target.as_str()), Some("/secure/h2"));
}
