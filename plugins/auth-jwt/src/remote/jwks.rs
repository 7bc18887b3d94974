//! A fetched JWK set (RFC 7517) → keys. Unlike a `jwks_file`, which the
//! operator wrote and which must be right, a fetched set belongs to the
//! issuer: keys this plugin cannot use (another key type, an encryption key,
//! a symmetric `oct` key, a small RSA key, a duplicate kid) are skipped with
//! a reason, and only a set with no usable signing key at all is an error.

use std::collections::HashSet;

use jsonwebtoken::{
    Algorithm,
    jwk::{AlgorithmParameters, Jwk},
};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    error::KeyError,
    keys::{KeyMaterial, is_signing_key, load_jwk},
};

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<Value>,
}

/// The usable keys of a set fetched from `url`, and a line per skipped key.
pub struct Parsed {
    /// The keys to verify with.
    pub keys: Vec<KeyMaterial>,
    /// Why each other key was skipped, e.g. `key 2 (kid "x"): ...`.
    pub skipped: Vec<String>,
}

/// Reads the set `body` from `url`; `listed` are the entry's `algorithms`.
pub fn parse(url: &str, body: &[u8], listed: &[Algorithm]) -> Result<Parsed, KeyError> {
    let set: RawSet = serde_json::from_slice(body)
        .map_err(|e| KeyError::BadDocument { url: url.to_string(), reason: format!("not a JWK set ({e})") })?;
    let mut parsed = Parsed { keys: Vec::new(), skipped: Vec::new() };
    let mut kids = HashSet::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_string);
        match usable(value, listed) {
            Ok(None) => {}
            Ok(Some(key)) if key.kid.as_ref().is_some_and(|k| !kids.insert(k.clone())) => {
                parsed.skipped.push(skip_line(index, kid.as_deref(), "its kid is used by an earlier key"));
            }
            Ok(Some(key)) => parsed.keys.push(key),
            Err(reason) => parsed.skipped.push(skip_line(index, kid.as_deref(), &reason)),
        }
    }
    if parsed.keys.is_empty() {
        return Err(KeyError::NoUsableKeys { url: url.to_string() });
    }
    Ok(parsed)
}

/// One JWK as a key; `Ok(None)` for an encryption key (not an error: sets
/// routinely carry them).
fn usable(value: Value, listed: &[Algorithm]) -> Result<Option<KeyMaterial>, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a supported JWK ({e})"))?;
    if !is_signing_key(&jwk) {
        return Ok(None);
    }
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err("a symmetric (oct) key is never taken from a fetched set".to_string());
    }
    load_jwk(&jwk, listed).map(Some).map_err(|e| e.to_string())
}

fn skip_line(index: usize, kid: Option<&str>, reason: &str) -> String {
    match kid {
        Some(kid) => format!("key {index} (kid \"{kid}\") skipped: {reason}"),
        None => format!("key {index} skipped: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EC: (&str, &str) =
        ("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");

    fn ec_key(kid: &str) -> Value {
        json!({ "kty": "EC", "crv": "P-256", "x": EC.0, "y": EC.1, "kid": kid, "alg": "ES256", "use": "sig" })
    }

    #[test]
    fn usable_keys_are_kept_and_the_rest_skipped_with_a_reason() {
        let body = json!({ "keys": [
            ec_key("ec-1"),
            { "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "hmac", "alg": "HS256" },
            { "kty": "EC", "crv": "P-256", "x": EC.0, "y": EC.1, "kid": "enc", "use": "enc" },
            { "kty": "XYZ", "kid": "odd" },
            ec_key("ec-1"),
            { "kty": "EC", "crv": "P-256", "x": EC.0, "y": EC.1, "kid": "no-alg" },
        ]});
        let parsed = parse("u", body.to_string().as_bytes(), &[]).unwrap();
        let kids: Vec<_> = parsed.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["ec-1"]);
        assert_eq!(parsed.skipped.len(), 4, "{:?}", parsed.skipped);
        assert!(parsed.skipped[0].starts_with("key 1 (kid \"hmac\") skipped: a symmetric"), "{:?}", parsed.skipped);
        assert!(
            parsed.skipped[1].starts_with("key 3 (kid \"odd\") skipped: unsupported JWK key type"),
            "{:?}",
            parsed.skipped
        );
        assert!(parsed.skipped[2].contains("kid is used by an earlier key"));
        assert!(parsed.skipped[3].contains("no `alg`"), "{:?}", parsed.skipped);
    }

    #[test]
    fn listed_algorithms_pin_keys_without_alg() {
        let mut key = ec_key("ec");
        key.as_object_mut().unwrap().remove("alg");
        let parsed = parse("u", json!({ "keys": [key] }).to_string().as_bytes(), &[Algorithm::ES256]).unwrap();
        assert_eq!(parsed.keys[0].algorithms, [Algorithm::ES256]);
    }

    #[test]
    fn a_set_without_usable_keys_or_not_a_set_is_an_error() {
        let error = |body: &[u8]| parse("https://x/keys", body, &[]).err().expect("an error").to_string();
        assert_eq!(error(br#"{"keys": []}"#), "https://x/keys: the JWK set has no usable signing key");
        let err = error(b"<html>");
        assert!(err.starts_with("https://x/keys: not a JWK set"), "{err}");
    }
}
