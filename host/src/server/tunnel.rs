//! Upgrades (WebSocket and any other `Upgrade`, HTTP/2 extended CONNECT) as
//! two body streams, so plugins tunnel them with the body API they already
//! have and a swap never cuts a tunnel (the streams belong to the host).
//!
//! An upgrade request reaches plugins in the HTTP/1.1 form (method GET,
//! `connection: upgrade`, `upgrade: <protocol>`; an HTTP/2 extended CONNECT
//! is rewritten to it, with `sec-websocket-version: 13` and a fresh
//! `sec-websocket-key` for WebSocket). Its request body stream is the
//! client's bytes after the upgrade: nothing flows before the response is
//! sent. When the pipeline answers 101 (or, on HTTP/2, 101 or 2xx, sent as
//! 200 without the upgrade headers), [`Pending::accept`] spawns the tunnel
//! task: it awaits hyper's upgrade, writes the response body stream into the
//! upgraded connection and feeds its reads into the request body stream
//! (a bounded channel: a slow reader holds the client back), shutting down
//! each direction at its end. Any other response abandons the upgrade (the
//! request body just ends).
//!
//! The tunnel task runs on the connection's home runtime when it has one
//! (an io_uring thread: the upgraded IO must stay on it), else anywhere.
//!
//! A live tunnel holds its connection "in flight", so the connection
//! watchdog leaves it alone, and holds its place under `max_connections`
//! (an HTTP/1.1 connection leaves hyper when it upgrades); the tunnel closes
//! itself after `idle_timeout` without a byte either way.

use std::{
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::{ext::Protocol, upgrade::OnUpgrade};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::mpsc,
    time::Instant,
};

use super::watchdog::InFlight;
use crate::{
    exchange::{BodyError, Chunk, HostResponse, RequestBody},
    service::{Body, ConnInfo},
};

/// Chunks of the client's bytes buffered for a plugin that reads slowly.
const CHANNEL_CHUNKS: usize = 8;
/// The most read from the client at once.
const READ_SIZE: usize = 16 * 1024;

/// Whether `req` asks for an upgrade the host tunnels: an HTTP/1.1 request
/// with `upgrade` and `connection: upgrade` and no body (not `h2c`, which
/// hyper does not serve), or an HTTP/2 CONNECT with `:protocol`. hyper
/// marks the requests it can upgrade (an `upgrade` header, a CONNECT) with
/// an `OnUpgrade` extension, so an ordinary request costs one check of its
/// (empty) extensions, not a header lookup.
pub fn requested<B: hyper::body::Body>(req: &Request<B>) -> bool {
    if req.extensions().get::<OnUpgrade>().is_none() {
        return false;
    }
    match req.version() {
        Version::HTTP_11 => {
            let Some(upgrade) = req.headers().get(header::UPGRADE) else { return false };
            !upgrade.as_bytes().eq_ignore_ascii_case(b"h2c") && connection_upgrade(req) && req.body().is_end_stream()
        }
        Version::HTTP_2 => req.method() == Method::CONNECT && req.extensions().get::<Protocol>().is_some(),
        _ => false,
    }
}

fn connection_upgrade<B>(req: &Request<B>) -> bool {
    let tokens = req.headers().get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok());
    tokens.flat_map(|v| v.split(',')).any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// An upgrade waiting for the pipeline's response.
pub struct Pending {
    on: OnUpgrade,
    tx: mpsc::Sender<Chunk>,
    h2: bool,
}

/// Takes the upgrade out of `req` (rewriting an HTTP/2 extended CONNECT to
/// the HTTP/1.1 form) and returns it with the request body plugins read: the
/// client's bytes once the tunnel is up.
pub fn begin<B>(req: &mut Request<B>) -> (Box<Pending>, Box<RequestBody>) {
    let h2 = req.version() == Version::HTTP_2;
    if h2 {
        normalise(req);
    }
    let on = hyper::upgrade::on(&mut *req);
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    (Box::new(Pending { on, tx, h2 }), Box::new(RequestBody::new(TunnelBody { rx }, u64::MAX)))
}

