//! [`ConfigError`]: every reason `init` refuses the proxy's config. Each
//! message names the field and says what to write instead.

use thiserror::Error;

/// Why the proxy's config was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Serde could not read the block (unknown field, wrong type, missing `upstream`).
    #[error("{0}")]
    Parse(String),
    /// `upstream:` is empty.
    #[error("upstream: the name is empty; name an upstream from the manifest's `upstreams:` block")]
    EmptyUpstream,
    /// A prefix that is not an absolute path.
    #[error("{field}: `{value}` is not a path prefix; write it like `/api` (starting with `/`, no `?`, `#` or spaces)")]
    BadPrefix {
        /// `strip_prefix` or `rewrite_prefix`.
        field: &'static str,
        /// What was written.
        value: String,
    },
    /// `host:` is neither a keyword nor a valid header value.
    #[error(
        "host: `{0}` is not a valid Host value; use `preserve`, `upstream` or a host name like `api.internal:8080`"
    )]
    BadHost(String),
    /// `via:` names a pseudonym that is not a token.
    #[error(
        "via: `{0}` is not a valid name; use a single token like `covet-edge` (letters, digits, `-`, `.`, `_`), true or false"
    )]
    BadVia(String),
    /// An entry of `forwarded.trusted` is neither an IP address nor a CIDR.
    #[error(
        "forwarded.trusted: `{0}` is not an IP address or CIDR; write `10.0.0.0/8`, `127.0.0.1` or `::1`, or use \"all\" or \"none\" instead of a list"
    )]
    BadTrusted(String),
    /// A zero timeout.
    #[error("{0}: must be more than zero")]
    ZeroDuration(&'static str),
    /// `per_try_timeout` longer than `timeout`.
    #[error("per_try_timeout: must not be longer than timeout")]
    PerTryOverTimeout,
    /// The upstream cannot be used (not defined, not granted, host without upstreams).
    #[error("upstream `{name}`: {reason}")]
    Upstream {
        /// The upstream's name.
        name: String,
        /// The host's explanation.
        reason: String,
    },
}
