//! The values of the forwarding headers the proxy writes: an RFC 7239
//! `Forwarded` element (`for=192.0.2.7;proto=https;host=example.com`, an
//! IPv6 node quoted in brackets, a value that is not a token quoted), the
//! `X-Forwarded-For` node, and lists extended with one more entry.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// One `Forwarded` element for this hop.
pub fn element(client: Option<IpAddr>, proto: &str, host: Option<&str>) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("for=");
    match client {
        Some(IpAddr::V4(ip)) => push_ipv4(&mut out, ip),
        Some(IpAddr::V6(ip)) => {
            let _ = write!(out, "\"[{ip}]\"");
        }
        None => out.push_str("unknown"),
    }
    out.push_str(";proto=");
    out.push_str(proto);
    if let Some(host) = host {
        out.push_str(";host=");
        push_value(&mut out, host);
    }
    out
}

/// The client as an `X-Forwarded-For` entry (IPv6 without brackets, as is usual there).
pub fn xff_node(client: Option<IpAddr>) -> String {
    match client {
        Some(IpAddr::V4(ip)) => {
            let mut out = String::with_capacity(15);
            push_ipv4(&mut out, ip);
            out
        }
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

/// `ip` in dotted decimal, as its `Display` writes it, without the
/// formatting machinery (done twice per proxied request; `Display` for an
/// IPv4 address cost ~1,300 instructions).
fn push_ipv4(out: &mut String, ip: Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// `earlier, ours` (or `ours` when there is nothing earlier).
pub fn extend(earlier: &str, ours: &str) -> String {
    let earlier = earlier.trim().trim_end_matches(',');
    if earlier.is_empty() {
        return ours.to_owned();
    }
    let mut out = String::with_capacity(earlier.len() + 2 + ours.len());
    out.push_str(earlier);
    out.push_str(", ");
    out.push_str(ours);
    out
}

/// A parameter value: as is when it is a token, else a quoted string.
fn push_value(out: &mut String, value: &str) {
    if covet_plugin_api::http_syntax::is_token(value) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn ipv4_element() {
        assert_eq!(
            element(ip("192.0.2.7"), "https", Some("example.com")),
            "for=192.0.2.7;proto=https;host=example.com"
        );
    }

    #[test]
    fn ipv6_is_quoted_in_brackets_and_host_with_port_quoted() {
        assert_eq!(
            element(ip("2001:db8::1"), "http", Some("example.com:8080")),
            "for=\"[2001:db8::1]\";proto=http;host=\"example.com:8080\""
        );
    }

    #[test]
    fn unknown_client_and_no_host() {
        assert_eq!(element(None, "http", None), "for=unknown;proto=http");
        for text in ["0.0.0.0", "9.10.99.100", "255.254.109.1", "127.0.0.1", "192.0.2.7"] {
            assert_eq!(xff_node(ip(text)), text);
            assert_eq!(element(ip(text), "http", None), format!("for={text};proto=http"));
        }
        assert_eq!(xff_node(None), "unknown");
        assert_eq!(xff_node(ip("::1")), "::1");
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let mut out = String::new();
        push_value(&mut out, "a\"b\\c d");
        assert_eq!(out, "\"a\\\"b\\\\c d\"");
    }

    #[test]
    fn lists_are_extended() {
        assert_eq!(extend("203.0.113.1, 10.0.0.1", "10.0.0.2"), "203.0.113.1, 10.0.0.1, 10.0.0.2");
        assert_eq!(extend("  ", "10.0.0.2"), "10.0.0.2");
        assert_eq!(extend("a,", "b"), "a, b");
    }
}
