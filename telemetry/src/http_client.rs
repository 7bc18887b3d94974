//! The HTTP client OTLP/HTTP exports go through: hyper-util's pooled client
//! over hyper-rustls (aws-lc-rs, webpki roots; `http://` and `https://`),
//! used directly for spans and metrics. Each call is bounded by the
//! exporter's timeout, response bodies by a size limit.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Why an export call failed (connect, TLS, HTTP, body, timeout).
pub type HttpError = Box<dyn std::error::Error + Send + Sync>;

/// Largest collector answer read (OTLP answers are a few bytes).
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// An HTTP/1.1 client for OTLP/HTTP (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct HyperClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HyperClient {
    /// A client whose calls (sending and reading the answer) last at most `timeout`.
    pub fn new(timeout: Duration) -> HyperClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).pool_timer(TokioTimer::new()).build(connector);
        HyperClient { client, timeout }
    }

    /// Sends `request` and reads the whole answer, within the timeout.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let call = async {
            let (parts, body) = request.into_parts();
            let response = self.client.request(Request::from_parts(parts, Full::new(body))).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout).into()),
        }
    }
}
