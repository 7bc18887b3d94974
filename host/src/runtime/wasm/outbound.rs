//! Sends a WASM plugin's outbound HTTP request (`wasi:http/outgoing-handler`)
//! once [`super::sandbox`] has allowed its host: TCP, TLS through the host's
//! tokio-rustls with the aws-lc-rs provider and the webpki-roots trust
//! anchors for `https`, then one HTTP/1.1 exchange over hyper.
//!
//! This replaces wasmtime-wasi-http's `default-send-request` feature, which
//! pulls in a second crypto provider (ring). It follows that function
//! (wasmtime 48, Apache-2.0) closely: same timeouts, same errors.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri, uri::Scheme};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use wasmtime_wasi_http::{Error, RequestOptions};

/// What the guest waits on for the rest of the exchange (the connection
/// finishing after the response head).
pub type Driver = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Used when the guest sets no timeout (wasmtime's own default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Sends `req` and returns the response head with a streaming body, and the
/// future that drives the connection to its end.
pub async fn send(
    mut req: Request<wasmtime_wasi_http::WasiBody>,
    options: Option<RequestOptions>,
) -> Result<(Response<wasmtime_wasi_http::WasiBody>, Driver), Error> {
    use http_body_util::BodyExt;
    let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT);
    let (connect, first_byte, between) =
        (timeout(|o| o.connect_timeout), timeout(|o| o.first_byte_timeout), timeout(|o| o.between_bytes_timeout));
    let stream = connect_to(req.uri(), connect).await?;
    let (mut sender, conn) =
        tokio::time::timeout(connect, hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
    // The request line carries only the path unless talking to a proxy.
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = Uri::builder().path_and_query(path).build().map_err(|_| Error::HttpRequestUriInvalid)?;
    let mut conn = Box::pin(conn);
    let sending = tokio::time::timeout(first_byte, sender.send_request(req));
    // Drive the connection while waiting for the response head.
    tokio::pin!(sending);
    let res = tokio::select! {
        biased;
        res = &mut sending => res,
        done = conn.as_mut() => {
            done?;
            sending.await
        }
    };
    let res = res.map_err(|_| Error::ConnectionReadTimeout)?.map_err(Error::from)?;
    let between = between.max(Duration::from_nanos(1));
    let mut interval = tokio::time::interval(between);
    interval.reset();
    let res = res.map(|incoming| TimedBody { incoming, interval }.boxed_unsync());
    let driver: Driver = Box::new(async move {
        conn.await.map_err(|e| if e.is_timeout() { Error::HttpResponseTimeout } else { Error::from(e) })
    });
    Ok((res, driver))
}

async fn connect_to(uri: &Uri, timeout: Duration) -> Result<Box<dyn Stream>, Error> {
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = authority.host();
    let target = format!("{}:{port}", host);
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&target)).await {
        Ok(stream) => stream.map_err(Error::Connect)?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    if !tls {
        return Ok(Box::new(tcp));
    }
    let name = server_name(host).map_err(|e| Error::Tls(std::io::Error::other(e)))?;
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let stream = connector.connect(name, tcp).await.map_err(Error::Tls)?;
    Ok(Box::new(stream))
}

/// The TLS name of `host` (an IPv6 literal comes in brackets).
fn server_name(host: &str) -> Result<ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    Ok(ServerName::try_from(bare)?.to_owned())
}

/// One client configuration for every outbound request: the Mozilla roots
/// (webpki-roots), no client certificate.
fn client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            Arc::new(config.unwrap_or_else(|e| unreachable!("aws-lc-rs supports the default versions: {e}")))
        })
        .clone()
}

/// The response body, failing when no byte arrives within the guest's
/// `between_bytes_timeout`.
struct TimedBody {
    incoming: Incoming,
    interval: tokio::time::Interval,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(if e.is_timeout() { Error::HttpResponseTimeout } else { Error::from(e) })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.interval.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.interval.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
