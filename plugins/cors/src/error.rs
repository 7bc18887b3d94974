//! [`ConfigError`]: every reason `init` refuses a cors config, each saying
//! what to change.

use thiserror::Error;

/// Why the cors config was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Serde could not read the block (unknown field, wrong type).
    #[error("{0}")]
    Parse(String),
    /// `allow_origins` missing or empty.
    #[error(
        "allow_origins: give at least one origin (`https://app.example.com`, a pattern like `https://*.example.com`, or `*` for any)"
    )]
    NoOrigins,
    /// `*` listed next to other origins.
    #[error("allow_origins: `*` allows every origin; give it alone or list the origins without it")]
    StarWithOthers,
    /// An entry of `allow_origins` that is not an origin.
    #[error("allow_origins: `{origin}` is not an origin: {hint}")]
    BadOrigin {
        /// The entry as written.
        origin: String,
        /// What is wrong with it.
        hint: &'static str,
    },
    /// `*` origins with credentials.
    #[error(
        "allow_origins `*` cannot be combined with allow_credentials: true: browsers refuse `access-control-allow-origin: *` \
         on credentialed requests; list the origins instead (patterns like `https://*.example.com` work)"
    )]
    StarWithCredentials,
    /// A method that is not an HTTP token.
    #[error("allow_methods: `{0}` is not an HTTP method name")]
    BadMethod(String),
    /// `allow_methods` given but empty.
    #[error("allow_methods: the list is empty; leave the field out for GET, HEAD, POST")]
    NoMethods,
    /// A header name that is not valid.
    #[error("{field}: {message}")]
    BadHeader {
        /// `allow_headers` or `expose_headers`.
        field: &'static str,
        /// The check's message.
        message: String,
    },
    /// `max_age` beyond what fits the header sensibly.
    #[error("max_age: {0} seconds is more than a day; browsers cap it (Chrome at 2h, Firefox at 24h)")]
    MaxAgeTooLong(u64),
}
