//! The `config:` block as Rust types ([`Settings`]) and its compiled form
//! ([`Policy`]): origins parsed, lists checked and lower-cased, and the
//! preflight header values joined once so requests only look things up.

use std::{fmt, time::Duration};

use covet_plugin_api::http_syntax;
use serde::{
    Deserialize, Deserializer,
    de::{self, SeqAccess, Visitor},
};

use crate::{error::ConfigError, origin::AllowOrigins};

/// The whole `config:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Allowed origins: exact, patterns, or `*`.
    #[serde(default, deserialize_with = "string_or_list")]
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for.
    #[serde(default = "default_methods", deserialize_with = "string_or_list")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for; `*` mirrors the request.
    #[serde(default, deserialize_with = "string_or_list")]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default, deserialize_with = "string_or_list")]
    pub expose_headers: Vec<String>,
    /// Whether cookies and HTTP auth may be sent cross-origin.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(default, deserialize_with = "duration")]
    pub max_age: Option<Duration>,
    /// Who answers allowed preflights.
    #[serde(default)]
    pub preflight: Preflight,
    /// What happens to preflights that are not allowed.
    #[serde(default)]
    pub disallowed_preflight: Disallowed,
}

/// `preflight:`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preflight {
    /// The filter answers 204 itself.
    #[default]
    Respond,
    /// The handler answers; the filter adds the CORS headers to its response.
    Pass,
}

/// `disallowed_preflight:`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disallowed {
    /// 403 with covet's structured error.
    #[default]
    Forbid,
    /// On to the handler, with no CORS headers added.
    Pass,
}

/// `allow_headers`, compiled.
#[derive(Debug)]
pub enum AllowHeaders {
    /// `*`: whatever the preflight asks for, echoed back.
    Mirror,
    /// These names (lower-case), and their joined header value.
    List(Vec<String>, String),
}

/// The compiled config the plugin serves with.
#[derive(Debug)]
pub struct Policy {
    /// Allowed origins.
    pub origins: AllowOrigins,
    /// Allowed methods, as written.
    pub methods: Vec<String>,
    /// `access-control-allow-methods`.
    pub methods_value: String,
    /// Allowed request headers.
    pub headers: AllowHeaders,
    /// `access-control-expose-headers`, when any.
    pub expose: Option<String>,
    /// Whether credentials are allowed.
    pub credentials: bool,
    /// `access-control-max-age`, when set.
    pub max_age: Option<String>,
    /// Who answers allowed preflights.
    pub preflight: Preflight,
    /// What happens to disallowed preflights.
    pub disallowed: Disallowed,
}

impl Settings {
    /// Checks everything serde could not and compiles the policy.
    pub fn compile(self) -> Result<Policy, ConfigError> {
        let origins = AllowOrigins::compile(&self.allow_origins)?;
        if origins.is_any() && self.allow_credentials {
            return Err(ConfigError::StarWithCredentials);
        }
        if self.allow_methods.is_empty() {
            return Err(ConfigError::NoMethods);
        }
        if let Some(bad) = self.allow_methods.iter().find(|m| !http_syntax::is_token(m)) {
            return Err(ConfigError::BadMethod(bad.clone()));
        }
        let headers = match self.allow_headers.as_slice() {
            [star] if star == "*" => AllowHeaders::Mirror,
            names => {
                let names = header_names("allow_headers", names)?;
                let value = names.join(", ");
                AllowHeaders::List(names, value)
            }
        };
        let expose = header_names("expose_headers", &self.expose_headers)?;
        let max_age = match self.max_age.map(|d| d.as_secs()) {
            Some(secs) if secs > 86_400 => return Err(ConfigError::MaxAgeTooLong(secs)),
            other => other.map(|secs| secs.to_string()),
        };
        Ok(Policy {
            origins,
            methods_value: self.allow_methods.join(", "),
            methods: self.allow_methods,
            headers,
            expose: (!expose.is_empty()).then(|| expose.join(", ")),
            credentials: self.allow_credentials,
            max_age,
            preflight: self.preflight,
            disallowed: self.disallowed_preflight,
        })
    }
}

/// Checks and lower-cases header names; `*` is refused here (it is only
/// meaningful alone in `allow_headers`).
fn header_names(field: &'static str, names: &[String]) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .map(|name| {
            if name == "*" {
                let message = "`*` must be the only entry (allow_headers), and is not supported in expose_headers".into();
                return Err(ConfigError::BadHeader { field, message });
            }
            http_syntax::header_name(name).map_err(|message| ConfigError::BadHeader { field, message })
        })
        .collect()
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// Reads `"10m"`, `"1h"` (humantime) or a plain number of seconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like \"10m\" or \"1h\", or a number of seconds")
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Self::Value, E> {
            Ok(Some(Duration::from_secs(secs)))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            humantime::parse_duration(text).map(Some).map_err(|e| {
                E::custom(format_args!("invalid duration \"{text}\" ({e}): write it like \"10m\" or \"1h\""))
            })
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}

/// Reads one string or a list of strings.
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![value.to_string()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                out.push(item);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(ListVisitor)
}
