//! Init refuses bad configs with messages that say what to fix, and never
//! shows a secret's value.

use serde_json::{Value, json};

use crate::support::*;

fn keys(entries: Value) -> Value {
    json!({ "keys": entries })
}

fn hs(var: &str, algorithms: Value) -> Value {
    json!({ "kid": "hs", "algorithms": algorithms, "secret_env": var })
}

/// `(config, the exact init error)`.
fn cases() -> Vec<(Value, String)> {
    let rsa_pub = fixture("rsa.pub.pem");
    let ec256_pub = fixture("ec-p256.pub.pem");
    vec![
        (json!({}), "missing field `keys`".into()),
        (keys(json!([])), "keys: the list is empty; give at least one key (secret_env, pem_file, jwks_file, jwks_url or oidc_discovery)".into()),
        (keys(json!([{ "algorithms": ["HS256"] }])), "keys[0]: give exactly one of secret_env, pem_file, jwks_file, jwks_url or oidc_discovery".into()),
        (
            keys(json!([{ "algorithms": ["HS256"], "secret_env": SECRET_VAR, "pem_file": rsa_pub }])),
            "keys[0]: give exactly one of secret_env, pem_file, jwks_file, jwks_url or oidc_discovery".into(),
        ),
        (
            keys(json!([{ "kid": "k", "secret_env": SECRET_VAR }])),
            "keys[0] (kid `k`): `algorithms` is required and must not be empty (e.g. [RS256])".into(),
        ),
        (
            keys(json!([hs(SECRET_VAR, json!(["none"]))])),
            "keys[0] (kid `hs`): unsupported algorithm `none`; supported: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA (`none` is never accepted)".into(),
        ),
        (
            keys(json!([{ "algorithms": ["RS256", "HS256"], "pem_file": rsa_pub }])),
            "keys[0]: algorithms mix RS256 and HS256; one key verifies one family (HS*, RS*/PS*, ES*, EdDSA): split it into two keys".into(),
        ),
        (
            keys(json!([hs(SECRET_VAR, json!(["RS256"]))])),
            "keys[0] (kid `hs`): secret_env cannot verify RS256: an HMAC secret only verifies HS256/HS384/HS512; give public keys with pem_file or jwks_file".into(),
        ),
        (
            keys(json!([hs("COVET_AUTH_JWT_TEST_UNSET", json!(["HS256"]))])),
            "keys[0] (kid `hs`): environment variable `COVET_AUTH_JWT_TEST_UNSET` (secret_env) is not set or is empty".into(),
        ),
        (
            keys(json!([hs(SHORT_SECRET_VAR, json!(["HS256"]))])),
            format!("keys[0] (kid `hs`): the secret in `{SHORT_SECRET_VAR}` is shorter than 32 bytes, the minimum for HS256 (RFC 7518 §3.2); use a longer random secret"),
        ),
        (
            keys(json!([{ "algorithms": ["HS256"], "pem_file": rsa_pub }])),
            "keys[0]: pem_file cannot verify HS256: HMAC algorithms take a shared secret from secret_env".into(),
        ),
        (
            keys(json!([{ "algorithms": ["RS256"], "pem_file": fixture("rsa.pem") }])),
            format!("keys[0]: `{}` holds a private key; give the public key (openssl pkey -in KEY -pubout)", fixture("rsa.pem")),
        ),
        (
            keys(json!([{ "algorithms": ["RS256"], "pem_file": ec256_pub }])),
            format!("keys[0]: `{ec256_pub}` is not an RSA public key in PEM format"),
        ),
        (
            keys(json!([{ "algorithms": ["ES384"], "pem_file": ec256_pub }])),
            "keys[0]: ES384 needs a P-384 key, but this key is P256".into(),
        ),
        (
            keys(json!([{ "algorithms": ["EdDSA"], "pem_file": "/nonexistent/ed.pem" }])),
            "keys[0]: cannot read `/nonexistent/ed.pem`: No such file or directory (os error 2)".into(),
        ),
        (
            keys(json!([{ "algorithms": ["ES256"], "pem_file": "keys/ec.pub.pem" }])),
            format!(
                "keys[0]: cannot read `keys/ec.pub.pem` (relative paths are read from the working directory `{}`): No such file or directory (os error 2)",
                std::env::current_dir().unwrap().display()
            ),
        ),
        (
            keys(json!([{ "kid": "a", "jwks_file": fixture("jwks.json") }])),
            "keys[0] (kid `a`): `kid` cannot be set with jwks_file, jwks_url or oidc_discovery: each key's kid comes from the set".into(),
        ),
        (
            keys(json!([{ "jwks_file": rsa_pub }])),
            format!("keys[0]: `{rsa_pub}` is not a JWK set (invalid number at line 1 column 2)"),
        ),
        (
            keys(json!([{ "jwks_file": fixture("jwks.json"), "algorithms": ["RS256", "ES256", "ES384"] }])),
            "keys[0]: key 3 (kid `ed25519-1`) of the set: the JWK's alg EdDSA is not among this entry's `algorithms`".into(),
        ),
        (
            keys(json!([{ "kid": "rsa-1", "algorithms": ["RS256"], "pem_file": rsa_pub }, { "jwks_file": fixture("jwks.json") }])),
            "keys: kid `rsa-1` is used by more than one key; kids must be unique".into(),
        ),
        (
            json!({ "keys": [hs(SECRET_VAR, json!(["HS256"]))], "header": "x auth" }),
            "header: `x auth` is not a valid header name".into(),
        ),
        (
            json!({ "keys": [hs(SECRET_VAR, json!(["HS256"]))], "scheme": "Bearer token" }),
            "scheme: `Bearer token` is not a valid auth scheme (a single token like `Bearer`, or \"\" for a bare token)".into(),
        ),
        (
            json!({ "keys": [hs(SECRET_VAR, json!(["HS256"]))], "issuer": [] }),
            "issuer: the list is empty; remove the field or give values".into(),
        ),
        (
            json!({ "keys": [hs(SECRET_VAR, json!(["HS256"]))], "cache": { "size": 5 } }),
            "unknown field `size`, expected `max_entries`".into(),
        ),
    ]
}

#[test]
fn init_errors_say_what_to_fix() {
    for (config, expected) in cases() {
        assert_eq!(init_error(config.clone()), expected, "for {config}");
    }
}

#[test]
fn init_errors_never_include_a_secrets_value() {
    let mut configs: Vec<Value> = cases().into_iter().map(|(config, _)| config).collect();
    configs.push(keys(json!([hs(SHORT_SECRET_VAR, json!(["HS512"]))])));
    configs.push(keys(json!([hs(SECRET_VAR, json!(["HS256"])), hs(SHORT_SECRET_VAR, json!(["HS256"]))])));
    configs.push(json!({ "keys": [hs(SECRET_VAR, json!(["HS256"]))], "forward_claims": { "sub": "" } }));
    for config in configs {
        let err = init_error(config);
        assert!(!err.contains(SECRET) && !err.contains(SHORT_SECRET), "secret leaked: {err}");
    }
}

#[test]
fn a_64_byte_secret_serves_every_hs_algorithm() {
    plugin(keys(json!([hs(SECRET_VAR, json!(["HS256", "HS384", "HS512"]))])));
}
