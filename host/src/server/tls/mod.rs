//! TLS on a listener (rustls with the aws-lc-rs provider): the server
//! configuration built from the manifest's `tls:` (versions, ALPN `h2` and
//! `http/1.1`, SNI certificates, optional client certificates), the
//! handshake of each accepted connection, and certificate reload.
//!
//! The TCP and the QUIC (HTTP/3, [`super::h3`]) configurations of a listener
//! share one [`resolver::Resolver`], so a reload reaches both.

pub mod certs;
pub mod identity;
mod reload;
mod resolver;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::HeaderValue;
use rustls::{
    ServerConfig,
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
    version::{TLS12, TLS13},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
};
use tokio_rustls::TlsAcceptor;

use self::{
    identity::{ConnTls, Handshake},
    resolver::{CertSet, Resolver},
};
use super::conn;
use crate::{
    error::HostError,
    manifest::{ClientAuth, ListenSpec, TlsSettings, TlsVersion},
};

/// Installs aws-lc-rs as the process's rustls provider (once; later calls
/// are no-ops), for any code that asks rustls for the default.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A TLS listener's handshake side.
pub struct TlsEndpoint {
    acceptor: TlsAcceptor,
    alt_svc: Option<HeaderValue>,
    handshake_timeout: Duration,
}

/// The TLS configurations of one listener.
pub struct Configs {
    /// For TCP connections (ALPN h2, http/1.1).
    pub tcp: Arc<TlsEndpoint>,
    /// For QUIC (TLS 1.3, ALPN h3), when the listener has `http3: true`.
    pub quic: Option<Arc<ServerConfig>>,
}

/// Builds listener `addr`'s configurations (the real bound address: its
/// port goes into `Alt-Svc`), and starts watching its certificate files.
pub fn start(
    settings: &TlsSettings,
    addr: SocketAddr,
    http3: bool,
    handshake_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> Result<Configs, HostError> {
    let fail = |reason: String| HostError::Tls { addr, reason };
    let set = CertSet::load(settings).map_err(|p| fail(p.to_string()))?;
    let resolver = Arc::new(Resolver::new(set));
    let verifier = client_verifier(settings).map_err(fail)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.min_version {
        TlsVersion::V1_2 => &[&TLS13, &TLS12],
        TlsVersion::V1_3 => &[&TLS13],
    };
    let tcp = server_config(versions, verifier.clone(), resolver.clone(), &[b"h2", b"http/1.1"]).map_err(fail)?;
    let quic = match http3 {
        true => Some(server_config(&[&TLS13], verifier, resolver.clone(), &[b"h3"]).map_err(fail)?),
        false => None,
    };
    tokio::spawn(reload::watch(settings.clone(), resolver, stop));
    let alt_svc = http3.then(|| HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", addr.port())).ok()).flatten();
    let tcp = Arc::new(TlsEndpoint { acceptor: TlsAcceptor::from(tcp), alt_svc, handshake_timeout });
    Ok(Configs { tcp, quic })
}

fn server_config(
    versions: &[&'static rustls::SupportedProtocolVersion],
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    resolver: Arc<Resolver>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn client_verifier(settings: &TlsSettings) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let Some(ca) = &settings.client_ca else { return Ok(None) };
    let roots = certs::load_ca(ca).map_err(|p| p.to_string())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider);
    let builder = match settings.client_auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    builder.build().map(Some).map_err(|e| format!("client CA {}: {e}", ca.display()))
}

/// Completes the handshake on an accepted connection (a tokio or an
/// io_uring TCP stream; the caller sets nodelay), then serves it
/// like any other with `then` ([`conn::serve`]). A failed or too slow handshake
/// costs only this connection (logged at debug).
pub async fn serve<S, F, Fut>(
    tls: Arc<TlsEndpoint>,
    stream: S,
    peer: SocketAddr,
    ctx: conn::ConnContext,
    permit: OwnedSemaphorePermit,
    then: F,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    F: FnOnce(tokio_rustls::server::TlsStream<S>, SocketAddr, conn::ConnContext, OwnedSemaphorePermit, Option<Arc<ConnTls>>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stop = ctx.shutdown.clone();
    let handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake not finished within header_read_timeout"),
        },
        _ = super::stopped(&mut stop) => return,
    };
    let info = {
        let (_, session) = stream.get_ref();
        let hs = Handshake {
            version: session.protocol_version(),
            alpn: session.alpn_protocol(),
            sni: session.server_name(),
            peer: session.peer_certificates(),
        };
        Arc::new(ConnTls::new(hs, tls.alt_svc.clone()))
    };
    then(stream, peer, ctx, permit, Some(info)).await;
}

/// The connection context of listener `spec` bound at `addr`: for a TLS
/// listener, with its handshake side, and with HTTP/3 started on the same
/// UDP port when `http3: true`. Plain listeners get `ctx` unchanged.
pub fn listener_context(
    spec: &ListenSpec,
    addr: SocketAddr,
    ctx: &conn::ConnContext,
    connections: &Arc<Semaphore>,
) -> Result<conn::ConnContext, HostError> {
    let Some(settings) = &spec.tls else { return Ok(ctx.clone()) };
    let limits = &ctx.shared.limits;
    let configs = start(settings, addr, spec.http3, limits.header_read_timeout, ctx.shutdown.clone())?;
    let mut ctx = ctx.clone();
    ctx.tls = Some(configs.tcp);
    if let Some(quic) = configs.quic {
        super::h3::start(addr, quic, ctx.clone(), connections.clone())?;
    }
    Ok(ctx)
}
