//! Outbound HTTP for plugin authors: [`RequestBuilder`] and [`HttpResponse`]
//! (whose body streams from the server, chunk by chunk).

use std::time::Duration;


use super::ffi::{FfiHttpRequest, FfiHttpResponse};
use super::{Host, ServiceError, ServiceErrorKind, body_to_ffi, find_header, headers_from_ffi, headers_to_ffi, millis, result};
use crate::{BodyStream, Chunk};

/// An outbound request being built; [`RequestBuilder::send`] sends it.
pub struct RequestBuilder {
    host: Host,
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<BodyStream>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBuilder").field("method", &self.method).field("url", &self.url).finish_non_exhaustive()
    }
}

impl RequestBuilder {
    pub(super) fn new(host: Host, method: &str, url: &str) -> RequestBuilder {
        RequestBuilder { host, method: method.into(), url: url.into(), headers: Vec::new(), body: None, timeout: None }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> RequestBuilder {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body to one buffer.
    pub fn body(self, bytes: impl Into<Chunk>) -> RequestBuilder {
        self.body_stream(BodyStream::from_bytes(bytes))
    }

    /// Sets a streamed body (e.g. the client's request body, or a [`crate::BodySender`] channel).
    pub fn body_stream(mut self, body: BodyStream) -> RequestBuilder {
        self.body = Some(body);
        self
    }

    /// Waits at most `timeout` for the response head (the host's `request_timeout` caps it).
    pub fn timeout(mut self, timeout: Duration) -> RequestBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request; resolves when the response head arrives.
    pub async fn send(self) -> Result<HttpResponse, ServiceError> {
        let request = FfiHttpRequest {
            method: self.method.into(),
            url: self.url.into(),
            headers: headers_to_ffi(self.headers),
            body: body_to_ffi(self.body),
            timeout_ms: millis(self.timeout),
        };
        let response = result(self.host.ops()?.http_send(request).await)?;
        Ok(HttpResponse::from_ffi(response))
    }
}

/// A response to an outbound request: status and headers now, the body as
/// the server sends it.
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyStream,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse").field("status", &self.status).field("headers", &self.headers).finish_non_exhaustive()
    }
}

impl HttpResponse {
    fn from_ffi(response: FfiHttpResponse) -> HttpResponse {
        HttpResponse { status: response.status, headers: headers_from_ffi(response.headers), body: BodyStream::from_ffi(response.body) }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order (names lower-case).
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The first value of header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The next body chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Chunk>, ServiceError> {
        match self.body.chunk().await {
            None => Ok(None),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(ServiceError::new(ServiceErrorKind::Http, e)),
        }
    }

    /// The whole body (at most 64 MiB; use [`HttpResponse::chunk`] for more).
    pub async fn bytes(self) -> Result<Vec<u8>, ServiceError> {
        self.body.collect(64 << 20).await.map_err(|e| ServiceError::new(ServiceErrorKind::Http, e))
    }

    /// The whole body parsed as JSON.
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, ServiceError> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| ServiceError::new(ServiceErrorKind::Http, format!("response body is not the expected JSON: {e}")))
    }

    /// The body as a stream, e.g. to relay it as the plugin's own response body.
    pub fn into_body(self) -> BodyStream {
        self.body
    }
}
