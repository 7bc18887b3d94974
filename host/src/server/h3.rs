//! HTTP/3 on a TLS listener with `http3: true`: a quinn endpoint on the same
//! UDP port, h3 on each QUIC connection, and every request through the same
//! [`service::serve`] (limits, routes, plugin chain) as HTTP/1 and HTTP/2.
//!
//! The request body is read up to `limits.max_body` (one byte more lets the
//! service answer 413) and handed over as one buffer; the response body is
//! sent frame by frame. Every QUIC connection holds a connection permit, so
//! `limits.max_connections` and the shutdown drain cover HTTP/3 too. On
//! shutdown each connection sends GOAWAY, finishes its requests in flight
//! and closes; a connection that cannot get a permit is refused.

use std::{net::SocketAddr, sync::Arc};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use rustls::pki_types::CertificateDer;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};

use super::{
    conn::ConnContext,
    stopped,
    tls::identity::{ConnTls, Handshake},
    watchdog::ConnState,
};
use crate::{
    error::HostError,
    exchange::client_string,
    service::{self, ConnInfo, Shared},
};

/// How long a finished connection waits for the peer to read the last
/// responses and close before the host closes it.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// HTTP/3 `H3_NO_ERROR`: the code a connection closes with after shutdown.
const H3_NO_ERROR: u32 = 0x100;

type Stream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Binds UDP `addr` (the TLS listener's address) and serves HTTP/3 on it.
pub fn start(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    ctx: ConnContext,
    connections: Arc<Semaphore>,
) -> Result<(), HostError> {
    let fail = |reason: String| HostError::Tls { addr, reason };
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| fail(format!("QUIC: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let limits = &ctx.shared.limits;
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(limits.idle_timeout.try_into().ok());
    transport.max_concurrent_bidi_streams(limits.h2_max_concurrent_streams.into());
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(config, addr).map_err(|source| HostError::Bind { addr, source })?;
    println!("listening on h3://{}", endpoint.local_addr()?);
    std::io::Write::flush(&mut std::io::stdout())?;
    tokio::spawn(accept_loop(endpoint, ctx, connections));
    Ok(())
}

async fn accept_loop(endpoint: quinn::Endpoint, ctx: ConnContext, connections: Arc<Semaphore>) {
    let mut stop = ctx.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming { Some(i) => i, None => return },
            _ = stopped(&mut stop) => break,
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(serve_connection(incoming, ctx.clone(), permit));
            }
            Err(_) => incoming.refuse(),
        }
    }
    // No new connections; the open ones finish on their own.
    endpoint.set_server_config(None);
}

async fn serve_connection(incoming: quinn::Incoming, ctx: ConnContext, permit: OwnedSemaphorePermit) {
    let _permit = permit;
    let peer = incoming.remote_address();
    let quic = match incoming.await {
        Ok(conn) => conn,
        Err(e) => return tracing::debug!(%peer, "QUIC handshake failed: {e}"),
    };
    let info = Arc::new(ConnInfo { client: client_string(peer), state: Arc::new(ConnState::default()), tls: Some(identity(&quic)), permit: None, home: None });
    let limits = &ctx.shared.limits;
    let built = h3::server::builder()
        .max_field_section_size(limits.max_header_bytes.saturating_mul(2) as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(quic.clone()))
        .await;
    let mut h3 = match built {
        Ok(h3) => h3,
        Err(e) => return tracing::debug!(%peer, "HTTP/3 connection set-up failed: {e}"),
    };
    let mut requests = JoinSet::new();
    let mut stop = ctx.shutdown.clone();
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(handle(resolver, ctx.shared.clone(), info.clone()));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, "HTTP/3 connection ended: {e}");
                    break;
                }
            },
            _ = stopped(&mut stop) => {
                // GOAWAY: requests accepted so far are served, later ones refused.
                let _ = h3.shutdown(1).await;
                break;
            }
        }
    }
    while requests.join_next().await.is_some() {}
    // `finish()` only queues a response's last bytes, and closing discards
    // what is unsent: give the peer a moment to read them and close first.
    let _ = tokio::time::timeout(CLOSE_GRACE, quic.closed()).await;
    quic.close(H3_NO_ERROR.into(), b"");
}

/// The connection's TLS facts, from quinn's handshake data.
fn identity(quic: &quinn::Connection) -> Arc<ConnTls> {
    let data = quic.handshake_data().and_then(|d| d.downcast::<HandshakeData>().ok());
    let peer = quic.peer_identity().and_then(|p| p.downcast::<Vec<CertificateDer<'static>>>().ok());
    let hs = Handshake {
        version: Some(rustls::ProtocolVersion::TLSv1_3),
        alpn: data.as_ref().and_then(|d| d.protocol.as_deref()),
        sni: data.as_ref().and_then(|d| d.server_name.as_deref()),
        peer: peer.as_deref().map(Vec::as_slice),
    };
    Arc::new(ConnTls::new(hs, None))
}

async fn handle(resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>, shared: Arc<Shared>, info: Arc<ConnInfo>) {
    let (req, mut stream) = match resolver.resolve_request().await {
        Ok(pair) => pair,
        Err(e) => return tracing::debug!(client = %info.client, "HTTP/3 request refused: {e}"),
    };
    let body = match read_body(&mut stream, shared.limits.max_body).await {
        Ok(body) => body,
        Err(e) => return tracing::debug!(client = %info.client, "HTTP/3 request body not received: {e}"),
    };
    let req: Request<Full<Bytes>> = req.map(|()| Full::new(body));
    let Ok(resp) = service::serve(shared, info.clone(), req).await;
    if let Err(e) = respond(&mut stream, resp).await {
        tracing::debug!(client = %info.client, "HTTP/3 response not sent: {e}");
    }
}

/// The request body, at most `max + 1` bytes (more is never read: the
/// service answers 413 for anything over `max`).
async fn read_body(stream: &mut Stream, max: u64) -> Result<Bytes, h3::error::StreamError> {
    let cap = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    let mut body = BytesMut::new();
    while body.len() < cap {
        let Some(mut chunk) = stream.recv_data().await? else { break };
        while chunk.has_remaining() && body.len() < cap {
            let take = chunk.chunk().len().min(cap - body.len());
            body.extend_from_slice(&chunk.chunk()[..take]);
            chunk.advance(take);
        }
    }
    Ok(body.freeze())
}

async fn respond(stream: &mut Stream, resp: Response<service::Body>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (parts, mut body) = resp.into_parts();
    stream.send_response(Response::from_parts(parts, ())).await?;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data()
            && !data.is_empty()
        {
            stream.send_data(data).await?;
        }
    }
    stream.finish().await?;
    Ok(())
}
