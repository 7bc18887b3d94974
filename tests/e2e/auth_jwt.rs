//! auth-jwt behind the real host: good tokens pass with their claims as
//! metadata and forwarded headers; every attack is a 401 with an RFC 6750
//! `invalid_token` challenge and never reaches the handler.

use covet_e2e::{Host, Manifest, Reply, Route};
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use crate::{
    common::{PATIENCE, assert_problem, labelled},
    tokens::{
        AUDIENCE, ISSUER, SECRET, SECRET_VAR, auth_config, bearer, claims, hs256, key_file, now, rs256, signed,
        unsigned,
    },
};

fn gateway() -> Manifest {
    Manifest::new()
        .plugin("auth", "covet-auth-jwt", auth_config())
        .plugin("echo", "covet-test-plugin", labelled("echo"))
        .route(Route::new("/me").filters(["auth"]).handler("echo"))
}

async fn start() -> Host {
    let host = Host::builder(gateway()).env(SECRET_VAR, SECRET).start();
    host.wait_ready().await;
    host
}

async fn get_me(host: &Host, headers: &[(&str, &str)]) -> Reply {
    host.http1().send(Method::GET, "/me", headers, "").await.unwrap()
}

/// Asserts `token` is refused with an `invalid_token` challenge giving `reason`.
async fn assert_refused(host: &Host, token: &str, reason: &str) {
    let reply = get_me(host, &[("authorization", &bearer(token))]).await;
    assert_eq!(reply.status, 401, "accepted ({reason} expected): {}", reply.text());
    let challenge = reply.header("www-authenticate").expect("a WWW-Authenticate challenge");
    assert!(challenge.starts_with(r#"Bearer error="invalid_token""#), "challenge: {challenge}");
    assert!(challenge.contains(&format!(r#"error_description="{reason}""#)), "challenge: {challenge}");
    let error = assert_problem(&reply, 401, "UNAUTHORIZED");
    assert_eq!(error["message"], reason);
}

#[tokio::test]
async fn valid_hs256_token_passes_with_its_claims_as_metadata_and_headers() {
    let host = start().await;
    let token = hs256(&claims("user-42", json!({})));
    let auth = bearer(&token);
    let reply = get_me(&host, &[("authorization", &auth), ("x-user-id", "mallory")]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    assert_eq!(echo["metadata"]["jwt.sub"], "user-42");
    assert_eq!(echo["metadata"]["jwt.iss"], ISSUER);
    assert_eq!(echo["headers"]["x-user-id"], "user-42", "the forwarded claim replaces what the client sent");
}

#[tokio::test]
async fn valid_rs256_token_signed_with_the_fixture_key_passes() {
    let host = start().await;
    let token = rs256(&claims("rsa-user", json!({})));
    let reply = get_me(&host, &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["metadata"]["jwt.sub"], "rsa-user");
}

#[tokio::test]
async fn missing_token_is_401_with_a_bare_bearer_challenge() {
    let host = start().await;
    for headers in [&[][..], &[("authorization", "Basic dXNlcjpwdw==")][..]] {
        let reply = get_me(&host, headers).await;
        assert_eq!(reply.status, 401, "{}", reply.text());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_problem(&reply, 401, "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn alg_none_token_is_refused() {
    let host = start().await;
    assert_refused(&host, &unsigned("hs-1", &claims("root", json!({}))), "unsupported algorithm").await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let host = start().await;
    let public_pem = std::fs::read(key_file("rsa.pub.pem")).unwrap();
    let confused = EncodingKey::from_secret(&public_pem);
    let forged = claims("root", json!({}));
    let aimed_at_rsa_key = signed(Algorithm::HS256, Some("rsa-1"), &forged, &confused);
    assert_refused(&host, &aimed_at_rsa_key, "algorithm not allowed").await;
    let without_kid = signed(Algorithm::HS256, None, &forged, &confused);
    assert_refused(&host, &without_kid, "invalid signature").await;
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let host = start().await;
    let token = hs256(&claims("user-42", json!({})));
    let other = hs256(&claims("admin", json!({})));
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    assert_refused(&host, &parts.join("."), "invalid signature").await;
}

#[tokio::test]
async fn expired_token_is_refused() {
    let host = start().await;
    let token = hs256(&claims("user-42", json!({ "exp": now() - 3600, "iat": now() - 7200 })));
    assert_refused(&host, &token, "token expired").await;
}

#[tokio::test]
async fn token_whose_nbf_is_in_the_future_is_refused() {
    let host = start().await;
    let token = hs256(&claims("user-42", json!({ "nbf": now() + 3600 })));
    assert_refused(&host, &token, "token not yet valid").await;
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let host = start().await;
    assert_ne!(AUDIENCE, "someone-else");
    let token = hs256(&claims("user-42", json!({ "aud": "someone-else" })));
    assert_refused(&host, &token, "invalid audience").await;
}

#[tokio::test]
async fn token_from_another_issuer_is_refused() {
    let host = start().await;
    let token = hs256(&claims("user-42", json!({ "iss": "https://evil.example" })));
    assert_refused(&host, &token, "invalid issuer").await;
}

#[tokio::test]
async fn token_naming_an_unknown_kid_is_refused() {
    let host = start().await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = signed(Algorithm::HS256, Some("nope"), &claims("user-42", json!({})), &key);
    assert_refused(&host, &token, "unknown key id").await;
}

#[test]
fn host_refuses_to_start_without_the_secret_naming_the_variable() {
    let exited = Host::builder(gateway()).run_to_exit(PATIENCE);
    assert!(!exited.status.success());
    assert!(exited.stderr.contains(SECRET_VAR), "stderr:\n{}", exited.stderr);
}
