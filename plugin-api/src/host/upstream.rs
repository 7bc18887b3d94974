//! Requests to the manifest's named upstreams: [`Upstream::request`] builds
//! an [`UpstreamRequestBuilder`]; the host balances it over the upstream's
//! endpoints (health, outlier ejection, stickiness, circuit breaking,
//! retries with a budget) and answers with an [`UpstreamResponse`] whose body
//! streams. The `proxy` plugin is built on this; any plugin granted
//! `capabilities: { upstreams: [name] }` may call one.

use std::time::Duration;


use super::ffi::{FfiUpstreamRequest, FfiUpstreamResponse};
use super::{Host, ServiceError, body_to_ffi, find_header, headers_from_ffi, headers_to_ffi, millis, result};
use crate::BodyStream;

/// A named upstream; start a request with [`Upstream::request`].
#[derive(Clone, Debug)]
pub struct Upstream {
    host: Host,
    name: String,
}

impl Upstream {
    pub(super) fn new(host: Host, name: &str) -> Upstream {
        Upstream { host, name: name.to_owned() }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this plugin may use the upstream (granted, and defined in the
    /// manifest), without sending anything: for `init`, so a missing grant
    /// fails the load rather than the first request.
    pub fn check(&self) -> Result<(), ServiceError> {
        result(self.host.ops()?.upstream_check(self.name.as_str().into()))
    }

    /// A request with `method` for `path_and_query` (`/users/7?full=1`).
    pub fn request(&self, method: &str, path_and_query: &str) -> UpstreamRequestBuilder {
        UpstreamRequestBuilder {
            host: self.host.clone(),
            upstream: self.name.clone(),
            method: method.to_owned(),
            path_and_query: path_and_query.to_owned(),
            // Room for a proxied request's headers without regrowing.
            headers: Vec::with_capacity(16),
            body: None,
            client_addr: String::new(),
            timeout: None,
            per_try_timeout: None,
            max_retries: None,
            retry_non_idempotent: None,
        }
    }
}

/// A request to an upstream being built; [`UpstreamRequestBuilder::send`] sends it.
pub struct UpstreamRequestBuilder {
    host: Host,
    upstream: String,
    method: String,
    path_and_query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<BodyStream>,
    client_addr: String,
    timeout: Option<Duration>,
    per_try_timeout: Option<Duration>,
    max_retries: Option<u32>,
    retry_non_idempotent: Option<bool>,
}

impl std::fmt::Debug for UpstreamRequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRequestBuilder")
            .field("upstream", &self.upstream)
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .finish_non_exhaustive()
    }
}

impl UpstreamRequestBuilder {
    /// Adds a header (sent as given: filter hop-by-hop headers before).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> UpstreamRequestBuilder {
        self.headers.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body to a stream (typically the client's, from [`crate::Request::take_body`]).
    pub fn body_stream(mut self, body: BodyStream) -> UpstreamRequestBuilder {
        self.body = Some(body);
        self
    }

    /// The client's address, for `client_ip` hashing (`Request::client_addr`).
    pub fn client_addr(mut self, addr: &str) -> UpstreamRequestBuilder {
        self.client_addr = addr.to_owned();
        self
    }

    /// Overall deadline of this request, all attempts (shortens the upstream's `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> UpstreamRequestBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Deadline of each attempt until the response head.
    pub fn per_try_timeout(mut self, timeout: Duration) -> UpstreamRequestBuilder {
        self.per_try_timeout = Some(timeout);
        self
    }

    /// Most retries of this request (0: none).
    pub fn max_retries(mut self, retries: u32) -> UpstreamRequestBuilder {
        self.max_retries = Some(retries);
        self
    }

    /// Whether a non-idempotent method (POST, PATCH) may be retried.
    pub fn retry_non_idempotent(mut self, allow: bool) -> UpstreamRequestBuilder {
        self.retry_non_idempotent = Some(allow);
        self
    }

    /// Sends the request; resolves at the response head of the attempt that
    /// was kept. Error kinds: `Denied`, `Unavailable`, `Timeout`,
    /// `Overloaded`, `Http`, `Config`.
    pub async fn send(self) -> Result<UpstreamResponse, ServiceError> {
        let request = FfiUpstreamRequest {
            upstream: self.upstream.into(),
            method: self.method.into(),
            path_and_query: self.path_and_query.into(),
            headers: headers_to_ffi(self.headers),
            body: body_to_ffi(self.body),
            client_addr: self.client_addr.into(),
            timeout_ms: millis(self.timeout),
            per_try_timeout_ms: millis(self.per_try_timeout),
            max_retries: self.max_retries.into(),
            retry_non_idempotent: self.retry_non_idempotent.into(),
        };
        let response = result(self.host.ops()?.upstream_send(request).await)?;
        Ok(UpstreamResponse::from_ffi(response))
    }
}

/// An upstream's answer: status and headers now, the body as the endpoint sends it.
pub struct UpstreamResponse {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyStream,
    endpoint: String,
    attempts: u32,
}

impl std::fmt::Debug for UpstreamResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("status", &self.status)
            .field("endpoint", &self.endpoint)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl UpstreamResponse {
    fn from_ffi(response: FfiUpstreamResponse) -> UpstreamResponse {
        UpstreamResponse {
            status: response.status,
            headers: headers_from_ffi(response.headers),
            body: BodyStream::from_ffi(response.body),
            endpoint: response.endpoint.into_string(),
            attempts: response.attempts,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order (names lower-case; hop-by-hop ones included).
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The first value of header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The endpoint that answered (`ip:port`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// How many attempts were made (1: no retry).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Status, headers and body, to build the plugin's own response.
    pub fn into_parts(self) -> (u16, Vec<(String, Vec<u8>)>, BodyStream) {
        (self.status, self.headers, self.body)
    }
}
