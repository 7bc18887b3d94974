//! [`ConfigError`]: every reason `init` refuses a graphql config. Each
//! message names the type and field (`Query.user`) or the config key at fault.

use thiserror::Error;

/// Why the graphql config (or its schema) was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Serde could not read the block (unknown field, wrong type).
    #[error("{0}")]
    Parse(String),
    /// Neither or both of `schema` and `schema_file`.
    #[error("give exactly one of `schema` (SDL text) and `schema_file` (a path)")]
    SchemaSource,
    /// `schema_file` could not be read.
    #[error("schema_file '{path}': {reason}")]
    SchemaFile {
        /// The resolved path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The SDL does not parse.
    #[error("schema: {0}")]
    Sdl(String),
    /// A construct of the SDL this plugin does not serve.
    #[error("schema: {0}")]
    Unsupported(String),
    /// A field's resolution (`@http` or `resolvers:`) is wrong.
    #[error("{field}: {reason}")]
    Field {
        /// `Type.field`.
        field: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// async-graphql refused the assembled schema (an unknown type, a bad reference).
    #[error("schema: {0}")]
    Schema(String),
    /// A duration that humantime cannot read.
    #[error("{key}: '{value}' is not a duration (e.g. 500ms, 30s)")]
    Duration {
        /// The key.
        key: String,
        /// Its value.
        value: String,
    },
}

impl ConfigError {
    /// A field error for `ty.field`.
    pub fn field(ty: &str, field: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Field { field: format!("{ty}.{field}"), reason: reason.into() }
    }
}
