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

use covet_telemetry::{AttrValue, Span, Tracer};
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

/// [`start`] with the installed tracer; `None` when tracing is off. Inlined
/// into the request path: an unrecorded span is ids only.
#[inline]
pub fn start_installed(parts: &Parts, conn: Conn<'_>, route: Option<(&str, Option<f64>)>, request_id: &str) -> Option<Span> {
    let span = covet_telemetry::tracer::start_server(&parts.headers, "", route.and_then(|(_, ratio)| ratio))?;
    if span.is_recording() {
        describe(&span, parts, &conn, route.map(|(pattern, _)| pattern), request_id);
    }
    Some(span)
}

#[inline(never)]
fn describe(span: &Span, parts: &Parts, conn: &Conn<'_>, route: Option<&str>, request_id: &str) {
    let method = parts.method.as_str();
    span.rename(match route {
        Some(route) => join(method, route),
        None => method.to_owned(),
    });
    let (address, port) = split_client(conn.client);
    let agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let attributes = [
        Some(("http.request.method", AttrValue::Str(method))),
        Some(("url.path", AttrValue::Str(parts.uri.path()))),
        Some(("url.scheme", AttrValue::Str(if conn.tls { "https" } else { "http" }))),
        route.map(|route| ("http.route", AttrValue::Str(route))),
        Some(("network.protocol.version", AttrValue::Str(protocol_version(parts.version)))),
        Some(("client.address", AttrValue::Str(address))),
        port.map(|port| ("client.port", AttrValue::I64(i64::from(port)))),
        agent.map(|agent| ("user_agent.original", AttrValue::Str(agent))),
        Some(("covet.request_id", AttrValue::Str(request_id))),
    ];
    // A span just started: the keys are new, and the values are copied
    // straight into its encoding.
    span.add_attributes(attributes.into_iter().flatten());
}

/// `"{a} {b}"` without the formatting machinery (~1,000 instructions less).
pub(crate) fn join(a: &str, b: &str) -> String {
    let mut name = String::with_capacity(a.len() + 1 + b.len());
    name.push_str(a);
    name.push(' ');
    name.push_str(b);
    name
}

/// Sets the response status (Error on a 5xx) and ends the span.
#[inline]
pub fn finish(span: &Span, status: StatusCode) {
    if span.is_recording() {
        finish_recorded(span, status);
    }
}

#[inline(never)]
fn finish_recorded(span: &Span, status: StatusCode) {
    // Only the host sets attributes on the server span, and this one last.
    span.add_attributes([("http.response.status_code", AttrValue::I64(i64::from(status.as_u16())))]);
    if status.is_server_error() {
        span.set_error(status.to_string());
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
