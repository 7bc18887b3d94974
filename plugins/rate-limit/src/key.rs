//! `key:` and `missing_key:`: which bucket a request draws from.

use std::{fmt, str::FromStr};

use covet_plugin_api::Request;
use serde::Deserialize;

/// `key:` what identifies a client, i.e. which bucket a request draws from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) enum KeySpec {
    /// The client's IP address.
    #[default]
    Ip,
    /// A request header's value (name stored lower-case).
    Header(String),
    /// A metadata value set by an earlier filter, e.g. `jwt.sub`.
    Metadata(String),
}

impl KeySpec {
    /// The request's key, or `None` when the header or metadata is absent or empty.
    pub fn extract<'r>(&self, req: &'r Request<'_>) -> Option<&'r str> {
        let value = match self {
            KeySpec::Ip => Some(req.client_ip()),
            KeySpec::Header(name) => req.header(name),
            KeySpec::Metadata(key) => req.metadata(key),
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(text: &str) -> Result<KeySpec, String> {
        let invalid = |why: &str| format!("invalid key `{text}`: {why}");
        if text == "ip" {
            return Ok(KeySpec::Ip);
        }
        if let Some(name) = text.strip_prefix("header:") {
            if !is_header_name(name) {
                return Err(invalid(
                    "the header name must be non-empty letters, digits or `-`, e.g. `header:x-api-key`",
                ));
            }
            return Ok(KeySpec::Header(name.to_ascii_lowercase()));
        }
        if let Some(key) = text.strip_prefix("metadata:") {
            if key.trim().is_empty() {
                return Err(invalid("the metadata key is empty, e.g. `metadata:jwt.sub`"));
            }
            return Ok(KeySpec::Metadata(key.to_string()));
        }
        Err(invalid("expected `ip`, `header:<name>` or `metadata:<key>`"))
    }
}

/// The RFC 9110 `token` characters a header name may use.
fn is_header_name(name: &str) -> bool {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(tchar)
}

impl TryFrom<String> for KeySpec {
    type Error = String;
    fn try_from(text: String) -> Result<KeySpec, String> {
        text.parse()
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Ip => f.write_str("ip"),
            KeySpec::Header(name) => write!(f, "header:{name}"),
            KeySpec::Metadata(key) => write!(f, "metadata:{key}"),
        }
    }
}

/// `missing_key:` what to do with a request whose key header or metadata is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MissingKey {
    /// Answer 400 naming the missing key.
    Reject,
    /// Count every such request against one shared bucket.
    #[default]
    Shared,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_ip_header_and_metadata() {
        assert_eq!("ip".parse(), Ok(KeySpec::Ip));
        assert_eq!("header:X-Api-Key".parse(), Ok(KeySpec::Header("x-api-key".into())));
        assert_eq!("metadata:jwt.sub".parse(), Ok(KeySpec::Metadata("jwt.sub".into())));
        assert_eq!(KeySpec::Header("x-api-key".into()).to_string(), "header:x-api-key");
    }

    #[test]
    fn bad_keys_say_what_is_expected() {
        let err = "cookie:session".parse::<KeySpec>().unwrap_err();
        assert_eq!(err, "invalid key `cookie:session`: expected `ip`, `header:<name>` or `metadata:<key>`");
        let err = "header:".parse::<KeySpec>().unwrap_err();
        assert!(err.starts_with("invalid key `header:`: the header name must be"), "{err}");
        assert!("header:x api key".parse::<KeySpec>().is_err());
        let err = "metadata:".parse::<KeySpec>().unwrap_err();
        assert_eq!(err, "invalid key `metadata:`: the metadata key is empty, e.g. `metadata:jwt.sub`");
    }
}
