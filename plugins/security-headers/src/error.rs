//! [`ConfigError`]: every reason `init` refuses a security-headers config,
//! each saying what to change.

use thiserror::Error;

/// Why the security-headers config was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Serde could not read the block (unknown field, wrong type).
    #[error("{0}")]
    Parse(String),
    /// A value outside the header's vocabulary.
    #[error("{field}: `{value}` is not valid; use {expected}, or false to send no {header}")]
    BadValue {
        /// The config key.
        field: &'static str,
        /// The header it sets.
        header: &'static str,
        /// The value as written.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// `true` for a header without a default value.
    #[error("{field}: there is no default {header}; give the policy as a string, e.g. {example}")]
    NoDefault {
        /// The config key.
        field: &'static str,
        /// The header it sets.
        header: &'static str,
        /// An example value.
        example: &'static str,
    },
    /// A value HTTP cannot carry (control characters, edge whitespace, empty).
    #[error("{field}: {message}")]
    BadHeaderValue {
        /// The config key.
        field: &'static str,
        /// The check's message.
        message: String,
    },
    /// `preload` without what the preload list requires.
    #[error(
        "hsts.preload needs include_subdomains: true and a max_age of at least one year (31536000 s), \
         as the browsers' preload list requires (hstspreload.org)"
    )]
    Preload,
}
