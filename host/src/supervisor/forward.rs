//! Talking to the children's admin APIs: a change sent in full and its
//! answer read in full ([`Op`], [`Answer`], for the fan-out and the replay
//! log), and a read request forwarded with its answer streamed back (server
//! events, gRPC streams).

use std::{net::SocketAddr, time::Duration};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::admin::ApiError;

/// The longest a change may take on one child (a swap loads and initialises
/// a build; a manifest reload may load several).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// An admin request, kept to be sent to every child and replayed.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its method.
    pub method: Method,
    /// Its path and query.
    pub path: String,
    /// The headers that travel (content type, gRPC's `te` and timeouts).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Whether it is a gRPC call (HTTP/2, status in the trailers).
    pub grpc: bool,
}

/// A child's answer, read in full.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The trailers (gRPC's status).
    pub trailers: Option<HeaderMap>,
    /// Whether no child answered (it could not be reached or timed out).
    pub unreached: bool,
}

impl Answer {
    /// Whether the change was applied: a 2xx, and for gRPC `grpc-status: 0`.
    pub fn succeeded(&self) -> bool {
        if !self.status.is_success() {
            return false;
        }
        let grpc = self.trailers.as_ref().and_then(|t| t.get("grpc-status")).or_else(|| self.headers.get("grpc-status"));
        grpc.is_none_or(|status| status.as_bytes() == b"0")
    }

    /// The answer when no child can take a request.
    pub fn unavailable(message: &str, grpc: bool) -> Answer {
        let error = ApiError::unavailable(message);
        let response = match grpc {
            true => error.into_grpc_response(),
            false => axum::response::IntoResponse::into_response(error),
        };
        let (parts, _) = response.into_parts();
        let body = match grpc {
            true => Bytes::new(),
            false => Bytes::from(serde_json::json!({ "error": { "code": "unavailable", "message": message } }).to_string()),
        };
        Answer { status: parts.status, headers: parts.headers, body, trailers: None, unreached: true }
    }

    /// The answer as the supervisor's response (trailers kept).
    pub fn into_response(self) -> Response {
        let mut frames = vec![Ok::<_, std::convert::Infallible>(Frame::data(self.body))];
        if let Some(trailers) = self.trailers {
            frames.push(Ok(Frame::trailers(trailers)));
        }
        let mut response = Response::new(Body::new(StreamBody::new(futures_util::stream::iter(frames))));
        *response.status_mut() = self.status;
        let mut headers = self.headers;
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::TRANSFER_ENCODING);
        *response.headers_mut() = headers;
        response
    }
}

/// The admin client of the children (HTTP/1.1, and HTTP/2 for gRPC).
pub struct Forwarder {
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
    authorization: HeaderValue,
}

impl Forwarder {
    /// A client presenting `token` to the children.
    pub fn new(token: String) -> Forwarder {
        let authorization = HeaderValue::try_from(format!("Bearer {token}")).expect("the token is visible ASCII");
        Forwarder {
            http1: Client::builder(TokioExecutor::new()).build_http(),
            http2: Client::builder(TokioExecutor::new()).http2_only(true).build_http(),
            authorization,
        }
    }

    /// Sends `op` to the child at `admin` and reads its answer in full; a
    /// child that cannot be reached answers 503.
    pub async fn send(&self, admin: SocketAddr, op: &Op) -> Answer {
        match tokio::time::timeout(CHANGE_TIMEOUT, self.exchange(admin, op)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Answer::unavailable(&format!("host process at {admin}: {e}"), op.grpc),
            Err(_) => Answer::unavailable(&format!("host process at {admin} did not answer within {CHANGE_TIMEOUT:?}"), op.grpc),
        }
    }

    async fn exchange(&self, admin: SocketAddr, op: &Op) -> Result<Answer, String> {
        let response = self.request(admin, op.grpc, &op.method, &op.path, &op.headers, op.body.clone()).await?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.map_err(|e| e.to_string())?;
        let trailers = collected.trailers().cloned();
        Ok(Answer { status: parts.status, headers: parts.headers, body: collected.to_bytes(), trailers, unreached: false })
    }

    /// Sends a request to the child at `admin`; its answer's body streams.
    pub async fn request(
        &self,
        admin: SocketAddr,
        grpc: bool,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<Incoming>, String> {
        let mut request = Request::builder().method(method.clone()).uri(format!("http://{admin}{path}"));
        for (name, value) in headers {
            if name != header::AUTHORIZATION && name != header::HOST && name != header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        let request = request
            .header(header::AUTHORIZATION, self.authorization.clone())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let client = if grpc { &self.http2 } else { &self.http1 };
        client.request(request).await.map_err(|e| format!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, grpc_status: Option<&str>) -> Answer {
        let trailers = grpc_status.map(|s| {
            let mut t = HeaderMap::new();
            t.insert("grpc-status", HeaderValue::from_str(s).unwrap());
            t
        });
        Answer { status: StatusCode::from_u16(status).unwrap(), headers: HeaderMap::new(), body: Bytes::new(), trailers, unreached: false }
    }

    #[test]
    fn a_change_succeeds_on_a_2xx_with_grpc_status_0() {
        assert!(answer(200, None).succeeded());
        assert!(answer(200, Some("0")).succeeded());
        assert!(!answer(200, Some("9")).succeeded());
        assert!(!answer(422, None).succeeded());
        assert!(!Answer::unavailable("x", false).succeeded());
        assert!(!Answer::unavailable("x", true).succeeded());
        assert!(Answer::unavailable("x", false).unreached && !answer(200, None).unreached);
    }
}
