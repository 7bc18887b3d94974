//! The plugin's `config:` block and the per-field HTTP resolution spec
//! ([`HttpSpec`]) shared by the `@http` directive and the `resolvers:` block.
//!
//! ```yaml
//! config:
//!   schema: |                       # SDL (or schema_file: path, relative to the manifest)
//!     type Query { user(id: ID!): User @http(upstream: "users", path: "/users/{args.id}") }
//!     type User { id: ID! name: String }
//!   resolvers:                      # optional: the same keys as @http, keyed Type.field
//!     Query.user: { upstream: users, path: "/users/{args.id}", select: data }
//!   timeout: 10s                    # default per upstream call
//!   cache_namespace: graphql        # state namespace for cache_ttl (grant it)
//!   graphiql: false                 # GET with Accept: text/html serves GraphiQL
//!   introspection: true
//! ```

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;

use crate::error::ConfigError;

/// The `config:` block as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The schema as SDL text.
    #[serde(default)]
    pub schema: Option<String>,
    /// A file holding the SDL (relative to the manifest's directory).
    #[serde(default)]
    pub schema_file: Option<String>,
    /// Resolution specs keyed `Type.field` (instead of, or besides, `@http`).
    #[serde(default)]
    pub resolvers: BTreeMap<String, HttpSpec>,
    /// Default timeout of one upstream call.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// The shared-state namespace of `cache_ttl` entries.
    #[serde(default = "default_namespace")]
    pub cache_namespace: String,
    /// Serve the GraphiQL page to browsers (GET, `Accept: text/html`, no `query`).
    #[serde(default)]
    pub graphiql: bool,
    /// Answer introspection queries (`__schema`, `__type`).
    #[serde(default = "yes")]
    pub introspection: bool,
    /// The traffic-control block (`filter.rs`), kept as JSON for that module.
    #[serde(default)]
    pub limits: Option<serde_json::Value>,
}

fn default_timeout() -> String {
    "10s".into()
}

fn default_namespace() -> String {
    "graphql".into()
}

fn yes() -> bool {
    true
}

/// How one field is resolved by an HTTP call (the `@http` directive's arguments).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// A named upstream (with `path`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// The path template under the upstream.
    #[serde(default)]
    pub path: Option<String>,
    /// An absolute URL template (outbound HTTP; instead of upstream + path).
    #[serde(default)]
    pub url: Option<String>,
    /// The method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers: templates by name.
    #[serde(default)]
    pub headers: Headers,
    /// A body template; placeholders in it are written as JSON values.
    #[serde(default)]
    pub body: Option<String>,
    /// A dotted path into the JSON answer (`data.user`, `items.0`); default the whole answer.
    #[serde(default)]
    pub select: Option<String>,
    /// Batch the keys of sibling fields into one call.
    #[serde(default)]
    pub batch: Option<BatchSpec>,
    /// Cache the call's answer in shared state for this long (`30s`).
    #[serde(default)]
    pub cache_ttl: Option<String>,
    /// This call's timeout (default: the config's `timeout`).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Headers as a map (`{x-user: "{meta.jwt.sub}"}`) or a list of `{name, value}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Headers {
    /// `name: template`.
    Map(BTreeMap<String, String>),
    /// `[{name, value}]` (the directive's form).
    List(Vec<HeaderSpec>),
}

impl Default for Headers {
    fn default() -> Headers {
        Headers::List(Vec::new())
    }
}

impl Headers {
    /// The pairs, in order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Headers::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Headers::List(l) => l.iter().map(|h| (h.name.clone(), h.value.clone())).collect(),
        }
    }
}

/// One header of the directive's list form.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// The header name.
    pub name: String,
    /// Its value template.
    pub value: String,
}

/// Batching: each field instance contributes `key`; one call carries all
/// keys as `{batch.keys}` (joined by `separator`); answer items are matched
/// back by their `match` field.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// The key template of one instance (`{parent.authorId}`, `{args.id}`).
    pub key: String,
    /// The field of each answer item compared with the keys (default `id`).
    #[serde(default = "default_match", rename = "match")]
    pub match_field: String,
    /// Joins the keys in `{batch.keys}` (default `,`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// At most this many keys per call (default 100).
    #[serde(default = "default_max")]
    pub max_keys: usize,
}

fn default_match() -> String {
    "id".into()
}

fn default_separator() -> String {
    ",".into()
}

fn default_max() -> usize {
    100
}

/// A humantime duration, or the error naming `key`.
pub fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value).map_err(|_| ConfigError::Duration { key: key.into(), value: value.into() })
}
