//! Tests of the endpoint client against real hyper servers on 127.0.0.1:0
//! (plain, h2c, TLS with a test CA).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{EndpointClient, SendError};
use crate::http::ClientCert;
use crate::upstream::{EndpointSpec, Protocol, UpstreamConfig, UpstreamTls};

/// What the test servers answer with.
pub(crate) type ServerBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body of one buffer for a test server.
pub(crate) fn text(body: impl Into<Bytes>) -> ServerBody {
    Full::new(body.into()).boxed_unsync()
}

/// Serves `handler` on 127.0.0.1:0 (HTTP/1.1 with upgrades, h2c, or TLS
/// with ALPN when `tls` is given) until the test ends.
pub(crate) async fn serve<H, F>(tls: Option<tokio_rustls::TlsAcceptor>, handler: H) -> SocketAddr
where
    H: Fn(http::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<ServerBody>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (tls, handler) = (tls.clone(), handler.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = handler(req);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = match tls {
                    None => builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(tcp).await else { return };
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await
                    }
                };
            });
        }
    });
    addr
}

/// Answers `<version> <host header>` (the URI authority for HTTP/2).
async fn whoami(request: http::Request<Incoming>) -> http::Response<ServerBody> {
    let host = request.headers().get("host").and_then(|h| h.to_str().ok()).map(str::to_owned);
    let host = host.or_else(|| request.uri().authority().map(|a| a.to_string())).unwrap_or_default();
    http::Response::new(text(format!("{:?} {host}", request.version())))
}

/// A test CA; acceptors with a server certificate for `localhost` and
/// 127.0.0.1 (one also requiring a client certificate from the CA); a client
/// certificate the CA issued.
pub(crate) struct Certs {
    pub(crate) ca_pem: String,
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) mtls_acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) client: ClientCert,
}

pub(crate) fn certs() -> Certs {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "upstream test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
    let issue = |names: &[&str], usage: ExtendedKeyUsagePurpose| {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("cert");
        ClientCert { cert_pem: cert.pem().into_bytes(), key_pem: key.serialize_pem().into_bytes() }
    };
    let server = issue(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let client = issue(&["covet"], ExtendedKeyUsagePurpose::ClientAuth);
    let ca_pem = issuer.pem();
    let acceptor = acceptor(&server, None);
    let mtls_acceptor = acceptor_with_roots(&server, &ca_pem);
    Certs { ca_pem, acceptor, mtls_acceptor, client }
}

fn acceptor_with_roots(server: &ClientCert, ca_pem: &str) -> tokio_rustls::TlsAcceptor {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA pem")).expect("root");
    acceptor(server, Some(roots))
}

/// A TLS acceptor offering h2 and http/1.1; with `client_roots`, it requires a client certificate from them.
fn acceptor(server: &ClientCert, client_roots: Option<rustls::RootCertStore>) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions().expect("versions");
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = vec![CertificateDer::from_pem_slice(&server.cert_pem).expect("cert pem")];
    let key = PrivateKeyDer::from_pem_slice(&server.key_pem).expect("key pem");
    let mut config = builder.with_single_cert(chain, key).expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An upstream config for tests.
pub(crate) fn config(protocol: Protocol, tls: Option<UpstreamTls>) -> UpstreamConfig {
    let spec = EndpointSpec { host: "127.0.0.1".to_owned(), port: 1, weight: 1 };
    UpstreamConfig { protocol, tls, ..UpstreamConfig::new("test", vec![spec]) }
}

pub(crate) fn tls(ca_pem: Option<&str>, sni: Option<&str>, insecure: bool) -> Option<UpstreamTls> {
    let ca_pem = ca_pem.map(|p| p.as_bytes().to_vec());
    Some(UpstreamTls { sni: sni.map(str::to_owned), ca_pem, client_cert: None, insecure_skip_verify: insecure })
}

/// `GET path` through `client`; the response body as text.
pub(crate) async fn get(client: &EndpointClient, path: &str) -> Result<String, SendError> {
    let request = http::Request::get(client.uri(path).expect("uri")).body(crate::http::empty()).expect("request");
    let response = client.send(request).await?;
    let body = response.into_body().collect().await.expect("body").to_bytes();
    Ok(String::from_utf8(body.to_vec()).expect("utf-8"))
}

#[tokio::test]
async fn any_host_name_reaches_the_endpoint_address() {
    let addr = serve(None, whoami).await;
    let client = EndpointClient::new(addr, "users.invalid", &config(Protocol::Http1, None)).expect("client");
    assert_eq!(client.uri("/a?b=1").expect("uri").to_string(), format!("http://users.invalid:{}/a?b=1", addr.port()));
    let answer = get(&client, "/a?b=1").await.expect("sent to the fixed address, no DNS");
    assert_eq!(answer, format!("HTTP/1.1 users.invalid:{}", addr.port()));
}

#[tokio::test]
async fn an_ip_literal_host_is_the_address() {
    let addr = serve(None, whoami).await;
    let client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Auto, None)).expect("client");
    assert_eq!(client.uri("/").expect("uri").to_string(), format!("http://{addr}/"));
    assert_eq!(get(&client, "/").await.expect("sent"), format!("HTTP/1.1 {addr}"));
    assert!(client.uri("no-slash").is_err());
}

