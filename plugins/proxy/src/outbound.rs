//! The headers of the request sent upstream: the client's end-to-end
//! headers (borrowed, not copied), then what this hop adds: the
//! `X-Forwarded-*` trio, `Forwarded`, `Via`, the configured `Host`, and
//! `connection: upgrade` / `te: trailers` where they must go on.
//!
//! Trust: a trusted client's `X-Forwarded-For` and `Forwarded` are extended
//! with its address and its `X-Forwarded-Proto/-Host` kept; anyone else's
//! are dropped and replaced by what this hop saw. With `x_forwarded: false`
//! (or `rfc7239: false`) the proxy writes none of those headers: a trusted
//! client's go on unchanged, anyone else's are dropped.

use std::{borrow::Cow, net::IpAddr};

use covet_plugin_api::{Header, HttpVersion};

use crate::{
    config::{HostRule, Policy},
    forwarded,
    headers::{Hop, Upgrade},
};

/// What this hop knows about the client.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The immediate client's address (`None`: not an IP, e.g. a unix socket).
    pub ip: Option<IpAddr>,
    /// Whether it spoke TLS (or QUIC) to covet.
    pub tls: bool,
    /// The HTTP version it spoke.
    pub version: HttpVersion,
}

impl Client {
    fn proto(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// A header to send: name and value, borrowed from the request where possible.
pub type OutHeader<'a> = (&'a str, Cow<'a, str>);

/// The incoming forwarding headers worth keeping (from a trusted client).
#[derive(Default)]
struct Seen<'a> {
    host: Option<&'a str>,
    xff: Vec<&'a str>,
    proto: Option<&'a str>,
    forwarded_host: Option<&'a str>,
    forwarded: Vec<&'a str>,
    via: Vec<&'a str>,
}

/// The upstream request's headers for `incoming` (names lower-case, as the host gives them).
pub fn request_headers<'a>(incoming: &'a [Header], client: &Client, policy: &'a Policy) -> Vec<OutHeader<'a>> {
    let hop = Hop::scan(incoming.iter().map(|h| (h.name.as_str(), h.value.as_str().as_bytes())), Upgrade::Request);
    let trusted = policy.trust.trusts(client.ip);
    let mut seen = Seen::default();
    let mut out: Vec<OutHeader<'a>> = Vec::with_capacity(incoming.len() + 6);
    for header in incoming {
        let (name, value) = (header.name.as_str(), header.value.as_str());
        if !hop.keeps(name) {
            continue;
        }
        let ours = match name {
            "host" => {
                seen.host = Some(value);
                policy.host != HostRule::Preserve
            }
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" if policy.x_forwarded => {
                if trusted {
                    seen.note(name, value);
                }
                true
            }
            "forwarded" if policy.rfc7239 => {
                if trusted {
                    seen.forwarded.push(value);
                }
                true
            }
            "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "forwarded" => !trusted,
            "via" if policy.via.is_some() => {
                seen.via.push(value);
                true
            }
            _ => false,
        };
        if !ours {
            out.push((name, Cow::Borrowed(value)));
        }
    }
    add_forwarding(&mut out, &seen, client, policy);
    add_hop(&mut out, &hop, &seen, client, policy);
    out
}

impl<'a> Seen<'a> {
    fn note(&mut self, name: &str, value: &'a str) {
        match name {
            "x-forwarded-for" => self.xff.push(value),
            "x-forwarded-proto" => _ = self.proto.get_or_insert(value),
            _ => _ = self.forwarded_host.get_or_insert(value),
        }
    }
}

/// `X-Forwarded-*` and `Forwarded`.
fn add_forwarding<'a>(out: &mut Vec<OutHeader<'a>>, seen: &Seen<'a>, client: &Client, policy: &Policy) {
    if policy.x_forwarded {
        let node = forwarded::xff_node(client.ip);
        let xff = if seen.xff.is_empty() { node } else { forwarded::extend(&seen.xff.join(", "), &node) };
        out.push(("x-forwarded-for", Cow::Owned(xff)));
        out.push(("x-forwarded-proto", Cow::Borrowed(seen.proto.unwrap_or(client.proto()))));
        if let Some(host) = seen.forwarded_host.or(seen.host) {
            out.push(("x-forwarded-host", Cow::Borrowed(host)));
        }
    }
    if policy.rfc7239 {
        let element = forwarded::element(client.ip, client.proto(), seen.host);
        let value =
            if seen.forwarded.is_empty() { element } else { forwarded::extend(&seen.forwarded.join(", "), &element) };
        out.push(("forwarded", Cow::Owned(value)));
    }
}

/// `Via`, `Host`, and the hop headers that go on (`connection: upgrade`, `te: trailers`).
fn add_hop<'a>(out: &mut Vec<OutHeader<'a>>, hop: &Hop, seen: &Seen<'a>, client: &Client, policy: &'a Policy) {
    if let Some(via) = &policy.via {
        let entry = via.entry(client.version);
        let value = if seen.via.is_empty() {
            Cow::Borrowed(entry)
        } else {
            Cow::Owned(forwarded::extend(&seen.via.join(", "), entry))
        };
        out.push(("via", value));
    }
    if let HostRule::Literal(host) = &policy.host {
        out.push(("host", Cow::Borrowed(host.as_str())));
    }
    if hop.upgrade {
        out.push(("connection", Cow::Borrowed("upgrade")));
    }
    if hop.te_trailers {
        out.push(("te", Cow::Borrowed("trailers")));
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
