//! Origins: parsing `scheme://host[:port]` (what browsers send in `Origin`
//! and what `allow_origins` lists) and matching a request's origin against
//! the configured exact origins and patterns.
//!
//! A pattern has `*` in its host, each matching one or more host characters
//! (letters, digits, `-`, `.`), so `https://*.example.com` allows
//! `https://a.example.com` and `https://a.b.example.com` but not
//! `https://example.com`; its port may be `*` for any port, the default one
//! included (`http://localhost:*`). The scheme always matches exactly. Matching is
//! done on the parsed parts, so a `*` never reaches past the host.

use crate::error::ConfigError;

/// An origin split into its parts, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
}

impl<'a> Origin<'a> {
    /// Splits `text` (already lower-cased) into scheme, host and port; `None`
    /// when it is not `scheme://host[:port]` with a valid host and port.
    pub fn parse(text: &'a str) -> Option<Origin<'a>> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
            && scheme.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !scheme_ok {
            return None;
        }
        let (host, port) = split_port(rest)?;
        if host.is_empty() || !host.chars().all(is_host_char) {
            return None;
        }
        Some(Origin { scheme, host, port })
    }
}

/// Splits `host[:port]`, bracketed IPv6 hosts included.
fn split_port(rest: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']')? + 1;
        match &rest[end..] {
            "" => (&rest[..end], None),
            tail => (&rest[..end], Some(tail.strip_prefix(':')?)),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    match port {
        Some(p) if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || c == '*') => None,
        _ => Some((host, port)),
    }
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "-.[]:*".contains(c)
}

/// `allow_origins`, compiled.
#[derive(Debug)]
pub enum AllowOrigins {
    /// `*`: every origin.
    Any,
    /// Exact origins and patterns.
    List { exact: Vec<String>, patterns: Vec<Pattern> },
}

/// One origin with `*` in its host or port.
#[derive(Debug)]
pub struct Pattern {
    scheme: String,
    host: Vec<String>,
    port: PortPattern,
}

#[derive(Debug, PartialEq)]
enum PortPattern {
    Default,
    Exact(String),
    Any,
}

impl AllowOrigins {
    /// Compiles the configured entries (at least one).
    pub fn compile(entries: &[String]) -> Result<AllowOrigins, ConfigError> {
        if entries.is_empty() {
            return Err(ConfigError::NoOrigins);
        }
        if entries.iter().any(|e| e == "*") {
            return match entries.len() {
                1 => Ok(AllowOrigins::Any),
                _ => Err(ConfigError::StarWithOthers),
            };
        }
        let (mut exact, mut patterns) = (Vec::new(), Vec::new());
        for entry in entries {
            let lower = entry.to_ascii_lowercase();
            let origin = Origin::parse(&lower).ok_or_else(|| bad_origin(entry))?;
            if lower.contains('*') {
                patterns.push(Pattern::new(&origin, entry)?);
            } else if origin.host.contains(['[', ']']) && !origin.host.starts_with('[') {
                return Err(bad_origin(entry));
            } else {
                exact.push(lower);
            }
        }
        Ok(AllowOrigins::List { exact, patterns })
    }

    /// Whether `origin` (the request's `Origin` value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowOrigins::Any => true,
            AllowOrigins::List { exact, patterns } => {
                if exact.iter().any(|e| e.eq_ignore_ascii_case(origin)) {
                    return true;
                }
                if patterns.is_empty() || origin.contains('*') {
                    return false;
                }
                let lower = origin.to_ascii_lowercase();
                Origin::parse(&lower).is_some_and(|o| patterns.iter().any(|p| p.matches(&o)))
            }
        }
    }

    /// Whether every origin is allowed.
    pub fn is_any(&self) -> bool {
        matches!(self, AllowOrigins::Any)
    }
}

fn bad_origin(entry: &str) -> ConfigError {
    let hint = match entry.split_once("://") {
        None => "it has no scheme; write e.g. `https://app.example.com`",
        Some((_, rest)) if rest.contains('/') => "an origin has no path, not even a trailing `/`",
        Some(_) => "write scheme://host or scheme://host:port, with `*` only in the host or as the port",
    };
    ConfigError::BadOrigin { origin: entry.to_string(), hint }
}

