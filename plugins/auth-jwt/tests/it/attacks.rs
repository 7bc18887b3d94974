//! Tokens that must be refused, each with a 401 and the right challenge.

use covet_plugin_api::testing::TestRequest;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use crate::support::*;

#[test]
fn alg_none_is_refused_with_or_without_a_kid() {
    let plugin = plugin(config_with(json!({})));
    for header in [json!({ "alg": "none", "typ": "JWT" }), json!({ "alg": "none", "kid": "hs" })] {
        let token = forged(&header, &claims(json!({})), "");
        send(&plugin, &token).assert_refused("unsupported algorithm");
    }
    let token = forged(&json!({ "alg": "None" }), &claims(json!({})), "c2ln");
    send(&plugin, &token).assert_refused("unsupported algorithm");
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let public_pem = std::fs::read(fixture("rsa.pub.pem")).unwrap();
    let confused = EncodingKey::from_secret(&public_pem);
    let rsa_only = plugin(json!({ "keys": [pem_keys()[1]] }));
    for kid in [Some("rsa"), None] {
        let token = token_with_key(Algorithm::HS256, kid, &claims(json!({})), &confused);
        send(&rsa_only, &token).assert_refused("algorithm not allowed");
    }
    // With an HMAC key configured too, the token meets the real secret and fails.
    let both = plugin(config_with(json!({})));
    let token = token_with_key(Algorithm::HS256, None, &claims(json!({})), &confused);
    send(&both, &token).assert_refused("invalid signature");
    let token = token_with_key(Algorithm::HS256, Some("rsa"), &claims(json!({})), &confused);
    send(&both, &token).assert_refused("algorithm not allowed");
}

#[test]
fn expired_tokens_are_refused_beyond_the_leeway() {
    let plugin = plugin(config_with(json!({ "leeway": "30s" })));
    let stale = token(Algorithm::RS256, Some("rsa"), &claims(json!({ "exp": now() - 120 })));
    send(&plugin, &stale).assert_refused("token expired");
    let within_leeway = token(Algorithm::RS256, Some("rsa"), &claims(json!({ "exp": now() - 5 })));
    send(&plugin, &within_leeway).assert_continues();
}

#[test]
fn tokens_whose_nbf_is_ahead_are_refused() {
    let plugin = plugin(config_with(json!({})));
    let early = token(Algorithm::ES256, Some("ec256"), &claims(json!({ "nbf": now() + 600 })));
    send(&plugin, &early).assert_refused("token not yet valid");
}

#[test]
fn wrong_or_missing_audience_is_refused() {
    let plugin = plugin(config_with(json!({ "audience": ["api", "admin"] })));
    let other = token(Algorithm::HS256, Some("hs"), &claims(json!({ "aud": "billing" })));
    send(&plugin, &other).assert_refused("invalid audience");
    let none = token(Algorithm::HS256, Some("hs"), &claims(json!({})));
    send(&plugin, &none).assert_refused("missing required claim aud");
    let listed = token(Algorithm::HS256, Some("hs"), &claims(json!({ "aud": ["billing", "api"] })));
    send(&plugin, &listed).assert_continues();
}

#[test]
fn wrong_or_missing_issuer_is_refused() {
    let plugin = plugin(config_with(json!({ "issuer": "https://issuer.example" })));
    let other = token(Algorithm::EdDSA, Some("ed"), &claims(json!({ "iss": "https://evil.example" })));
    send(&plugin, &other).assert_refused("invalid issuer");
    let none = token(Algorithm::EdDSA, Some("ed"), &claims(json!({})));
    send(&plugin, &none).assert_refused("missing required claim iss");
    let good = token(Algorithm::EdDSA, Some("ed"), &claims(json!({ "iss": "https://issuer.example" })));
    send(&plugin, &good).assert_continues();
}

#[test]
fn an_unknown_kid_is_refused_even_if_another_key_would_verify() {
    let plugin = plugin(config_with(json!({})));
    let token = token(Algorithm::RS256, Some("rsa-2"), &claims(json!({})));
    send(&plugin, &token).assert_refused("unknown key id");
}

#[test]
fn a_bad_signature_is_refused() {
    let plugin = plugin(config_with(json!({})));
    let good = token(Algorithm::RS256, Some("rsa"), &claims(json!({})));
    let (message, signature) = good.rsplit_once('.').unwrap();
    let flipped: String = signature.chars().enumerate().map(|(i, c)| if i == 10 { flip(c) } else { c }).collect();
    send(&plugin, &format!("{message}.{flipped}")).assert_refused("invalid signature");
    // A valid signature over other claims does not carry over.
    let admin = token(Algorithm::RS256, Some("rsa"), &claims(json!({ "sub": "admin" })));
    let admin_payload = admin.split('.').nth(1).unwrap();
    let header = good.split('.').next().unwrap();
    send(&plugin, &format!("{header}.{admin_payload}.{signature}")).assert_refused("invalid signature");
}

fn flip(c: char) -> char {
    if c == 'A' { 'B' } else { 'A' }
}

#[test]
fn malformed_tokens_are_refused() {
    let plugin = plugin(config_with(json!({})));
    let valid = token(Algorithm::HS256, Some("hs"), &claims(json!({})));
    let not_json = format!("bm90IGpzb24.{}", valid.split_once('.').unwrap().1);
    for bad in ["abc", "a.b", "a.b.c.d", "!!!.e30.e30", &not_json, &format!("{valid}.extra")] {
        send(&plugin, bad).assert_refused("malformed token");
    }
    let bad_payload = format!("{}.bm90IGpzb24.{}", valid.split('.').next().unwrap(), "c2ln");
    send(&plugin, &bad_payload).assert_refused("invalid signature");
}

#[test]
fn critical_header_extensions_are_refused() {
    let plugin = plugin(config_with(json!({})));
    let token = forged(&json!({ "alg": "HS256", "kid": "hs", "crit": ["exp"] }), &claims(json!({})), "c2ln");
    send(&plugin, &token).assert_refused("unsupported critical header");
}

#[test]
fn a_missing_token_gets_a_bare_challenge() {
    let plugin = plugin(config_with(json!({})));
    run(&plugin, TestRequest::get("/")).assert_401("Bearer", "missing bearer token");
    let basic = TestRequest::get("/").header("authorization", "Basic YWxpY2U6cHc=");
    run(&plugin, basic).assert_401("Bearer", "missing bearer token");
    let empty = TestRequest::get("/").header("authorization", "Bearer   ");
    run(&plugin, empty).assert_401("Bearer", "missing bearer token");
}
