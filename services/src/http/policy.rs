//! Which hosts a plugin may send HTTP requests to ([`OutboundPolicy`]).
//!
//! Entries are lower-case `host` (any port), `host:port` (that port only) or
//! `*.example.com` / `*.example.com:443` (any subdomain, not the bare domain).
//! IPv6 addresses are written in brackets: `[::1]:8080`. An empty policy
//! denies everything, which is the default.

/// The hosts one plugin may reach; empty denies all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    /// `example.com` for both `example.com` and `*.example.com`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl OutboundPolicy {
    /// A policy from manifest entries; an entry that is not a valid
    /// `host[:port]` is returned as the error (the manifest checks them first).
    pub fn new<I, S>(entries: I) -> Result<OutboundPolicy, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entries = entries.into_iter().map(|e| parse_entry(e.as_ref()).ok_or_else(|| e.as_ref().to_owned()));
        Ok(OutboundPolicy { entries: entries.collect::<Result<_, _>>()? })
    }

    /// The policy that denies every host.
    pub fn deny_all() -> OutboundPolicy {
        OutboundPolicy::default()
    }

    /// Whether `host` (any case; IPv6 with or without brackets) on `port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = normalise_host(host);
        self.entries.iter().any(|e| e.port.is_none_or(|p| p == port) && e.matches(&host))
    }

    /// Whether the policy allows nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Entry {
    fn matches(&self, host: &str) -> bool {
        if !self.wildcard {
            return host == self.host;
        }
        host.strip_suffix(self.host.as_str()).is_some_and(|head| head.len() > 1 && head.ends_with('.'))
    }
}

/// Whether `entry` is a valid policy entry (what the manifest accepts).
pub fn is_valid_entry(entry: &str) -> bool {
    parse_entry(entry).is_some()
}

fn parse_entry(entry: &str) -> Option<Entry> {
    let text = entry.trim().to_ascii_lowercase();
    let (wildcard, rest) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    if rest.is_empty() || rest.contains(['/', '@', '*']) {
        return None;
    }
    let authority: http::uri::Authority = rest.parse().ok()?;
    if authority.as_str() != rest || authority.host().is_empty() {
        return None;
    }
    let host = normalise_host(authority.host());
    if wildcard && host.contains(':') {
        return None;
    }
    Some(Entry { host, wildcard, port: authority.port_u16() })
}

fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(entries.iter().copied()).unwrap()
    }

    #[test]
    fn empty_denies_everything() {
        assert!(!OutboundPolicy::deny_all().allows("example.com", 443));
    }

    #[test]
    fn host_allows_any_port_host_port_only_that_one() {
        let p = policy(&["api.example.com", "127.0.0.1:8080"]);
        assert!(p.allows("API.example.com", 443));
        assert!(p.allows("api.example.com", 8443));
        assert!(p.allows("127.0.0.1", 8080));
        assert!(!p.allows("127.0.0.1", 8081));
        assert!(!p.allows("example.com", 443));
    }

    #[test]
    fn wildcard_matches_subdomains_not_the_domain() {
        let p = policy(&["*.example.com:443"]);
        assert!(p.allows("a.example.com", 443));
        assert!(p.allows("a.b.example.com", 443));
        assert!(!p.allows("example.com", 443));
        assert!(!p.allows("badexample.com", 443));
        assert!(!p.allows("a.example.com", 80));
    }

    #[test]
    fn ipv6_in_brackets() {
        let p = policy(&["[::1]:9000"]);
        assert!(p.allows("[::1]", 9000));
        assert!(p.allows("::1", 9000));
    }

    #[test]
    fn invalid_entries_are_refused() {
        for bad in ["", "http://x", "x/y", "u@x", "*", "*.", "a.*.com", "*.[::1]"] {
            assert!(OutboundPolicy::new([bad]).is_err(), "{bad:?} accepted");
        }
    }
}
