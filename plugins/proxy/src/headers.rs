//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so
//! the proxy drops them both ways: `connection`, `keep-alive`,
//! `proxy-connection`, `te`, `transfer-encoding`, `upgrade`,
//! `proxy-authenticate`, `proxy-authorization`, and every header the
//! `connection` header names. Two exceptions keep a hop's meaning across:
//! `te: trailers` (gRPC needs it end to end) is sent on as exactly that, and
//! an upgrade (a request whose `connection` lists `upgrade` and that carries
//! `upgrade`, or a `101` answer) keeps `connection: upgrade` and `upgrade`.
//! `trailer` is end to end and kept.

pub use covet_plugin_api::http_syntax::is_hop_by_hop;

/// What a message's own headers say about its hop: the names its
/// `connection` header lists, whether it is an upgrade, whether it asked for trailers.
#[derive(Debug, Default)]
pub struct Hop {
    /// Header names listed in `connection` (besides `upgrade`, `close`, `keep-alive`).
    listed: Vec<String>,
    /// An upgrade whose `connection: upgrade` and `upgrade` headers go on.
    pub upgrade: bool,
    /// `te` lists `trailers`.
    pub te_trailers: bool,
}

impl Hop {
    /// Reads the `connection`, `upgrade` and `te` headers of a message.
    /// `may_upgrade`: whether this message can be an upgrade (a request, or a
    /// `101` answer, for which `connection: upgrade` is not required).
    pub fn scan<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>, may_upgrade: Upgrade) -> Hop {
        let mut hop = Hop::default();
        let (mut asks_upgrade, mut has_upgrade) = (may_upgrade == Upgrade::Answer, false);
        for (name, value) in headers {
            match name {
                "connection" => {
                    for token in tokens(value) {
                        let token = token.to_ascii_lowercase();
                        match token.as_str() {
                            "upgrade" => asks_upgrade = true,
                            "close" => {}
                            listed if is_hop_by_hop(listed) => {}
                            _ => hop.listed.push(token),
                        }
                    }
                }
                "upgrade" => has_upgrade = !value.is_empty(),
                "te" => hop.te_trailers |= tokens(value).any(|t| t.eq_ignore_ascii_case("trailers")),
                _ => {}
            }
        }
        hop.upgrade = may_upgrade != Upgrade::Never && asks_upgrade && has_upgrade;
        hop
    }

    /// Whether header `name` (lower-case) goes on to the next hop as it is.
    /// `connection` and `te` never do: the caller adds `connection: upgrade`
    /// and `te: trailers` when [`Hop::upgrade`] / [`Hop::te_trailers`] say so.
    pub fn keeps(&self, name: &str) -> bool {
        if is_hop_by_hop(name) {
            return self.upgrade && name == "upgrade";
        }
        !self.listed.iter().any(|listed| listed == name)
    }
}

/// Whether a message may be an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// A request: an upgrade when `connection` lists `upgrade` and `upgrade` is set.
    Request,
    /// A `101` answer: an upgrade when `upgrade` is set.
    Answer,
    /// Any other answer.
    Never,
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
fn tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value).unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use covet_plugin_api::http_syntax::HOP_BY_HOP;

    fn hop(headers: &[(&str, &str)], kind: Upgrade) -> Hop {
        Hop::scan(headers.iter().map(|(n, v)| (*n, v.as_bytes())), kind)
    }

    #[test]
    fn the_static_list_is_dropped_and_end_to_end_headers_kept() {
        let h = hop(&[], Upgrade::Request);
        for name in HOP_BY_HOP {
            assert!(!h.keeps(name), "{name}");
        }
        for name in ["trailer", "content-type", "content-length", "host", "x-forwarded-for", "authorization"] {
            assert!(h.keeps(name), "{name}");
        }
    }

    #[test]
    fn names_listed_in_connection_are_dropped() {
        let h = hop(&[("connection", "keep-alive, X-Secret ,close"), ("connection", "x-other")], Upgrade::Request);
        assert!(!h.keeps("x-secret") && !h.keeps("x-other") && !h.keeps("keep-alive"));
        assert!(h.keeps("x-public"));
        assert!(!h.upgrade);
    }

    #[test]
    fn te_trailers_is_noticed() {
        assert!(hop(&[("te", "gzip, Trailers")], Upgrade::Request).te_trailers);
        assert!(!hop(&[("te", "gzip")], Upgrade::Request).te_trailers);
    }

    #[test]
    fn an_upgrade_request_keeps_upgrade() {
        let h = hop(&[("connection", "Upgrade"), ("upgrade", "websocket")], Upgrade::Request);
        assert!(h.upgrade && h.keeps("upgrade") && !h.keeps("connection"));
        // `upgrade` without `connection: upgrade` is not an upgrade (RFC 9110 §7.8).
        let h = hop(&[("upgrade", "websocket")], Upgrade::Request);
        assert!(!h.upgrade && !h.keeps("upgrade"));
        let h = hop(&[("connection", "upgrade")], Upgrade::Request);
        assert!(!h.upgrade);
    }

    #[test]
    fn only_a_101_answer_upgrades() {
        assert!(hop(&[("upgrade", "websocket")], Upgrade::Answer).upgrade);
        let h = hop(&[("connection", "upgrade"), ("upgrade", "websocket")], Upgrade::Never);
        assert!(!h.upgrade && !h.keeps("upgrade"));
    }
}
