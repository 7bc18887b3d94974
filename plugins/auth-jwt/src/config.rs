//! The plugin's `config:` block as Rust types. Serde checks the shape (unknown
//! fields are refused); [`Settings::check`] checks what serde cannot (empty
//! lists, header names); `keys.rs` checks the key material.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{
    Deserialize, Deserializer,
    de::{self, SeqAccess, Visitor},
};

use covet_plugin_api::http_syntax;

use crate::error::ConfigError;

/// The whole `config:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where verification keys come from; at least one entry.
    pub keys: Vec<KeySettings>,
    /// Accepted `iss` values; when set, `iss` is also required.
    #[serde(default, deserialize_with = "string_or_list")]
    pub issuer: Option<Vec<String>>,
    /// Accepted `aud` values; when set, `aud` is also required.
    #[serde(default, deserialize_with = "string_or_list")]
    pub audience: Option<Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf`, in whole seconds.
    #[serde(default = "default_leeway", deserialize_with = "duration")]
    pub leeway: Duration,
    /// Claims every token must carry.
    #[serde(default = "default_required_claims")]
    pub required_claims: Vec<String>,
    /// Copy every top-level claim into metadata as `jwt.<claim>`.
    #[serde(default = "yes")]
    pub claims_to_metadata: bool,
    /// Claim name → request header set for the upstream handler.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    /// The request header that carries the token.
    #[serde(default = "default_header")]
    pub header: String,
    /// The auth scheme before the token; empty means the whole header value is the token.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// The verification cache.
    #[serde(default)]
    pub cache: CacheSettings,
    /// How key sets fetched over HTTP (`jwks_url`, `oidc_discovery`) are kept fresh.
    #[serde(default)]
    pub remote_keys: RemoteSettings,
}

/// One entry of `keys:`: exactly one of `secret_env`, `pem_file`,
/// `jwks_file`, `jwks_url`, `oidc_discovery`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// The key id tokens name in their header (not allowed with `jwks_file`).
    pub kid: Option<String>,
    /// The algorithms this key verifies (one family).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Environment variable holding an HMAC secret.
    pub secret_env: Option<String>,
    /// A public key in PEM format.
    pub pem_file: Option<PathBuf>,
    /// A JWK set (RFC 7517) of public keys.
    pub jwks_file: Option<PathBuf>,
    /// A JWK set fetched through the host's outbound HTTP service.
    pub jwks_url: Option<String>,
    /// An OpenID Connect issuer: its discovery document names the JWK set.
    pub oidc_discovery: Option<String>,
}

/// `remote_keys:`: fetching and refreshing `jwks_url` / `oidc_discovery` sets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettings {
    /// The longest a fetched key set is used before it is fetched again.
    #[serde(default = "default_refresh_interval", deserialize_with = "duration")]
    pub refresh_interval: Duration,
    /// The shortest time between two fetches (unknown-kid refreshes, retries, `max-age`).
    #[serde(default = "default_min_refresh_interval", deserialize_with = "duration")]
    pub min_refresh_interval: Duration,
    /// Limit on each HTTP request of a fetch.
    #[serde(default = "default_fetch_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Fail `init` (and so the load) when the first fetch fails.
    #[serde(default)]
    pub require_keys_at_start: bool,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            refresh_interval: default_refresh_interval(),
            min_refresh_interval: default_min_refresh_interval(),
            timeout: default_fetch_timeout(),
            require_keys_at_start: false,
        }
    }
}

fn default_refresh_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_min_refresh_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_fetch_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `cache:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// Most verified tokens kept; 0 turns the cache off.
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { max_entries: default_max_entries() }
    }
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_required_claims() -> Vec<String> {
    vec!["exp".to_string()]
}

fn yes() -> bool {
    true
}

fn default_header() -> String {
    "authorization".to_string()
}

fn default_scheme() -> String {
    "Bearer".to_string()
}

fn default_max_entries() -> u64 {
    10_000
}

impl Settings {
    /// Checks the fields serde accepted but that could still be wrong.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        check_values("issuer", self.issuer.as_deref())?;
        check_values("audience", self.audience.as_deref())?;
        check_values("required_claims", Some(self.required_claims.as_slice()).filter(|c| !c.is_empty()))?;
        check_header_name("header", &self.header)?;
        self.check_remote()?;
        if !self.scheme.is_empty() && !http_syntax::is_token(&self.scheme) {
            return Err(ConfigError::BadScheme(self.scheme.clone()));
        }
        self.check_forward_claims()
    }

    fn check_remote(&self) -> Result<(), ConfigError> {
        let r = &self.remote_keys;
        if r.min_refresh_interval.is_zero() || r.timeout.is_zero() {
            return Err(ConfigError::ZeroDuration);
        }
        if r.refresh_interval < r.min_refresh_interval {
            return Err(ConfigError::RefreshBounds);
        }
        let urls = self.keys.iter().flat_map(|k| [&k.jwks_url, &k.oidc_discovery]).flatten();
        match urls.into_iter().find(|u| !(u.starts_with("https://") || u.starts_with("http://"))) {
            Some(url) => Err(ConfigError::BadUrl(url.clone())),
            None => Ok(()),
        }
    }

    fn check_forward_claims(&self) -> Result<(), ConfigError> {
        let mut headers = std::collections::HashSet::new();
        for (claim, header) in &self.forward_claims {
            if claim.is_empty() {
                return Err(ConfigError::EmptyValue("forward_claims"));
            }
            check_header_name(&format!("forward_claims.{claim}"), header)?;
            if !headers.insert(header.to_ascii_lowercase()) {
                return Err(ConfigError::DuplicateForwardHeader(header.clone()));
            }
        }
        Ok(())
    }
}

