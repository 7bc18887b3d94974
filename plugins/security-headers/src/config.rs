//! The `config:` block ([`Settings`]) and its compiled form ([`Compiled`]):
//! every header's value checked and rendered once at load.
//!
//! Each header key takes a string (the value), `false` (send nothing) or
//! `true` (the default value, for headers that have one); `hsts` takes
//! `false`, `true` or a map.

use std::{fmt, time::Duration};

use covet_plugin_api::http_syntax;
use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};

use crate::error::ConfigError;

/// One year, the usual HSTS lifetime and the preload list's minimum.
const ONE_YEAR: u64 = 31_536_000;

/// The whole `config:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `strict-transport-security`.
    #[serde(default)]
    pub hsts: Hsts,
    /// `x-content-type-options`.
    #[serde(default)]
    pub x_content_type_options: Toggle,
    /// `x-frame-options`.
    #[serde(default)]
    pub x_frame_options: Toggle,
    /// `referrer-policy`.
    #[serde(default)]
    pub referrer_policy: Toggle,
    /// `content-security-policy`.
    #[serde(default)]
    pub content_security_policy: Toggle,
    /// `permissions-policy`.
    #[serde(default)]
    pub permissions_policy: Toggle,
    /// `cross-origin-opener-policy`.
    #[serde(default)]
    pub cross_origin_opener_policy: Toggle,
    /// Replace headers the handler already set.
    #[serde(default, rename = "override")]
    pub override_existing: bool,
}

/// A header's setting.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Toggle {
    /// Not in the config: the header's default (which may be "none").
    #[default]
    Unset,
    /// `true`: the header's default value.
    On,
    /// `false`: never send it.
    Off,
    /// This value.
    Value(String),
}

/// `hsts:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hsts {
    /// `false`.
    Off,
    /// Absent, `true`, or a map.
    On(HstsSettings),
}

impl Default for Hsts {
    fn default() -> Hsts {
        Hsts::On(HstsSettings::default())
    }
}

/// `hsts:` as a map.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsSettings {
    /// How long browsers remember to use HTTPS only.
    #[serde(default = "one_year", deserialize_with = "duration")]
    pub max_age: Duration,
    /// `includeSubDomains`.
    #[serde(default = "yes")]
    pub include_subdomains: bool,
    /// `preload`.
    #[serde(default)]
    pub preload: bool,
    /// Send it on plain HTTP too (behind a TLS-terminating proxy).
    #[serde(default)]
    pub always: bool,
}

impl Default for HstsSettings {
    fn default() -> HstsSettings {
        HstsSettings { max_age: one_year(), include_subdomains: true, preload: false, always: false }
    }
}

fn one_year() -> Duration {
    Duration::from_secs(ONE_YEAR)
}

fn yes() -> bool {
    true
}

/// The headers to send, rendered.
#[derive(Debug)]
pub struct Compiled {
    /// Sent on every response: `(name, value)`.
    pub headers: Vec<(&'static str, String)>,
    /// `strict-transport-security` and whether it goes on plain HTTP too.
    pub hsts: Option<(String, bool)>,
    /// Replace headers the handler set.
    pub override_existing: bool,
}

/// One header key: its name, default and allowed vocabulary.
struct Spec {
    field: &'static str,
    header: &'static str,
    default: Option<&'static str>,
    /// Allowed values (compared case-insensitively, sent as listed); empty: any valid value.
    vocabulary: &'static [&'static str],
    /// Whether a comma-separated list of the vocabulary is allowed.
    list: bool,
    /// What is allowed, for the error message.
    expected: &'static str,
    /// An example, for the error when `true` has no default.
    example: &'static str,
}

/// The header keys, in the order of [`Settings::toggles`].
const SPECS: [Spec; 6] = [
    Spec {
        field: "x_content_type_options",
        header: "x-content-type-options",
        default: Some("nosniff"),
        vocabulary: &["nosniff"],
        list: false,
        expected: "nosniff",
        example: "nosniff",
    },
    Spec {
        field: "x_frame_options",
        header: "x-frame-options",
        default: Some("DENY"),
        vocabulary: &["DENY", "SAMEORIGIN"],
        list: false,
        expected: "DENY or SAMEORIGIN (ALLOW-FROM is obsolete: use frame-ancestors in content_security_policy)",
        example: "DENY",
    },
    Spec {
        field: "referrer_policy",
        header: "referrer-policy",
        default: Some("strict-origin-when-cross-origin"),
        vocabulary: &[
            "no-referrer",
            "no-referrer-when-downgrade",
            "origin",
            "origin-when-cross-origin",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
            "unsafe-url",
        ],
        list: true,
        expected: "a Referrer-Policy token (or a comma-separated list), e.g. strict-origin-when-cross-origin or no-referrer",
        example: "no-referrer",
    },
    Spec {
        field: "content_security_policy",
        header: "content-security-policy",
        default: None,
        vocabulary: &[],
        list: false,
        expected: "a policy",
        example: "\"default-src 'self'\"",
    },
    Spec {
        field: "permissions_policy",
        header: "permissions-policy",
        default: None,
        vocabulary: &[],
        list: false,
        expected: "a policy",
        example: "\"camera=(), geolocation=()\"",
    },
    Spec {
        field: "cross_origin_opener_policy",
        header: "cross-origin-opener-policy",
        default: None,
        vocabulary: &["unsafe-none", "same-origin-allow-popups", "same-origin", "noopener-allow-popups"],
        list: false,
        expected: "unsafe-none, same-origin-allow-popups, same-origin or noopener-allow-popups",
        example: "same-origin",
    },
];

