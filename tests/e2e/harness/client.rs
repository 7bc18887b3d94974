//! A small HTTP client over hyper: HTTP/1.1 or h2c with prior knowledge.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client as HyperClient, connect::HttpConnector},
    rt::TokioExecutor,
};

/// A client bound to one host address.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Protocol version.
    pub version: http::Version,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    /// HTTP/1.1 with keep-alive.
    pub fn http1(addr: SocketAddr) -> Client {
        Client { addr, inner: HyperClient::builder(TokioExecutor::new()).build_http() }
    }

    /// HTTP/2 over cleartext with prior knowledge.
    pub fn http2(addr: SocketAddr) -> Client {
        let inner = HyperClient::builder(TokioExecutor::new()).http2_only(true).build_http();
        Client { addr, inner }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// Any request.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Result<Reply, String> {
        let mut req = Request::builder().method(method).uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).map_err(|e| e.to_string())?;
        let resp = self.inner.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply { status: parts.status, headers: parts.headers, body, version: parts.version })
    }
}
