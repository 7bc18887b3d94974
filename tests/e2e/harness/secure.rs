//! Clients for TLS listeners: one HTTP/1.1 or HTTP/2 connection over
//! tokio-rustls (whichever ALPN picked), and an HTTP/3 connection over
//! quinn + h3. Both report what the handshake negotiated.

use std::{net::SocketAddr, sync::Arc};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, ProtocolVersion, pki_types::{CertificateDer, ServerName}};
use tokio::net::TcpStream;

use crate::Reply;

type Error = Box<dyn std::error::Error + Send + Sync>;

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One TLS connection carrying HTTP/1.1 or HTTP/2.
pub struct TlsConn {
    /// The ALPN protocol the server chose.
    pub alpn: Option<Vec<u8>>,
    /// The TLS version.
    pub version: Option<ProtocolVersion>,
    /// The server's leaf certificate.
    pub peer: Option<CertificateDer<'static>>,
    sender: Sender,
}

impl TlsConn {
    /// Connects to `addr`, asking for server name `name`.
    pub async fn connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> Result<TlsConn, Error> {
        let tcp = TcpStream::connect(addr).await?;
        let server_name = ServerName::try_from(name.to_owned())?;
        let stream = tokio_rustls::TlsConnector::from(config).connect(server_name, tcp).await?;
        let (_, session) = stream.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let version = session.protocol_version();
        let peer = session.peer_certificates().and_then(|c| c.first().cloned());
        let io = TokioIo::new(stream);
        let sender = if alpn.as_deref() == Some(b"h2") {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(TlsConn { alpn, version, peer, sender })
    }

    /// `GET path` on this connection.
    pub async fn get(&mut self, path: &str) -> Result<Reply, Error> {
        let req = Request::get(format!("https://covet.test{path}")).body(Full::new(Bytes::new()))?;
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                let mut req = req;
                *req.uri_mut() = path.parse()?;
                req.headers_mut().insert(http::header::HOST, http::HeaderValue::from_static("covet.test"));
                s.send_request(req).await?
            }
            Sender::H2(s) => s.send_request(req).await?,
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body, version: parts.version })
    }
}

/// One HTTP/3 connection.
pub struct H3Conn {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    _endpoint: quinn::Endpoint,
}

impl H3Conn {
    /// Connects over QUIC to `addr` with server name `name`; `config` must
    /// offer ALPN `h3` and TLS 1.3.
    pub async fn connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> Result<H3Conn, Error> {
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config)?;
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = endpoint.connect(addr, name)?.await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        tokio::spawn(async move { driver.wait_idle().await });
        Ok(H3Conn { send, _endpoint: endpoint })
    }

    /// Sends `method path` with `body` and reads the whole response.
    pub async fn request(&mut self, method: Method, path: &str, body: &[u8]) -> Result<Reply, Error> {
        let req = Request::builder().method(method).uri(format!("https://covet.test{path}")).body(())?;
        let mut stream = self.send.send_request(req).await?;
        if !body.is_empty() {
            stream.send_data(Bytes::copy_from_slice(body)).await?;
        }
        stream.finish().await?;
        let resp = stream.recv_response().await?;
        let mut data = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            while chunk.has_remaining() {
                let piece = chunk.chunk().to_vec();
                chunk.advance(piece.len());
                data.extend_from_slice(&piece);
            }
        }
        let (parts, ()) = resp.into_parts();
        Ok(Reply { status: parts.status, headers: parts.headers, body: data.freeze(), version: parts.version })
    }
}
