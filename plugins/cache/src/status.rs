//! What the cache tells others: the `Cache-Status` header (RFC 9211) and the
//! `cache.status` metadata value.

/// How a request was answered, for `Cache-Status` and `cache.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served fresh from the cache (`ttl` seconds left; negative on `max-stale`).
    Hit {
        /// Seconds of freshness left.
        ttl: i64,
    },
    /// Served stale on stale-while-revalidate.
    StaleWhileRevalidate {
        /// Seconds past freshness.
        stale: u64,
    },
    /// A stale entry served because the origin failed (stale-if-error).
    StaleIfError {
        /// Seconds past freshness.
        stale: u64,
    },
    /// Forwarded: nothing stored under the key.
    UriMiss {
        /// Whether the response was stored.
        stored: bool,
    },
    /// Forwarded: the key is stored, not this variant.
    VaryMiss {
        /// Whether the response was stored.
        stored: bool,
    },
    /// Forwarded to revalidate a stale entry; `fwd_status` the origin's answer.
    Stale {
        /// The origin's status.
        fwd_status: u16,
        /// Whether the response (or the refreshed entry) was stored.
        stored: bool,
    },
    /// Forwarded because the client asked (`no-cache`).
    Request {
        /// Whether the response was stored.
        stored: bool,
    },
    /// A rule or the request made the cache step aside.
    Bypass,
    /// A method the cache does not serve.
    Method,
}

impl Outcome {
    /// The `cache.status` metadata value.
    pub fn metadata(self) -> &'static str {
        match self {
            Outcome::Hit { .. } => "hit",
            Outcome::StaleWhileRevalidate { .. } | Outcome::StaleIfError { .. } => "stale",
            Outcome::Stale { fwd_status: 304, .. } => "revalidated",
            Outcome::UriMiss { .. } | Outcome::VaryMiss { .. } | Outcome::Request { .. } | Outcome::Stale { .. } => "miss",
            Outcome::Bypass | Outcome::Method => "bypass",
        }
    }

    /// The `Cache-Status` value, e.g. `covet; hit; ttl=42`.
    pub fn header(self, name: &str, key: Option<&str>) -> String {
        let stored = |s: bool| if s { "; stored" } else { "" };
        let mut v = match self {
            Outcome::Hit { ttl } => format!("{name}; hit; ttl={ttl}"),
            Outcome::StaleWhileRevalidate { stale } => format!("{name}; hit; ttl=-{stale}; detail=stale-while-revalidate"),
            Outcome::StaleIfError { stale } => format!("{name}; hit; ttl=-{stale}; detail=stale-if-error"),
            Outcome::UriMiss { stored: s } => format!("{name}; fwd=uri-miss{}", stored(s)),
            Outcome::VaryMiss { stored: s } => format!("{name}; fwd=vary-miss{}", stored(s)),
            Outcome::Stale { fwd_status, stored: s } => format!("{name}; fwd=stale; fwd-status={fwd_status}{}", stored(s)),
            Outcome::Request { stored: s } => format!("{name}; fwd=request{}", stored(s)),
            Outcome::Bypass => format!("{name}; fwd=bypass"),
            Outcome::Method => format!("{name}; fwd=method"),
        };
        if let Some(key) = key {
            v.push_str("; key=");
            push_sf_string(&mut v, key);
        }
        v
    }
}

/// An RFC 8941 string: quoted, `\` and `"` escaped, other bytes outside
/// printable ASCII (the newline before key headers) written as a space.
fn push_sf_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push(' '),
        }
    }
    out.push('"');
}
