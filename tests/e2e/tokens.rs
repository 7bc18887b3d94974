//! JWTs for the auth-jwt tests: an HS256 secret handed to the host through
//! the environment, the RSA fixture key pair, and hand-made bad tokens.

use std::{
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

/// The environment variable the host reads the HMAC secret from.
pub const SECRET_VAR: &str = "COVET_E2E_JWT_SECRET";
/// The HMAC secret (32 bytes or more, as HS256 requires).
pub const SECRET: &str = "e2e-only-secret-0123456789abcdefghij";
/// The accepted issuer and audience.
pub const ISSUER: &str = "https://issuer.e2e.test";
pub const AUDIENCE: &str = "e2e-api";

/// A key fixture from `tests/fixtures/keys`.
pub fn key_file(name: &str) -> PathBuf {
    covet_e2e::workspace_root().join("tests/fixtures/keys").join(name)
}

/// The auth-jwt config: an HS256 key `hs-1` from [`SECRET_VAR`], an RS256
/// key `rsa-1` from the fixture public key; `sub` forwarded as `x-user-id`.
pub fn auth_config() -> Value {
    json!({
        "keys": [
            { "kid": "hs-1", "algorithms": ["HS256"], "secret_env": SECRET_VAR },
            { "kid": "rsa-1", "algorithms": ["RS256"], "pem_file": key_file("rsa.pub.pem") },
        ],
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "forward_claims": { "sub": "x-user-id" },
    })
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Good claims for `sub`, with `changes` applied (a `null` removes a claim).
pub fn claims(sub: &str, changes: Value) -> Value {
    let mut claims = json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600 });
    for (name, value) in changes.as_object().expect("an object of changes") {
        match value {
            Value::Null => claims.as_object_mut().unwrap().remove(name),
            v => claims.as_object_mut().unwrap().insert(name.clone(), v.clone()),
        };
    }
    claims
}

/// A token signed with `key`.
pub fn signed(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("encode")
}

/// An HS256 token signed with [`SECRET`], kid `hs-1`.
pub fn hs256(claims: &Value) -> String {
    signed(Algorithm::HS256, Some("hs-1"), claims, &EncodingKey::from_secret(SECRET.as_bytes()))
}

/// An RS256 token signed with the fixture private key, kid `rsa-1`.
pub fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(key_file("rsa.pem")).expect("rsa.pem fixture");
    signed(Algorithm::RS256, Some("rsa-1"), claims, &EncodingKey::from_rsa_pem(&pem).expect("RSA key"))
}

/// An `alg: none` token with an empty signature.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", part(&json!({ "alg": "none", "typ": "JWT", "kid": kid })), part(claims))
}

/// `authorization: Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
