//! OpenID Connect Discovery 1.0: where an issuer's configuration document is
//! (§4), and the two fields of it this plugin uses, `issuer` (which must be
//! exactly the configured issuer, §4.3) and `jwks_uri`.

use serde::Deserialize;

use crate::error::KeyError;

/// The discovery document's URL for `issuer` (a trailing `/` is not doubled).
pub fn configuration_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

#[derive(Deserialize)]
struct Configuration {
    issuer: String,
    jwks_uri: String,
}

/// The `jwks_uri` of the discovery document `body` fetched from `url`, after
/// checking it is `issuer`'s.
pub fn jwks_uri(url: &str, issuer: &str, body: &[u8]) -> Result<String, KeyError> {
    let bad = |reason: String| KeyError::BadDocument { url: url.to_string(), reason };
    let config: Configuration =
        serde_json::from_slice(body).map_err(|e| bad(format!("not an OpenID configuration ({e})")))?;
    if config.issuer != issuer {
        return Err(KeyError::IssuerMismatch {
            url: url.to_string(),
            expected: issuer.to_string(),
            found: config.issuer,
        });
    }
    if !(config.jwks_uri.starts_with("https://") || config.jwks_uri.starts_with("http://")) {
        return Err(bad(format!("jwks_uri `{}` is not an http(s) URL", config.jwks_uri)));
    }
    Ok(config.jwks_uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://id.example/.well-known/openid-configuration";

    #[test]
    fn configuration_url_appends_the_well_known_path() {
        assert_eq!(configuration_url("https://id.example"), URL);
        assert_eq!(configuration_url("https://id.example/"), URL);
        assert_eq!(
            configuration_url("https://id.example/realms/a"),
            "https://id.example/realms/a/.well-known/openid-configuration"
        );
    }

    #[test]
    fn jwks_uri_is_read_when_the_issuer_matches() {
        let doc = br#"{"issuer": "https://id.example", "jwks_uri": "https://id.example/keys", "scopes_supported": []}"#;
        assert_eq!(jwks_uri(URL, "https://id.example", doc).unwrap(), "https://id.example/keys");
    }

    #[test]
    fn another_issuer_or_a_broken_document_is_refused() {
        let doc = br#"{"issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys"}"#;
        let err = jwks_uri(URL, "https://id.example", doc).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{URL} names the issuer `https://evil.example`, not the configured `https://id.example`")
        );
        let err = jwks_uri(URL, "https://id.example", br#"{"issuer": "https://id.example"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `jwks_uri`"), "{err}");
        let doc = br#"{"issuer": "https://id.example", "jwks_uri": "file:///etc/passwd"}"#;
        assert!(jwks_uri(URL, "https://id.example", doc).unwrap_err().to_string().contains("not an http(s) URL"));
    }
}
