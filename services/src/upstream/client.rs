//! The connection pool of one endpoint: a hyper-util client that always
//! connects to the endpoint's address, whatever host the request URI names,
//! so the URI can carry the name TLS verifies (SNI) and HTTP/2 sends as
//! `:authority` while balancing stays ours.
//!
//! HTTP version per [`Protocol`]: `Http1` speaks HTTP/1.1 only; `Http2`
//! speaks h2c with prior knowledge on plain TCP and ALPN `h2` only over TLS;
//! `Auto` offers ALPN `h2` and `http/1.1` over TLS and HTTP/1.1 on plain TCP.
//! A request with an `upgrade` header always goes over HTTP/1.1 (ALPN
//! `http/1.1` over TLS), the only version with `101 Switching Protocols`,
//! and the connection stays upgradable: `hyper::upgrade::on` works on the
//! response [`EndpointClient::send`] returns.

use std::fmt;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::config::{Protocol, UpstreamConfig, UpstreamTls};
use crate::ServiceError;
use crate::http::{RequestBody, chain_text, error_chain};

type Connector = hyper_rustls::HttpsConnector<HttpConnector<FixedAddr>>;

/// A pooled client bound to one endpoint address (cheap to clone).
#[derive(Clone)]
pub(crate) struct EndpointClient {
    client: Client<Connector, RequestBody>,
    /// HTTP/1.1 only, for upgrade requests (the same client when `protocol` is `http1`).
    upgrades: Client<Connector, RequestBody>,
    /// `scheme://authority` of every URI sent.
    origin: Arc<str>,
    /// `origin` parsed once, so a request's URI is built from parts, not
    /// formatted and parsed whole (`None`: `origin` does not parse; each
    /// request then reports the error).
    parts: Option<(http::uri::Scheme, http::uri::Authority)>,
    addr: SocketAddr,
}

impl fmt::Debug for EndpointClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointClient").field("origin", &self.origin).field("addr", &self.addr).finish()
    }
}

/// Why an attempt failed before its response head, as retries and outlier
/// detection need to tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The TCP connection could not be made (refused, unreachable, connect timeout).
    Connect(String),
    /// The TLS handshake failed (certificate, protocol).
    Tls(String),
    /// The connection closed or was reset before the response head arrived.
    Reset(String),
    /// Any other HTTP failure (malformed response, h2 protocol error, bad request).
    Protocol(String),
}

impl SendError {
    /// The failure's description.
    pub(crate) fn message(&self) -> &str {
        match self {
            SendError::Connect(m) | SendError::Tls(m) | SendError::Reset(m) | SendError::Protocol(m) => m,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            SendError::Connect(_) => "connect",
            SendError::Tls(_) => "TLS",
            SendError::Reset(_) => "connection reset",
            SendError::Protocol(_) => "HTTP",
        };
        write!(f, "{what}: {}", self.message())
    }
}

impl EndpointClient {
    /// A client for the endpoint at `addr`, configured in the manifest as
    /// `configured_host` (an IP literal or a DNS name), with the upstream's
    /// protocol, TLS and pool settings. Fails on unreadable TLS material.
    pub(crate) fn new(
        addr: SocketAddr,
        configured_host: &str,
        config: &UpstreamConfig,
    ) -> Result<EndpointClient, ServiceError> {
        let tls = config.tls.as_ref();
        let host = tls.and_then(|t| t.sni.as_deref()).unwrap_or(configured_host);
        let origin = origin(tls.is_some(), host, addr);
        let tls_config = match tls {
            Some(t) => tls_config(t, &config.name)?,
            None => Arc::new(plain_config()?),
        };
        let client = build(addr, &tls_config, config.protocol, tls.is_some(), config);
        let upgrades = match config.protocol {
            Protocol::Http1 => client.clone(),
            Protocol::Http2 | Protocol::Auto => build(addr, &tls_config, Protocol::Http1, tls.is_some(), config),
        };
        let parts = origin.parse::<http::Uri>().ok().and_then(|uri| {
            let parts = uri.into_parts();
            Some((parts.scheme?, parts.authority?))
        });
        Ok(EndpointClient { client, upgrades, origin: Arc::from(origin), parts, addr })
    }

    /// The absolute URI a request for `path_and_query` (`/users?id=1`) is sent to.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<http::Uri, ServiceError> {
        let path = if path_and_query.is_empty() { "/" } else { path_and_query };
        if !path.starts_with('/') {
            return Err(ServiceError::Http(format!("request path '{path}' must start with '/'")));
        }
        let error = |e: &dyn fmt::Display| ServiceError::Http(format!("request path '{path}': {e}"));
        let Some((scheme, authority)) = &self.parts else {
            return format!("{}{path}", self.origin).parse().map_err(|e| error(&e));
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(scheme.clone());
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(path.parse::<http::uri::PathAndQuery>().map_err(|e| error(&e))?);
        http::Uri::from_parts(parts).map_err(|e| error(&e))
    }

    /// Sends `request` (its URI from [`EndpointClient::uri`]) over a pooled
    /// connection to the endpoint; resolves at the response head.
    pub(crate) async fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, SendError> {
        let client = if request.headers().contains_key(http::header::UPGRADE) { &self.upgrades } else { &self.client };
        client.request(request).await.map_err(|e| classify(&e))
    }
}

