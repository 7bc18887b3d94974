//! Helpers the fuzz targets share: requests built from fuzz input the way
//! the host gets them (hyper's HTTP/1 parser is httparse), turned into the
//! host's `Exchange` by `Exchange::from_parts`, the constructor the service
//! itself uses. See docs/fuzzing.md.

use std::sync::Arc;

use arbitrary::Arbitrary;
use bytes::Bytes;
use covet::exchange::Exchange;
use http::{HeaderName, HeaderValue, Method, Uri, Version, request::Parts};

/// Most header fields taken from one input (hyper's default is 100).
pub const MAX_HEADERS: usize = 100;

/// A request head described field by field; fields `http` refuses are
/// dropped one by one (as a client library could never send them).
#[derive(Arbitrary, Debug)]
pub struct ArbHead<'a> {
    /// The method token.
    pub method: &'a [u8],
    /// The request target.
    pub uri: &'a str,
    /// 0: HTTP/1.0, 1: HTTP/1.1, 2: HTTP/2, 3: HTTP/3.
    pub version: u8,
    /// Header fields, name and value as raw bytes.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    /// Route parameters.
    pub params: Vec<(&'a str, &'a str)>,
    /// The buffered body.
    pub body: &'a [u8],
}

impl ArbHead<'_> {
    /// The head as `http` parts (what hyper hands the service).
    pub fn parts(&self) -> Parts {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = Method::from_bytes(self.method).unwrap_or(Method::GET);
        parts.uri = Uri::try_from(self.uri).unwrap_or_else(|_| Uri::from_static("/"));
        parts.version = version(self.version);
        for (name, value) in self.headers.iter().take(MAX_HEADERS) {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                parts.headers.append(name, value);
            }
        }
        parts
    }

    /// The exchange the pipeline would hand a plugin for this head.
    pub fn exchange(&self) -> Exchange {
        let params = self.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        exchange(self.parts(), params, Bytes::copy_from_slice(self.body))
    }
}

/// The HTTP version `n` names (mod 4).
pub fn version(n: u8) -> Version {
    [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2, Version::HTTP_3][usize::from(n % 4)]
}

/// The exchange of a routed request, through the service's constructor.
pub fn exchange(parts: Parts, params: Vec<(String, String)>, body: Bytes) -> Exchange {
    let client: Arc<str> = Arc::from("192.0.2.7:40000");
    let route: Arc<str> = Arc::from("/fuzz/{*rest}");
    Exchange::from_parts(parts, client, route, params, body, None, HeaderValue::from_static("fuzz-request-id"))
}

/// Parses a raw HTTP/1 head as hyper does (httparse, at most
/// [`MAX_HEADERS`] fields) into `http` parts; `None` when hyper would refuse it.
pub fn parse_head(raw: &[u8]) -> Option<Parts> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(_) = req.parse(raw).ok()? else { return None };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    parts.uri = Uri::try_from(req.path?).ok()?;
    parts.version = if req.version? == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        parts.headers.append(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    Some(parts)
}

/// The headers of `headers` whose value is text (`HeaderValue::to_str`), as plugins see them.
pub fn utf8_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned()))).collect()
}