#[tokio::test]
async fn http2_on_plain_tcp_is_h2c_prior_knowledge() {
    let addr = serve(None, whoami).await;
    let client = EndpointClient::new(addr, "grpc.internal", &config(Protocol::Http2, None)).expect("client");
    let answer = get(&client, "/").await.expect("sent");
    assert_eq!(answer, format!("HTTP/2.0 grpc.internal:{}", addr.port()));
}

#[tokio::test]
async fn tls_with_a_custom_ca_negotiates_the_configured_protocol() {
    let certs = certs();
    let addr = serve(Some(certs.acceptor.clone()), whoami).await;
    let cases = [(Protocol::Auto, "HTTP/2.0"), (Protocol::Http2, "HTTP/2.0"), (Protocol::Http1, "HTTP/1.1")];
    for (protocol, version) in cases {
        let config = config(protocol, tls(Some(&certs.ca_pem), None, false));
        let client = EndpointClient::new(addr, "localhost", &config).expect("client");
        assert!(client.uri("/").expect("uri").to_string().starts_with("https://localhost:"));
        let answer = get(&client, "/").await.expect("TLS with the test CA");
        assert!(answer.starts_with(version), "{protocol:?}: {answer}");
    }
}

#[tokio::test]
async fn the_sni_name_is_verified() {
    let certs = certs();
    let addr = serve(Some(certs.acceptor.clone()), whoami).await;
    let good = EndpointClient::new(
        addr,
        "10.9.9.9",
        &config(Protocol::Auto, tls(Some(&certs.ca_pem), Some("localhost"), false)),
    );
    let answer = get(&good.expect("client"), "/").await.expect("the certificate names localhost");
    assert!(answer.ends_with(&format!("localhost:{}", addr.port())), "{answer}");
    let wrong = EndpointClient::new(addr, "other.test", &config(Protocol::Auto, tls(Some(&certs.ca_pem), None, false)));
    let error = get(&wrong.expect("client"), "/").await.expect_err("the certificate does not name other.test");
    assert!(matches!(error, SendError::Tls(_)), "{error}");
}

#[tokio::test]
async fn verification_is_on_unless_skipped() {
    let certs = certs();
    let addr = serve(Some(certs.acceptor.clone()), whoami).await;
    let strict =
        EndpointClient::new(addr, "localhost", &config(Protocol::Http1, tls(None, None, false))).expect("client");
    let error = get(&strict, "/").await.expect_err("an unknown CA");
    assert!(matches!(error, SendError::Tls(_)), "{error}");
    let skip =
        EndpointClient::new(addr, "other.test", &config(Protocol::Http1, tls(None, None, true))).expect("client");
    assert!(get(&skip, "/").await.expect("verification skipped").starts_with("HTTP/1.1"));
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let certs = certs();
    let addr = serve(Some(certs.mtls_acceptor.clone()), whoami).await;
    let without =
        EndpointClient::new(addr, "localhost", &config(Protocol::Auto, tls(Some(&certs.ca_pem), None, false)));
    let error = get(&without.expect("client"), "/").await.expect_err("the server requires a client certificate");
    assert!(matches!(error, SendError::Tls(_)), "{error}");
    let mut settings = tls(Some(&certs.ca_pem), None, false).expect("tls");
    settings.client_cert = Some(certs.client.clone());
    let with = EndpointClient::new(addr, "localhost", &config(Protocol::Auto, Some(settings))).expect("client");
    assert!(get(&with, "/").await.expect("mTLS").starts_with("HTTP/2.0"));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Http1, None)).expect("client");
    let error = get(&client, "/").await.expect_err("nothing listens");
    assert!(matches!(error, SendError::Connect(_)), "{error}");
}

#[tokio::test]
async fn a_connection_closed_before_the_head_is_a_reset() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            drop(tcp);
        }
    });
    let client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Http1, None)).expect("client");
    let error = get(&client, "/").await.expect_err("closed without an answer");
    assert!(matches!(error, SendError::Reset(_)), "{error}");
}

#[tokio::test]
async fn a_malformed_answer_is_a_protocol_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
        }
    });
    let client = EndpointClient::new(addr, "127.0.0.1", &config(Protocol::Http1, None)).expect("client");
    let error = get(&client, "/").await.expect_err("garbage");
    assert!(matches!(error, SendError::Protocol(_)), "{error}");
}

#[test]
fn endpoints_of_one_upstream_share_the_tls_configuration() {
    let tls = tls(None, Some("shared.test"), false).expect("tls");
    let first = super::tls_config(&tls, "a").expect("built");
    let second = super::tls_config(&tls, "b").expect("cached");
    assert!(std::sync::Arc::ptr_eq(&first, &second), "loaded once, not per endpoint");
}
