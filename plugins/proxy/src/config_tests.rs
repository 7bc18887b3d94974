//! Config parsing: defaults, every field, and the error for each mistake.

use std::time::Duration;

use covet_plugin_api::{Config, HttpVersion};

use super::*;

fn compile(json: &str) -> Result<Policy, String> {
    let settings: Settings = Config::from_json(json).parse()?;
    settings.compile().map_err(|e| e.to_string())
}

fn error(json: &str) -> String {
    compile(json).unwrap_err()
}

#[test]
fn defaults() {
    let p = compile(r#"{"upstream": "users"}"#).unwrap();
    assert_eq!(p.upstream, "users");
    assert!(p.prefix.is_identity());
    assert_eq!(p.host, HostRule::Preserve);
    assert_eq!(p.trust, Trust::None);
    assert!(p.x_forwarded && p.rfc7239);
    assert_eq!(p.via.as_ref().unwrap().entry(HttpVersion::Http11), "1.1 covet");
    assert_eq!(p.via.as_ref().unwrap().entry(HttpVersion::Http2), "2 covet");
    assert_eq!((p.timeout, p.per_try_timeout, p.max_retries, p.retry_non_idempotent), (None, None, None, None));
    assert_eq!(p.retry_after, Duration::from_secs(1));
}

#[test]
fn every_field() {
    let p = compile(
        r#"{"upstream": "users", "strip_prefix": "/api", "rewrite_prefix": "/v2", "host": "users.internal:8080",
            "forwarded": {"trusted": ["10.0.0.0/8", "127.0.0.1"], "x_forwarded": false, "rfc7239": true},
            "via": "edge-1", "timeout": "5s", "per_try_timeout": "1500ms", "max_retries": 2,
            "retry_non_idempotent": true, "retry_after": 3}"#,
    )
    .unwrap();
    assert_eq!(p.prefix.apply("/api/x?y"), "/v2/x?y");
    assert_eq!(p.host, HostRule::Literal("users.internal:8080".into()));
    assert!(p.trust.trusts(crate::trust::client_ip("10.2.3.4")));
    assert!(!p.x_forwarded && p.rfc7239);
    assert_eq!(p.via.unwrap().entry(HttpVersion::Http10), "1.0 edge-1");
    assert_eq!(p.timeout, Some(Duration::from_secs(5)));
    assert_eq!(p.per_try_timeout, Some(Duration::from_millis(1500)));
    assert_eq!((p.max_retries, p.retry_non_idempotent), (Some(2), Some(true)));
    assert_eq!(p.retry_after, Duration::from_secs(3));
}

#[test]
fn host_keywords_and_via_off() {
    assert_eq!(compile(r#"{"upstream": "u", "host": "upstream"}"#).unwrap().host, HostRule::Upstream);
    assert_eq!(compile(r#"{"upstream": "u", "host": "preserve"}"#).unwrap().host, HostRule::Preserve);
    assert!(compile(r#"{"upstream": "u", "via": false}"#).unwrap().via.is_none());
    assert_eq!(compile(r#"{"upstream": "u", "forwarded": {"trusted": "all"}}"#).unwrap().trust, Trust::All);
}

#[test]
fn missing_upstream_and_unknown_fields() {
    assert!(error("null").contains("missing field `upstream`"), "{}", error("null"));
    let e = error(r#"{"upstream": "u", "strip": "/api"}"#);
    assert!(e.starts_with("unknown field `strip`"), "{e}");
    let e = error(r#"{"upstream": "u", "forwarded": {"trust": "all"}}"#);
    assert!(e.starts_with("unknown field `trust`"), "{e}");
    assert!(error(r#"{"upstream": " "}"#).starts_with("upstream: the name is empty"));
}

#[test]
fn bad_values_name_their_field() {
    let cases = [
        (r#"{"upstream": "u", "strip_prefix": "api"}"#, "strip_prefix: `api`"),
        (r#"{"upstream": "u", "host": "a b"}"#, "host: `a b`"),
        (r#"{"upstream": "u", "host": ""}"#, "host: ``"),
        (r#"{"upstream": "u", "via": "my proxy"}"#, "via: `my proxy`"),
        (r#"{"upstream": "u", "forwarded": {"trusted": ["10.0.0.0/40"]}}"#, "forwarded.trusted: `10.0.0.0/40`"),
        (r#"{"upstream": "u", "forwarded": {"trusted": "everyone"}}"#, "forwarded.trusted: `everyone`"),
        (r#"{"upstream": "u", "timeout": "0s"}"#, "timeout: must be more than zero"),
        (r#"{"upstream": "u", "timeout": "1s", "per_try_timeout": "2s"}"#, "per_try_timeout: must not be longer"),
    ];
    for (json, expected) in cases {
        let e = error(json);
        assert!(e.starts_with(expected), "{json}: {e}");
    }
}

#[test]
fn type_errors_say_what_is_expected() {
    let e = error(r#"{"upstream": "u", "timeout": "soon"}"#);
    assert!(e.contains("invalid duration \"soon\""), "{e}");
    let e = error(r#"{"upstream": "u", "via": 3}"#);
    assert!(e.contains("true, false or a name"), "{e}");
    let e = error(r#"{"upstream": "u", "forwarded": {"trusted": 7}}"#);
    assert!(e.contains("\"all\", \"none\" or a list"), "{e}");
    let e = error(r#"{"upstream": "u", "max_retries": -1}"#);
    assert!(e.contains("max_retries") || e.contains("invalid value"), "{e}");
}
