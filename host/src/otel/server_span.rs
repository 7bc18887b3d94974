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

use covet_telemetry::{KeyValue, Span, Tracer};
use http::{StatusCode, Version, header, request::Parts};

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

fn describe(span: &Span, parts: &Parts, conn: &Conn<'_>, route: Option<&str>, request_id: &str) {
    let method = parts.method.as_str().to_owned();
    span.rename(match route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    });
    span.set_attribute(KeyValue::new("http.request.method", method));
    span.set_attribute(KeyValue::new("url.path", parts.uri.path().to_owned()));
    span.set_attribute(KeyValue::new("url.scheme", if conn.tls { "https" } else { "http" }));
    if let Some(route) = route {
        span.set_attribute(KeyValue::new("http.route", route.to_owned()));
    }
    span.set_attribute(KeyValue::new("network.protocol.version", protocol_version(parts.version)));
    let (address, port) = split_client(conn.client);
    span.set_attribute(KeyValue::new("client.address", address.to_owned()));
    if let Some(port) = port {
        span.set_attribute(KeyValue::new("client.port", i64::from(port)));
    }
    if let Some(agent) = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        span.set_attribute(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    span.set_attribute(KeyValue::new("covet.request_id", request_id.to_owned()));
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
