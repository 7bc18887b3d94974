//! The response sent back to the client: the upstream's status and
//! end-to-end headers (hop-by-hop ones removed; a `101` keeps `upgrade` and
//! gets `connection: upgrade`), `Via` appended, and the body streamed as the
//! endpoint sends it (trailers and tunnel bytes included: the host pumps the
//! stream). Header values are moved, not copied.

use covet_plugin_api::{Header, Headers, Response};

use crate::{
    forwarded,
    headers::{Hop, Upgrade},
};

/// The response headers for the client: `headers` from the upstream minus
/// hop-by-hop ones, plus `via_entry` (`1.1 covet`) when set.
pub fn response_headers(headers: Vec<(String, Vec<u8>)>, status: u16, via_entry: Option<&str>) -> Vec<Header> {
    let kind = if status == 101 { Upgrade::Answer } else { Upgrade::Never };
    let hop = Hop::scan(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())), kind);
    let mut via: Option<String> = None;
    let mut out = Vec::with_capacity(headers.len() + 2);
    for (name, value) in headers {
        if !hop.keeps(&name) {
            continue;
        }
        let value = text(value);
        if name == "via" && via_entry.is_some() {
            via = Some(match via {
                None => value,
                Some(earlier) => forwarded::extend(&earlier, &value),
            });
            continue;
        }
        out.push(Header::new(name, value));
    }
    if let Some(entry) = via_entry {
        let value = via.map_or_else(|| entry.to_owned(), |earlier| forwarded::extend(&earlier, entry));
        out.push(Header::new("via", value));
    }
    if hop.upgrade {
        out.push(Header::new("connection", "upgrade"));
    }
    out
}

/// The client's response: status, `headers`, and the upstream body as a stream.
pub fn response(status: u16, headers: Vec<Header>, body: covet_plugin_api::BodyStream) -> Response {
    let mut response = Response::stream(status, body);
    response.headers = Headers::from(headers);
    response
}

/// A header value as text: valid UTF-8 is moved; anything else (obs-text,
/// which the plugin API cannot carry) is converted lossily.
fn text(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(headers: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        headers.iter().map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec())).collect()
    }

    fn pairs(headers: &[Header]) -> Vec<(&str, &str)> {
        headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect()
    }

    #[test]
    fn hop_by_hop_removed_via_appended() {
        let out = response_headers(
            upstream(&[
                ("content-type", "text/plain"),
                ("connection", "keep-alive, x-conn"),
                ("keep-alive", "timeout=5"),
                ("x-conn", "1"),
                ("transfer-encoding", "chunked"),
                ("proxy-authenticate", "Basic"),
                ("trailer", "grpc-status"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
            ]),
            200,
            Some("1.1 covet"),
        );
        assert_eq!(
            pairs(&out),
            [
                ("content-type", "text/plain"),
                ("trailer", "grpc-status"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("via", "1.1 covet")
            ]
        );
    }

    #[test]
    fn upstream_via_is_extended_or_left_alone() {
        let out = response_headers(upstream(&[("via", "1.1 app")]), 200, Some("1.1 covet"));
        assert_eq!(pairs(&out), [("via", "1.1 app, 1.1 covet")]);
        let out = response_headers(upstream(&[("via", "1.1 app")]), 200, None);
        assert_eq!(pairs(&out), [("via", "1.1 app")]);
    }

    #[test]
    fn a_101_keeps_the_upgrade() {
        let out = response_headers(
            upstream(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-accept", "abc")]),
            101,
            None,
        );
        assert_eq!(pairs(&out), [("upgrade", "websocket"), ("sec-websocket-accept", "abc"), ("connection", "upgrade")]);
        let out = response_headers(upstream(&[("connection", "upgrade"), ("upgrade", "websocket")]), 200, None);
        assert!(out.is_empty());
    }

    #[test]
    fn non_utf8_values_survive_lossily() {
        let headers = vec![("x-latin".to_owned(), vec![b'a', 0xe9])];
        assert_eq!(pairs(&response_headers(headers, 200, None)), [("x-latin", "a\u{fffd}")]);
    }
}