/// An HTTP/2 extended CONNECT as the HTTP/1.1 upgrade plugins expect.
fn normalise<B>(req: &mut Request<B>) {
    let Some(protocol) = req.extensions().get::<Protocol>() else { return };
    let Ok(upgrade) = HeaderValue::from_str(protocol.as_str()) else { return };
    let websocket = protocol.as_str().eq_ignore_ascii_case("websocket");
    *req.method_mut() = Method::GET;
    let headers = req.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
    if websocket {
        headers.entry(header::SEC_WEBSOCKET_VERSION).or_insert(HeaderValue::from_static("13"));
        if !headers.contains_key(header::SEC_WEBSOCKET_KEY) {
            headers.insert(header::SEC_WEBSOCKET_KEY, websocket_key());
        }
    }
}

/// A random `sec-websocket-key` (16 bytes, base64), for a WebSocket that
/// arrived over HTTP/2 (which has none) and may leave over HTTP/1.1.
fn websocket_key() -> HeaderValue {
    let mut nonce = [0u8; 16];
    let random = rustls::crypto::aws_lc_rs::default_provider().secure_random;
    if random.fill(&mut nonce).is_err() {
        // Not a secret (RFC 6455 only asks that it be unpredictable to a
        // proxy cache); the clock is a fallback that never happens in practice.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        nonce = now.as_nanos().to_le_bytes();
    }
    HeaderValue::from_str(&base64(&nonce)).expect("base64 is a valid header value")
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= group.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' };
            out.push(c);
        }
    }
    out
}

impl Pending {
    /// Completes the upgrade when `resp` accepts it (101; on HTTP/2 also a
    /// 2xx, sent as 200): strips what must not go out with the head, moves
    /// the response body into the tunnel and spawns it. Any other response
    /// drops the upgrade, which ends the request body.
    pub fn accept(self, resp: &mut HostResponse, conn: &Arc<ConnInfo>, idle: Duration) {
        let accepted = resp.status == StatusCode::SWITCHING_PROTOCOLS || (self.h2 && resp.status.is_success());
        if !accepted {
            return;
        }
        if !self.h2 {
            conn.state.mark_upgraded();
        }
        let headers = &mut resp.headers;
        if self.h2 {
            resp.status = StatusCode::OK;
            for name in [header::CONNECTION, header::UPGRADE, header::SEC_WEBSOCKET_ACCEPT] {
                headers.remove(name);
            }
        }
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::TRANSFER_ENCODING);
        let first = std::mem::take(&mut resp.body);
        let out = Body::streaming(first, resp.stream.take().and_then(|s| s.take()));
        let live = Live { _in_flight: conn.state.begin_request(), _conn: conn.clone() };
        let tunnel = run(self, out, live, idle);
        // An io_uring connection's IO may only be used on its own thread; the
        // service future may be elsewhere (offloaded to the main runtime).
        match &conn.home {
            Some(home) => drop(home.spawn(tunnel)),
            None => drop(tokio::spawn(tunnel)),
        }
    }
}

/// What a tunnel holds of its connection: "in flight" (the watchdog leaves
/// it alone) and its `max_connections` permit.
struct Live {
    _in_flight: InFlight,
    _conn: Arc<ConnInfo>,
}

/// The tunnel: both directions until they end, or until `idle` passes
/// without a byte.
async fn run(pending: Pending, out: Body, _live: Live, idle: Duration) {
    let Pending { on, tx, .. } = pending;
    let upgraded = match on.await {
        Ok(upgraded) => upgraded,
        Err(e) => return tracing::debug!("upgrade not completed: {e}"),
    };
    let (reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
    let activity = Activity::new();
    let finished = {
        let both = async {
            let mut up = pin!(client_to_plugin(reader, tx, &activity));
            let mut down = pin!(plugin_to_client(out, &mut writer, &activity));
            // A direction that ended cleanly waits for the other (half-close);
            // one that broke ends the tunnel.
            tokio::select! {
                clean = &mut down => if clean { up.await; },
                clean = &mut up => if clean { down.await; },
            }
        };
        tokio::select! {
            () = both => true,
            () = activity.expired(idle) => false,
        }
    };
    if !finished {
        tracing::debug!("closing a tunnel idle for {idle:?}");
        // End the client's side cleanly (FIN, or END_STREAM on HTTP/2).
        let _ = tokio::time::timeout(idle, writer.shutdown()).await;
    }
}

/// The client's bytes into the request body stream; `false` when reading
/// broke (the plugin's body then ends with the error).
async fn client_to_plugin<R: AsyncRead + Unpin>(mut reader: R, tx: mpsc::Sender<Chunk>, activity: &Activity) -> bool {
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_SIZE);
        match reader.read_buf(&mut buf).await {
            Ok(0) => return true,
            Ok(_) => {
                activity.touch();
                if tx.send(Ok(buf.split().freeze())).await.is_err() {
                    return true; // the plugin dropped the body: nobody reads this way
                }
            }
            Err(e) => {
                let _ = tx.send(Err(format!("client connection broke: {e}"))).await;
                return false;
            }
        }
    }
}