impl Pattern {
    fn new(origin: &Origin<'_>, entry: &str) -> Result<Pattern, ConfigError> {
        if origin.scheme.contains('*') {
            return Err(bad_origin(entry));
        }
        let port = match origin.port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) if p.contains('*') => return Err(bad_origin(entry)),
            Some(p) => PortPattern::Exact(p.to_string()),
        };
        if origin.host.contains("**") || origin.host.starts_with('[') {
            return Err(bad_origin(entry));
        }
        let host = origin.host.split('*').map(str::to_string).collect();
        Ok(Pattern { scheme: origin.scheme.to_string(), host, port })
    }

    fn matches(&self, origin: &Origin<'_>) -> bool {
        let port_ok = match (&self.port, origin.port) {
            (PortPattern::Any, _) => true,
            (PortPattern::Default, None) => true,
            (PortPattern::Exact(p), Some(q)) => p == q,
            _ => false,
        };
        port_ok && self.scheme == origin.scheme && glob(&self.host, origin.host)
    }
}

/// Whether `text` is `parts` joined by runs of one or more host characters
/// (no brackets, colons or `*`: an IPv6 address never matches a wildcard).
fn glob(parts: &[String], text: &str) -> bool {
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut tail) = text.strip_prefix(first.as_str()) else { return false };
    for (i, part) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        // Leftmost match for inner parts keeps the rest as long as possible;
        // the last part must end the text.
        let found = if last {
            tail.len().checked_sub(part.len()).filter(|&at| at >= 1 && tail[at..] == **part)
        } else {
            tail.get(1..).and_then(|t| t.find(part.as_str())).map(|at| at + 1)
        };
        let Some(at) = found else { return false };
        if !tail[..at].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
            return false;
        }
        tail = &tail[at + part.len()..];
    }
    tail.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(entries: &[&str]) -> AllowOrigins {
        AllowOrigins::compile(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    fn refusal(entries: &[&str]) -> String {
        AllowOrigins::compile(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap_err().to_string()
    }

    #[test]
    fn exact_origins_match_case_insensitively_and_nothing_else() {
        let allow = origins(&["https://App.example.com", "http://localhost:3000"]);
        assert!(allow.allows("https://app.example.com"));
        assert!(allow.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(allow.allows("http://localhost:3000"));
        assert!(!allow.allows("http://app.example.com"), "scheme differs");
        assert!(!allow.allows("https://app.example.com:8443"), "port differs");
        assert!(!allow.allows("http://localhost:3001"));
        assert!(!allow.allows("null"));
    }

    #[test]
    fn host_wildcards_need_at_least_one_character_and_stay_in_the_host() {
        let allow = origins(&["https://*.example.com"]);
        assert!(allow.allows("https://a.example.com"));
        assert!(allow.allows("https://a.b.example.com"));
        assert!(!allow.allows("https://example.com"));
        assert!(!allow.allows("https://.example.com"), "the wildcard needs a label");
        assert!(!allow.allows("http://a.example.com"), "scheme is exact");
        assert!(!allow.allows("https://a.example.com:8443"), "no port in the pattern: default port only");
        assert!(!allow.allows("https://evil.com/.example.com"));
        assert!(!allow.allows("https://evilexample.com"));
        assert!(!allow.allows("https://a.example.com.evil.com"));
        assert!(!allow.allows("https://*.example.com"), "a literal star is not a host");
    }

    #[test]
    fn port_wildcards_and_inner_wildcards() {
        let allow = origins(&["http://localhost:*", "https://api-*.eu.example.com"]);
        assert!(allow.allows("http://localhost:3000"));
        assert!(allow.allows("http://localhost:1"));
        assert!(allow.allows("http://localhost"), "`:*` is any port, the default one included");
        assert!(!allow.allows("https://localhost:3000"));
        assert!(allow.allows("https://api-7.eu.example.com"));
        assert!(!allow.allows("https://api-.eu.example.com"));
        assert!(!allow.allows("https://api-7.us.example.com"));
    }

    #[test]
    fn star_allows_all_and_must_stand_alone() {
        assert!(origins(&["*"]).is_any());
        assert!(origins(&["*"]).allows("null"));
        assert!(refusal(&["*", "https://a.test"]).contains("`*`"));
        assert!(refusal(&[]).contains("allow_origins"));
    }

    #[test]
    fn malformed_origins_are_refused_with_a_hint() {
        assert!(refusal(&["example.com"]).contains("no scheme"), "{}", refusal(&["example.com"]));
        assert!(refusal(&["https://example.com/"]).contains("no path"));
        assert!(refusal(&["https://example.com:port"]).contains("scheme://host"));
        assert!(refusal(&["https://**.example.com"]).contains("https://**.example.com"));
        assert!(refusal(&["https://example.com:8*"]).contains("`*`"));
        assert!(refusal(&["*://example.com"]).contains("scheme://host"));
    }

    #[test]
    fn ipv6_origins_are_exact_only() {
        let allow = origins(&["http://[::1]:8080"]);
        assert!(allow.allows("http://[::1]:8080"));
        assert!(!allow.allows("http://[::1]:8081"));
    }
}
