//! Outbound HTTP for plugins: one pooled client per host ([`HttpClient`]),
//! handed to each plugin as an [`Outbound`] that carries the plugin's
//! [`OutboundPolicy`] and counters.
//!
//! HTTP/1.1 and HTTP/2 (negotiated by ALPN over TLS; plain `http://` is
//! HTTP/1.1), connections pooled per origin, TLS through rustls on aws-lc-rs.
//! Limits: `connect_timeout` (TCP connect), `request_timeout` (until the
//! response head arrives; a request may shorten it) and `body_idle_timeout`
//! (longest wait for the next response body chunk). Bodies stream both ways.

mod body;
mod policy;
mod tls;
pub(crate) mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use body::ResponseBody;
pub use policy::{OutboundPolicy, is_valid_entry};
pub use tls::ClientCert;
pub(crate) use tls::client_config;

use crate::ServiceError;

/// The error type a request body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A streaming request body: any `http_body::Body<Data = Bytes>`, boxed
/// (`RequestBody::new(body)`, or [`empty`] / [`full`]).
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// An empty request body.
pub fn empty() -> RequestBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A request body of one buffer.
pub fn full(data: impl Into<Bytes>) -> RequestBody {
    use http_body_util::BodyExt;
    http_body_util::Full::new(data.into()).map_err(|never| match never {}).boxed_unsync()
}

/// Settings of the outbound client (the manifest's `services.http`).
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Longest TCP connect.
    pub connect_timeout: Duration,
    /// Longest wait from sending a request to its response head.
    pub request_timeout: Duration,
    /// Longest wait for the next chunk of a response body.
    pub body_idle_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per origin.
    pub pool_max_idle_per_host: usize,
    /// Extra trusted CA certificates (PEM), beyond the system and Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate presented to servers that ask (mTLS).
    pub client_cert: Option<ClientCert>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            ca_pem: None,
            client_cert: None,
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The host's outbound HTTP client, shared by every plugin (cheap to clone).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, RequestBody>,
    config: Arc<HttpConfig>,
}

impl HttpClient {
    /// A client with `config`; fails on an unreadable CA bundle or client certificate.
    pub fn new(config: HttpConfig) -> Result<HttpClient, ServiceError> {
        let tls = tls::client_config(config.ca_pem.as_deref(), config.client_cert.as_ref())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(HttpClient { client, config: Arc::new(config) })
    }

    /// The client's settings.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The handle plugin `plugin` uses: this client, limited to `policy`.
    pub fn for_plugin(&self, plugin: &str, policy: OutboundPolicy) -> Outbound {
        Outbound { client: self.clone(), plugin: Arc::from(plugin), policy: Arc::new(policy), metrics: Arc::default() }
    }
}

/// Per-plugin counters of outbound HTTP, for the host's metrics.
#[derive(Debug, Default)]
pub struct OutboundMetrics {
    /// Requests sent (allowed by the policy).
    pub requests: AtomicU64,
    /// Requests refused by the policy.
    pub denied: AtomicU64,
    /// Requests or response bodies that failed (connect, TLS, timeout, protocol).
    pub errors: AtomicU64,
}

impl OutboundMetrics {
    /// `(requests, denied, errors)` now.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (load(&self.requests), load(&self.denied), load(&self.errors))
    }
}

/// One plugin's outbound HTTP: the shared client, the plugin's policy, its counters.
#[derive(Clone)]
pub struct Outbound {
    client: HttpClient,
    plugin: Arc<str>,
    policy: Arc<OutboundPolicy>,
    metrics: Arc<OutboundMetrics>,
}

impl Outbound {
    /// The plugin's counters.
    pub fn metrics(&self) -> &Arc<OutboundMetrics> {
        &self.metrics
    }

    /// The same handle counting into `metrics` (the host keeps one set per
    /// plugin name, so the counts survive swaps and reloads).
    pub fn with_metrics(mut self, metrics: Arc<OutboundMetrics>) -> Outbound {
        self.metrics = metrics;
        self
    }