/// The plugin's response body into the client connection; `false` when the
/// body broke off or the client stopped taking bytes.
async fn plugin_to_client<W: AsyncWrite + Unpin>(out: Body, writer: &mut W, activity: &Activity) -> bool {
    let mut out = pin!(out);
    while let Some(frame) = out.frame().await {
        let data = match frame.map(|frame| frame.into_data()) {
            Ok(Ok(data)) => data,
            Ok(Err(_trailers)) => continue,
            Err(e) => {
                tracing::debug!("tunnel body from the plugin broke off: {e}");
                return false;
            }
        };
        activity.touch();
        // Flushed chunk by chunk: a TLS stream keeps records its transport
        // could not take at once (an io_uring send still in flight) until
        // the next write or a flush, and the next chunk may never come.
        if writer.write_all(&data).await.is_err() || writer.flush().await.is_err() {
            return false;
        }
    }
    writer.shutdown().await.is_ok()
}

/// When a byte last moved through the tunnel (milliseconds since it began).
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once `idle` has passed since the last byte (never for `0s`).
    async fn expired(&self, idle: Duration) {
        if idle.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let deadline = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The client's bytes after the upgrade, as the request body.
struct TunnelBody {
    rx: mpsc::Receiver<Chunk>,
}

impl hyper::body::Body for TunnelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        self.get_mut().rx.poll_recv(cx).map(|chunk| chunk.map(|c| c.map(hyper::body::Frame::data).map_err(Into::into)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        let cases: [(&[u8], &str); 5] = [(b"", ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"foobar", "Zm9vYmFy")];
        for (input, expected) in cases {
            assert_eq!(base64(input), expected);
        }
        assert_eq!(websocket_key().len(), 24);
    }

    #[test]
    fn only_an_upgrade_with_connection_upgrade_is_tunnelled() {
        let req = |connection: &str, upgrade: &str| {
            let req = Request::builder()
                .header(header::CONNECTION, connection)
                .header(header::UPGRADE, upgrade)
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            upgradable(req)
        };
        assert!(requested(&req("keep-alive, Upgrade", "websocket")));
        assert!(!requested(&req("keep-alive", "websocket")));
        assert!(!requested(&req("upgrade", "h2c")));
        assert!(!requested(&upgradable(Request::new(http_body_util::Empty::<Bytes>::new()))));
        let mut unmarked = req("upgrade", "websocket");
        unmarked.extensions_mut().clear();
        assert!(!requested(&unmarked), "hyper did not mark it upgradable");
    }

    /// `req` marked as hyper marks a request it can upgrade.
    fn upgradable<B>(mut req: Request<B>) -> Request<B> {
        let on = hyper::upgrade::on(&mut req);
        req.extensions_mut().insert(on);
        req
    }

    #[test]
    fn an_extended_connect_becomes_an_http1_upgrade() {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri("https://example.com/chat")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        req.extensions_mut().insert(Protocol::from_static("websocket"));
        let mut req = upgradable(req);
        assert!(requested(&req));
        normalise(&mut req);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.headers()["connection"], "upgrade");
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert_eq!(req.headers()["sec-websocket-version"], "13");
        assert_eq!(req.headers()["sec-websocket-key"].len(), 24);
    }
}