impl Settings {
    /// The header keys' settings, in the order of [`SPECS`].
    fn toggles(&self) -> [&Toggle; 6] {
        [
            &self.x_content_type_options,
            &self.x_frame_options,
            &self.referrer_policy,
            &self.content_security_policy,
            &self.permissions_policy,
            &self.cross_origin_opener_policy,
        ]
    }

    /// Checks every value and renders the headers.
    pub fn compile(self) -> Result<Compiled, ConfigError> {
        let mut headers = Vec::new();
        for (spec, toggle) in SPECS.iter().zip(self.toggles()) {
            if let Some(value) = spec.resolve(toggle)? {
                headers.push((spec.header, value));
            }
        }
        let hsts = match self.hsts {
            Hsts::Off => None,
            Hsts::On(settings) => Some((settings.render()?, settings.always)),
        };
        Ok(Compiled { headers, hsts, override_existing: self.override_existing })
    }
}

impl Spec {
    /// The value to send, if any.
    fn resolve(&self, toggle: &Toggle) -> Result<Option<String>, ConfigError> {
        let value = match toggle {
            Toggle::Off => return Ok(None),
            Toggle::Unset => return Ok(self.default.map(String::from)),
            Toggle::On => match self.default {
                Some(value) => return Ok(Some(value.to_string())),
                None => {
                    return Err(ConfigError::NoDefault { field: self.field, header: self.header, example: self.example });
                }
            },
            Toggle::Value(value) => value,
        };
        if value.is_empty() {
            let message = "the value is empty; give one, or false to send none".to_string();
            return Err(ConfigError::BadHeaderValue { field: self.field, message });
        }
        http_syntax::header_value(self.header, value)
            .map_err(|message| ConfigError::BadHeaderValue { field: self.field, message })?;
        if self.vocabulary.is_empty() {
            return Ok(Some(value.clone()));
        }
        self.in_vocabulary(value).map(Some)
    }

    /// `value` with each item spelled as in the vocabulary, or why not.
    fn in_vocabulary(&self, value: &str) -> Result<String, ConfigError> {
        let items: Vec<&str> = if self.list { value.split(',').map(str::trim).collect() } else { vec![value] };
        let canonical: Option<Vec<&str>> = items
            .iter()
            .map(|item| self.vocabulary.iter().copied().find(|w| w.eq_ignore_ascii_case(item)))
            .collect();
        canonical.map(|c| c.join(", ")).ok_or_else(|| ConfigError::BadValue {
            field: self.field,
            header: self.header,
            value: value.to_string(),
            expected: self.expected,
        })
    }
}

impl HstsSettings {
    /// `max-age=N; includeSubDomains; preload`.
    fn render(&self) -> Result<String, ConfigError> {
        let secs = self.max_age.as_secs();
        if self.preload && (!self.include_subdomains || secs < ONE_YEAR) {
            return Err(ConfigError::Preload);
        }
        let mut value = format!("max-age={secs}");
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        Ok(value)
    }
}

impl<'de> Deserialize<'de> for Toggle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Toggle, D::Error> {
        struct ToggleVisitor;

        impl Visitor<'_> for ToggleVisitor {
            type Value = Toggle;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the header's value as a string, false to send none, or true for the default")
            }

            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Toggle, E> {
                Ok(if on { Toggle::On } else { Toggle::Off })
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Toggle, E> {
                Ok(Toggle::Value(value.to_string()))
            }
        }

        deserializer.deserialize_any(ToggleVisitor)
    }
}

impl<'de> Deserialize<'de> for Hsts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hsts, D::Error> {
        struct HstsVisitor;

        impl<'de> Visitor<'de> for HstsVisitor {
            type Value = Hsts;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("false, true, or a map with max_age, include_subdomains, preload, always")
            }

            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Hsts, E> {
                Ok(if on { Hsts::default() } else { Hsts::Off })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Hsts, A::Error> {
                HstsSettings::deserialize(MapAccessDeserializer::new(map)).map(Hsts::On)
            }
        }

        deserializer.deserialize_any(HstsVisitor)
    }
}

/// Reads `"365d"`, `"1y"` (humantime) or a plain number of seconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like \"365d\" or \"180days\", or a number of seconds")
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(secs))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|e| {
                E::custom(format_args!("invalid duration \"{text}\" ({e}): write it like \"365d\" or \"180days\""))
            })
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}