    /// The plugin's policy.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Sends `request` (absolute `http://` or `https://` URI) once the policy
    /// allows its host; resolves at the response head, whose body then
    /// streams. `timeout` shortens (never lengthens) the configured request timeout.
    ///
    /// With tracing on, the request gets a client span (a child of the
    /// current span when this future is polled inside a plugin phase's
    /// `covet_telemetry::current::scope`, else the root of a new trace),
    /// ended at the response head or the failure, and carries it in
    /// `traceparent` / `tracestate` (sampled or not). A caller that polls
    /// this future outside the phase (a spawned task) wraps it in
    /// `current::scope(parent, ..)` with the parent it captured; it does not
    /// make a span of its own.
    pub async fn send(
        &self,
        mut request: http::Request<RequestBody>,
        timeout: Option<Duration>,
    ) -> Result<http::Response<ResponseBody>, ServiceError> {
        let target = self.check(request.uri())?;
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        let span = trace::client_span(|| request.method().as_str().to_owned());
        if let Some(span) = &span {
            span.inject(request.headers_mut());
            span.set(|| trace::request_attributes(&request));
        }
        let limit = timeout.map_or(self.client.config.request_timeout, |t| t.min(self.client.config.request_timeout));
        let sent = tokio::time::timeout(limit, self.client.client.request(request)).await;
        let result = match sent {
            Err(_) => Err(ServiceError::Timeout { what: format!("HTTP request to {target}"), after: limit }),
            Ok(Err(e)) => Err(map_client_error(&e, &target, self.client.config.connect_timeout)),
            Ok(Ok(response)) => {
                let idle = self.client.config.body_idle_timeout;
                Ok(response.map(|b| ResponseBody::new(b, idle, target.clone(), self.metrics.clone())))
            }
        };
        if result.is_err() {
            self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(span) = span {
            match &result {
                Ok(response) => span.status(response.status().as_u16()),
                Err(error) => span.fail(error.kind(), || error.to_string()),
            }
        }
        result
    }

    /// `host:port` of `uri` when the policy allows it, else `Denied` (counted).
    fn check(&self, uri: &http::Uri) -> Result<String, ServiceError> {
        let checked = self.allowed(uri);
        if let Err(ServiceError::Denied { .. }) = checked {
            self.metrics.denied.fetch_add(1, Ordering::Relaxed);
        }
        checked
    }

    /// `host:port` of `uri` when the policy allows it, else `Denied` (naming
    /// the plugin, the host and the grant), or `Http` for a URL that is not
    /// absolute `http`/`https`. Sends and counts nothing: for checking
    /// configured URLs when a plugin loads.
    pub fn allowed(&self, uri: &http::Uri) -> Result<String, ServiceError> {
        let scheme = uri.scheme_str().unwrap_or_default();
        let port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(ServiceError::Http(format!("URL '{uri}' must be absolute, with scheme http or https"))),
        };
        let Some(authority) = uri.authority() else {
            return Err(ServiceError::Http(format!("URL '{uri}' has no host")));
        };
        let port = authority.port_u16().unwrap_or(port);
        let host = authority.host().to_ascii_lowercase();
        let target = format!("{host}:{port}");
        if self.policy.allows(&host, port) {
            return Ok(target);
        }
        let what = format!("outbound HTTP to host '{target}'");
        Err(ServiceError::Denied { plugin: self.plugin.to_string(), what, grant: "outbound_http" })
    }
}

fn map_client_error(error: &hyper_util::client::legacy::Error, target: &str, connect_timeout: Duration) -> ServiceError {
    let chain = error_chain(error);
    if chain.iter().any(|e| e.is::<rustls::Error>()) {
        return ServiceError::Tls(format!("{target}: {}", chain_text(error)));
    }
    if error.is_connect() {
        let timed_out = chain.iter().any(|e| {
            e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        });
        if timed_out {
            return ServiceError::Timeout { what: format!("connect to {target}"), after: connect_timeout };
        }
        return ServiceError::Connect { target: target.to_owned(), reason: chain_text(error) };
    }
    ServiceError::Http(format!("{target}: {}", chain_text(error)))
}

/// An error and its causes. `io::Error` hides the error it wraps from
/// `source()` (rustls errors reach hyper as `io::Error`s, sometimes nested),
/// so the walk descends into `get_ref()` there.
pub(crate) fn error_chain<'e>(error: &'e (dyn std::error::Error + 'static)) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut chain = vec![error];
    let mut current = error;
    loop {
        let next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        let Some(next) = next else { return chain };
        chain.push(next);
        current = next;
    }
}

/// `a: b: c` from an error and its sources, without repeats.
pub(crate) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in error_chain(error) {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