fn check_values(field: &'static str, values: Option<&[String]>) -> Result<(), ConfigError> {
    match values {
        Some([]) => Err(ConfigError::EmptyList(field)),
        Some(list) if list.iter().any(String::is_empty) => Err(ConfigError::EmptyValue(field)),
        _ => Ok(()),
    }
}

fn check_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if http_syntax::is_token(name) {
        return Ok(());
    }
    Err(ConfigError::BadHeaderName { field: field.to_string(), name: name.to_string() })
}

/// Reads `"30s"`, `"2m"`, `"1h 30m"` (humantime) or a plain number of seconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like \"30s\" or \"2m\", or a number of seconds")
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(secs))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|e| {
                E::custom(format_args!("invalid duration \"{text}\" ({e}): write it like \"30s\" or \"2m\""))
            })
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}

/// Reads one string or a list of strings.
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Option<Vec<String>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![value.to_string()]))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut values = Vec::new();
            while let Some(value) = seq.next_element::<String>()? {
                values.push(value);
            }
            Ok(Some(values))
        }
    }

    deserializer.deserialize_any(ListVisitor)
}

#[cfg(test)]
mod tests {
    use covet_plugin_api::Config;

    use super::*;

    fn parse(json: &str) -> Result<Settings, String> {
        Config::from_json(json).parse::<Settings>()
    }

    #[test]
    fn defaults_fill_everything_but_keys() {
        let s = parse(r#"{"keys": [{"secret_env": "S", "algorithms": ["HS256"]}]}"#).unwrap();
        assert_eq!(s.leeway, Duration::from_secs(30));
        assert_eq!(s.required_claims, ["exp"]);
        assert!(s.claims_to_metadata);
        assert_eq!((s.header.as_str(), s.scheme.as_str()), ("authorization", "Bearer"));
        assert_eq!(s.cache.max_entries, 10_000);
        assert!(s.issuer.is_none() && s.audience.is_none());
        assert_eq!(s.remote_keys.refresh_interval, Duration::from_secs(300));
        assert_eq!(s.remote_keys.min_refresh_interval, Duration::from_secs(10));
        assert!(!s.remote_keys.require_keys_at_start);
    }

    #[test]
    fn remote_settings_are_checked() {
        let s = parse(r#"{"keys": [{"jwks_url": "ftp://x"}]}"#).unwrap();
        assert_eq!(s.check().unwrap_err().to_string(), "keys: `ftp://x` is not an http:// or https:// URL");
        let s = parse(r#"{"keys": [{}], "remote_keys": {"refresh_interval": "5s", "min_refresh_interval": "10s"}}"#);
        assert!(s.unwrap().check().unwrap_err().to_string().contains("refresh_interval"));
        let s = parse(r#"{"keys": [{}], "remote_keys": {"min_refresh_interval": 0}}"#).unwrap();
        assert!(s.check().unwrap_err().to_string().contains("must be more than zero"));
    }

    #[test]
    fn leeway_reads_durations_and_seconds() {
        let s = parse(r#"{"keys": [], "leeway": "2m"}"#).unwrap();
        assert_eq!(s.leeway, Duration::from_secs(120));
        let s = parse(r#"{"keys": [], "leeway": 5}"#).unwrap();
        assert_eq!(s.leeway, Duration::from_secs(5));
        let err = parse(r#"{"keys": [], "leeway": "soon"}"#).unwrap_err();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
    }

    #[test]
    fn issuer_and_audience_take_a_string_or_a_list() {
        let s = parse(r#"{"keys": [], "issuer": "https://a", "audience": ["x", "y"]}"#).unwrap();
        assert_eq!(s.issuer.unwrap(), ["https://a"]);
        assert_eq!(s.audience.unwrap(), ["x", "y"]);
        let err = parse(r#"{"keys": [], "audience": 3}"#).unwrap_err();
        assert!(err.contains("a string or a list of strings"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = parse(r#"{"keys": [], "leway": "1s"}"#).unwrap_err();
        assert!(err.starts_with("unknown field `leway`"), "{err}");
        let err = parse(r#"{"keys": [{"secret": "x"}]}"#).unwrap_err();
        assert!(err.starts_with("unknown field `secret`"), "{err}");
    }

    #[test]
    fn check_refuses_bad_header_names_and_empty_lists() {
        let s = parse(r#"{"keys": [{}], "forward_claims": {"sub": "x user"}}"#).unwrap();
        assert_eq!(s.check().unwrap_err().to_string(), "forward_claims.sub: `x user` is not a valid header name");
        let s = parse(r#"{"keys": [{}], "forward_claims": {"sub": "x-user", "email": "X-User"}}"#).unwrap();
        assert_eq!(s.check().unwrap_err().to_string(), "forward_claims: header `x-user` is set from two claims");
        let s = parse(r#"{"keys": [{}], "audience": []}"#).unwrap();
        assert_eq!(s.check().unwrap_err().to_string(), "audience: the list is empty; remove the field or give values");
        let s = parse(r#"{"keys": []}"#).unwrap();
        assert!(s.check().unwrap_err().to_string().starts_with("keys: the list is empty"));
    }
}