/// A pooled client to `addr` speaking `protocol` (see the module docs).
fn build(
    addr: SocketAddr,
    tls_config: &ClientConfig,
    protocol: Protocol,
    tls: bool,
    config: &UpstreamConfig,
) -> Client<Connector, RequestBody> {
    let mut http = HttpConnector::new_with_resolver(FixedAddr(addr));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config.clone()).https_or_http();
    let connector = match (protocol, tls) {
        (Protocol::Http1, _) | (Protocol::Auto, false) => builder.enable_http1().wrap_connector(http),
        (Protocol::Http2, _) => builder.enable_http2().wrap_connector(http),
        (Protocol::Auto, true) => builder.enable_http1().enable_http2().wrap_connector(http),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_endpoint)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new());
    if protocol == Protocol::Http2 {
        client.http2_only(true);
    }
    client.build(connector)
}

/// `scheme://host:port` with `host` the name to verify, or the address itself
/// when the configured host is an IP literal (no SNI is sent for an IP).
fn origin(tls: bool, host: &str, addr: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() {
        return format!("{scheme}://{addr}");
    }
    format!("{scheme}://{}:{}", host.to_ascii_lowercase(), addr.port())
}

/// A resolver that answers every name with the endpoint's one address.
#[derive(Clone, Copy, Debug)]
struct FixedAddr(SocketAddr);

impl tower_service::Service<Name> for FixedAddr {
    type Response = std::iter::Once<SocketAddr>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        ready(Ok(std::iter::once(self.0)))
    }
}

/// Recently built TLS configurations: loading the system roots takes
/// milliseconds, and every endpoint of an upstream (and every DNS change)
/// builds a client with the same settings.
static TLS_CONFIGS: Mutex<Vec<(UpstreamTls, Arc<ClientConfig>)>> = Mutex::new(Vec::new());
/// Most configurations kept.
const TLS_CONFIGS_KEPT: usize = 16;

/// The TLS configuration for `tls`, built once for equal settings.
fn tls_config(tls: &UpstreamTls, upstream: &str) -> Result<Arc<ClientConfig>, ServiceError> {
    let mut cache = TLS_CONFIGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, config)) = cache.iter().find(|(settings, _)| settings == tls) {
        return Ok(config.clone());
    }
    let config = Arc::new(secure_config(tls, upstream)?);
    if cache.len() == TLS_CONFIGS_KEPT {
        cache.remove(0);
    }
    cache.push((tls.clone(), config.clone()));
    Ok(config)
}

/// TLS settings for an upstream with `tls:`; verification off only when asked.
fn secure_config(tls: &UpstreamTls, upstream: &str) -> Result<ClientConfig, ServiceError> {
    let mut config = crate::http::client_config(tls.ca_pem.as_deref(), tls.client_cert.as_ref())?;
    if tls.insecure_skip_verify {
        tracing::warn!(upstream, "TLS certificate verification is OFF for this upstream (insecure_skip_verify)");
        let provider = config.crypto_provider().clone();
        config.dangerous().set_certificate_verifier(Arc::new(AcceptAnyCert(provider)));
    }
    Ok(config)
}

/// A TLS configuration that is never used (plain TCP), without loading roots.
fn plain_config() -> Result<ClientConfig, ServiceError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServiceError::Tls(e.to_string()))?;
    Ok(builder.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth())
}

/// Accepts any server certificate (`insecure_skip_verify`); handshake
/// signatures are still checked, so the session keys are the server's.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sorts a client error into a [`SendError`] by walking its causes.
fn classify(error: &hyper_util::client::legacy::Error) -> SendError {
    let text = chain_text(error);
    let chain = error_chain(error);
    if chain.iter().any(|e| e.is::<rustls::Error>()) || is_tls_text(&text) {
        return SendError::Tls(text);
    }
    if error.is_connect() {
        return SendError::Connect(text);
    }
    let reset = chain.iter().any(|e| {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            return h.is_canceled() || h.is_incomplete_message() || h.is_closed();
        }
        e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            use std::io::ErrorKind::*;
            matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
        })
    });
    if reset || is_refused_stream(&text) {
        return SendError::Reset(text);
    }
    SendError::Protocol(text)
}

/// A TLS failure seen through h2, which keeps only the text of the I/O
/// error that carried it (a TLS 1.3 server refuses a client certificate
/// after the client's handshake is done, on the first read).
fn is_tls_text(text: &str) -> bool {
    ["received fatal alert", "invalid peer certificate", "peer is incompatible", "peer misbehaved"]
        .iter()
        .any(|rustls_text| text.contains(rustls_text))
}

/// An HTTP/2 stream the server refused (`REFUSED_STREAM`) or a connection it
/// went away from (`GOAWAY`) was never processed: safe to retry, like a reset.
fn is_refused_stream(text: &str) -> bool {
    text.contains("REFUSED_STREAM") || text.contains("refused stream") || text.contains("GOAWAY")
}

#[cfg(test)]
#[path = "client_tests.rs"]
pub(crate) mod tests;
