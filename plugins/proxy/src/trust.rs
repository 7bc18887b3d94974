//! Which immediate clients are trusted to send `X-Forwarded-*` and
//! `Forwarded` headers (`forwarded.trusted`): nobody (the default), everybody,
//! or the addresses in a list of CIDRs and single IPs. A trusted client's
//! headers are extended; anyone else's are replaced, so a client cannot
//! forge its address to the upstream.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::ConfigError;

/// The trust rule for incoming forwarding headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trust {
    /// No client is trusted: incoming forwarding headers are replaced.
    #[default]
    None,
    /// Every client is trusted (covet sits behind another proxy that always rewrites them).
    All,
    /// Clients whose address is in one of these networks.
    Networks(Vec<IpNet>),
}

impl Trust {
    /// Reads `"all"`, `"none"` or a list of IPs and CIDRs.
    pub fn parse(spec: &TrustSpec) -> Result<Trust, ConfigError> {
        match spec {
            TrustSpec::Word(word) if word == "all" => Ok(Trust::All),
            TrustSpec::Word(word) if word == "none" => Ok(Trust::None),
            TrustSpec::Word(word) => Err(ConfigError::BadTrusted(word.clone())),
            TrustSpec::List(list) if list.is_empty() => Ok(Trust::None),
            TrustSpec::List(list) => list.iter().map(|s| network(s)).collect::<Result<_, _>>().map(Trust::Networks),
        }
    }

    /// Whether the immediate client at `ip` is trusted (an unknown address never is, except with `all`).
    pub fn trusts(&self, ip: Option<IpAddr>) -> bool {
        match (self, ip) {
            (Trust::All, _) => true,
            (Trust::None, _) | (Trust::Networks(_), None) => false,
            (Trust::Networks(nets), Some(ip)) => nets.iter().any(|net| net.contains(&ip)),
        }
    }
}

/// `10.0.0.0/8`, or `127.0.0.1` / `::1` as a one-address network.
fn network(text: &str) -> Result<IpNet, ConfigError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| ConfigError::BadTrusted(text.to_owned()))
}

/// The client's IP from `ip` text (brackets and an IPv4-mapped IPv6 form
/// undone, so `::ffff:10.0.0.1` matches `10.0.0.0/8` and is forwarded as `10.0.0.1`).
pub fn client_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// `forwarded.trusted` as written: a keyword or a list.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(
    untagged,
    expecting = "\"all\", \"none\" or a list of IP addresses and CIDRs like [\"10.0.0.0/8\", \"127.0.0.1\"]"
)]
pub enum TrustSpec {
    /// `all` or `none`.
    Word(String),
    /// IPs and CIDRs.
    List(Vec<String>),
}

impl Default for TrustSpec {
    fn default() -> TrustSpec {
        TrustSpec::Word("none".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Result<Trust, ConfigError> {
        Trust::parse(&TrustSpec::List(items.iter().map(|s| (*s).to_owned()).collect()))
    }

    #[test]
    fn cidrs_and_single_addresses_of_both_families() {
        let trust = list(&["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1"]).unwrap();
        for ip in ["10.1.2.3", "127.0.0.1", "2001:db8::7", "::1", "::ffff:10.9.9.9"] {
            assert!(trust.trusts(client_ip(ip)), "{ip} should be trusted");
        }
        for ip in ["11.0.0.1", "127.0.0.2", "2001:db9::1", "::2", "::ffff:11.0.0.1"] {
            assert!(!trust.trusts(client_ip(ip)), "{ip} should not be trusted");
        }
        assert!(!trust.trusts(None));
    }

    #[test]
    fn keywords_and_empty_list() {
        assert_eq!(Trust::parse(&TrustSpec::Word("all".into())).unwrap(), Trust::All);
        assert_eq!(Trust::parse(&TrustSpec::Word("none".into())).unwrap(), Trust::None);
        assert_eq!(list(&[]).unwrap(), Trust::None);
        assert!(Trust::All.trusts(None));
        assert!(!Trust::None.trusts(client_ip("10.0.0.1")));
        assert!(Trust::All.trusts(client_ip("203.0.113.9")));
    }

    #[test]
    fn a_host_part_in_a_cidr_is_ignored() {
        // 10.1.2.3/8 means the /8 network, as operators write it.
        assert!(list(&["10.1.2.3/8"]).unwrap().trusts(client_ip("10.200.0.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = list(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err().to_string();
        assert!(err.contains("`10.0.0.0/33`") && err.contains("forwarded.trusted"), "{err}");
        let err = Trust::parse(&TrustSpec::Word("some".into())).unwrap_err().to_string();
        assert!(err.contains("`some`"), "{err}");
        assert!(list(&["localhost"]).is_err());
    }

    #[test]
    fn client_ip_forms() {
        assert_eq!(client_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(client_ip("::ffff:192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(client_ip(""), None);
        assert_eq!(client_ip("/run/covet.sock"), None);
    }
}
