//! The plugin's `config:` block: [`Settings`] as written (serde refuses
//! unknown fields and wrong types), checked and compiled by
//! [`Settings::compile`] into the [`Policy`] the request path reads.

use std::{fmt, time::Duration};

use covet_plugin_api::{HttpVersion, http_syntax};
use serde::{Deserialize, Deserializer, de};

use crate::{
    error::ConfigError,
    path::Prefix,
    trust::{Trust, TrustSpec},
};

/// The whole `config:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The upstream's name in the manifest's `upstreams:`.
    upstream: String,
    /// A leading path prefix to remove (`/api`).
    #[serde(default)]
    strip_prefix: Option<String>,
    /// What to put in its place (`/v2`).
    #[serde(default)]
    rewrite_prefix: Option<String>,
    /// `preserve` (default), `upstream`, or a literal Host.
    #[serde(default)]
    host: Option<String>,
    /// Forwarding headers and whom to trust.
    #[serde(default)]
    forwarded: ForwardedSettings,
    /// `true` (default), `false`, or a pseudonym.
    #[serde(default)]
    via: Option<ViaSetting>,
    /// Overall deadline of a request, all attempts.
    #[serde(default)]
    timeout: Option<Secs>,
    /// Deadline of each attempt until the response head.
    #[serde(default)]
    per_try_timeout: Option<Secs>,
    /// Most retries per request (the upstream's `retries.attempts` otherwise).
    #[serde(default)]
    max_retries: Option<u32>,
    /// Retry POST/PATCH too (the upstream's `retries.non_idempotent` otherwise).
    #[serde(default)]
    retry_non_idempotent: Option<bool>,
    /// `retry-after` of a 503 when the host's overload error does not carry one.
    #[serde(default)]
    retry_after: Option<Secs>,
}

/// `forwarded:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardedSettings {
    #[serde(default)]
    trusted: TrustSpec,
    #[serde(default = "yes")]
    x_forwarded: bool,
    #[serde(default = "yes")]
    rfc7239: bool,
}

impl Default for ForwardedSettings {
    fn default() -> ForwardedSettings {
        ForwardedSettings { trusted: TrustSpec::default(), x_forwarded: true, rfc7239: true }
    }
}

fn yes() -> bool {
    true
}

/// `via:` as written.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "true, false or a name like \"covet-edge\"")]
enum ViaSetting {
    On(bool),
    Name(String),
}

/// How the upstream request's `Host` is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// The client's `Host` goes on unchanged.
    Preserve,
    /// No `Host` from the proxy: the host sets the upstream endpoint's.
    Upstream,
    /// This value.
    Literal(String),
}

/// The `Via` entries this proxy adds, one per protocol version it may have received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    by_version: [String; 4],
}

impl Via {
    fn new(name: &str) -> Via {
        Via { by_version: ["1.0", "1.1", "2", "3"].map(|v| format!("{v} {name}")) }
    }

    /// `1.1 covet` for a message received over HTTP/1.1, `2 covet` over HTTP/2, ...
    pub fn entry(&self, version: HttpVersion) -> &str {
        let i = match version {
            HttpVersion::Http10 => 0,
            HttpVersion::Http11 => 1,
            HttpVersion::Http2 => 2,
            HttpVersion::Http3 => 3,
        };
        &self.by_version[i]
    }
}

/// The checked config, as the request path reads it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The upstream's name.
    pub upstream: String,
    /// Path prefix rule.
    pub prefix: Prefix,
    /// Host rule.
    pub host: HostRule,
    /// Whose forwarding headers are believed.
    pub trust: Trust,
    /// Write `X-Forwarded-For/-Proto/-Host`.
    pub x_forwarded: bool,
    /// Write `Forwarded`.
    pub rfc7239: bool,
    /// Append `Via`, or not.
    pub via: Option<Via>,
    /// Overrides of the upstream's own settings.
    pub timeout: Option<Duration>,
    /// Per-attempt deadline override.
    pub per_try_timeout: Option<Duration>,
    /// Retries override.
    pub max_retries: Option<u32>,
    /// Non-idempotent retry override.
    pub retry_non_idempotent: Option<bool>,
    /// Fallback `retry-after` of a 503.
    pub retry_after: Duration,
}

impl Settings {
    /// Checks what serde cannot and builds the [`Policy`].
    pub fn compile(self) -> Result<Policy, ConfigError> {
        if self.upstream.trim().is_empty() {
            return Err(ConfigError::EmptyUpstream);
        }
        let timeout = positive("timeout", self.timeout)?;
        let per_try_timeout = positive("per_try_timeout", self.per_try_timeout)?;
        if let (Some(all), Some(each)) = (timeout, per_try_timeout)
            && each > all
        {
            return Err(ConfigError::PerTryOverTimeout);
        }
        Ok(Policy {
            prefix: Prefix::new(self.strip_prefix.as_deref(), self.rewrite_prefix.as_deref())?,
            host: host_rule(self.host)?,
            trust: Trust::parse(&self.forwarded.trusted)?,
            x_forwarded: self.forwarded.x_forwarded,
            rfc7239: self.forwarded.rfc7239,
            via: via(self.via)?,
            timeout,
            per_try_timeout,
            max_retries: self.max_retries,
            retry_non_idempotent: self.retry_non_idempotent,
            retry_after: positive("retry_after", self.retry_after)?.unwrap_or(Duration::from_secs(1)),
            upstream: self.upstream,
        })
    }
}

fn positive(field: &'static str, value: Option<Secs>) -> Result<Option<Duration>, ConfigError> {
    match value {
        Some(Secs(d)) if d.is_zero() => Err(ConfigError::ZeroDuration(field)),
        other => Ok(other.map(|Secs(d)| d)),
    }
}

fn host_rule(host: Option<String>) -> Result<HostRule, ConfigError> {
    match host.as_deref() {
        None | Some("preserve") => Ok(HostRule::Preserve),
        Some("upstream") => Ok(HostRule::Upstream),
        Some(literal) if literal.is_empty() || literal.contains([' ', ',', '/']) => {
            Err(ConfigError::BadHost(literal.to_owned()))
        }
        Some(literal) => match http_syntax::header_value("host", literal) {
            Ok(()) => Ok(HostRule::Literal(literal.to_owned())),
            Err(_) => Err(ConfigError::BadHost(literal.to_owned())),
        },
    }
}

fn via(setting: Option<ViaSetting>) -> Result<Option<Via>, ConfigError> {
    match setting {
        None | Some(ViaSetting::On(true)) => Ok(Some(Via::new("covet"))),
        Some(ViaSetting::On(false)) => Ok(None),
        Some(ViaSetting::Name(name)) if http_syntax::is_token(&name) => Ok(Some(Via::new(&name))),
        Some(ViaSetting::Name(name)) => Err(ConfigError::BadVia(name)),
    }
}

/// A duration: `"30s"`, `"1500ms"`, `"2m"`, or a number of seconds.
#[derive(Debug, Clone, Copy)]
struct Secs(Duration);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secs, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = Secs;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"30s\" or \"250ms\", or a number of seconds")
            }

            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Secs, E> {
                Ok(Secs(Duration::from_secs(secs)))
            }

            fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Secs, E> {
                Duration::try_from_secs_f64(secs)
                    .map(Secs)
                    .map_err(|_| E::custom(format_args!("invalid duration {secs}")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Secs, E> {
                humantime::parse_duration(text).map(Secs).map_err(|e| {
                    E::custom(format_args!("invalid duration \"{text}\" ({e}): write it like \"30s\" or \"250ms\""))
                })
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
