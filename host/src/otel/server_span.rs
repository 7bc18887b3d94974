//! The server span of a request: started once the route is known (so the
//! route's `trace_sample_ratio` applies; a request no route answers uses the
//! default ratio), a child of the caller's `traceparent` when it sends one,
//! and ended when the response head is ready (with the access-log line).
//!
//! Name `"{METHOD} {route}"` (no route: `"{METHOD}"`); attributes
//! `http.request.method`, `url.path`, `url.scheme`, `http.route`,
//! `network.protocol.version`, `client.address`, `client.port`,
//! `user_agent.original`, `covet.request_id` and, at the end,
//! `http.response.status_code`; status Error on a 5xx. Names and attributes
//! are only made for recorded (sampled) spans.

use covet_telemetry::{KeyValue, Span, Tracer, Value};
use http::{Method, StatusCode, Version, header, request::Parts};

/// What the server span says about the connection.
pub struct Conn<'a> {
    /// `ip:port` of the client.
    pub client: &'a str,
    /// Whether the request came over TLS (`url.scheme` https).
    pub tls: bool,
}

/// Starts the server span of a request whose route is `route` (its pattern
/// and sampling ratio), or that no route answers (`None`).
pub fn start(tracer: &Tracer, parts: &Parts, conn: Conn<'_>, route: Option<(&str, Option<f64>)>, request_id: &str) -> Span {
    let span = tracer.start_server(&parts.headers, "", route.and_then(|(_, ratio)| ratio));
    if span.is_recording() {
        describe(&span, parts, &conn, route.map(|(pattern, _)| pattern), request_id);
    }
    span
}

/// [`start`] with the installed tracer; `None` when tracing is off.
pub fn start_installed(parts: &Parts, conn: Conn<'_>, route: Option<(&str, Option<f64>)>, request_id: &str) -> Option<Span> {
    let span = covet_telemetry::tracer::start_server(&parts.headers, "", route.and_then(|(_, ratio)| ratio))?;
    if span.is_recording() {
        describe(&span, parts, &conn, route.map(|(pattern, _)| pattern), request_id);
    }
    Some(span)
}

fn describe(span: &Span, parts: &Parts, conn: &Conn<'_>, route: Option<&str>, request_id: &str) {
    let method = parts.method.as_str();
    span.rename(match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    });
    let (address, port) = split_client(conn.client);
    let agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let attributes = [
        Some(KeyValue::new("http.request.method", method_value(&parts.method))),
        Some(KeyValue::new("url.path", parts.uri.path().to_owned())),
        Some(KeyValue::new("url.scheme", if conn.tls { "https" } else { "http" })),
        route.map(|route| KeyValue::new("http.route", route.to_owned())),
        Some(KeyValue::new("network.protocol.version", protocol_version(parts.version))),
        Some(KeyValue::new("client.address", address.to_owned())),
        port.map(|port| KeyValue::new("client.port", i64::from(port))),
        agent.map(|agent| KeyValue::new("user_agent.original", agent.to_owned())),
        Some(KeyValue::new("covet.request_id", request_id.to_owned())),
    ];
    span.set_attributes(attributes.into_iter().flatten());
}

/// `http.request.method`: the standard methods as static strings (no allocation).
fn method_value(method: &Method) -> Value {
    const STANDARD: [Method; 9] =
        [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::HEAD, Method::OPTIONS, Method::PATCH, Method::CONNECT, Method::TRACE];
    const NAMES: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
    match STANDARD.iter().position(|m| m == method) {
        Some(i) => Value::from(NAMES[i]),
        None => Value::from(method.as_str().to_owned()),
    }
}

/// Sets the response status (Error on a 5xx) and ends the span.
pub fn finish(span: &Span, status: StatusCode) {
    if span.is_recording() {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            span.set_error(status.to_string());
        }
    }
    span.end();
}

/// `network.protocol.version`: `1.1`, `2`, `3`.
pub fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `ip:port` (`[v6]:port`) into the address and the port.
fn split_client(client: &str) -> (&str, Option<u16>) {
    match client.rsplit_once(':') {
        Some((ip, port)) if port.parse::<u16>().is_ok() => {
            let ip = ip.strip_prefix('[').and_then(|ip| ip.strip_suffix(']')).unwrap_or(ip);
            (ip, port.parse().ok())
        }
        _ => (client, None),
    }
}

#[cfg(test)]
mod tests;
