//! The verification cache: hits return the same verified token, and no entry
//! outlives its token's `exp`.

use std::{
    sync::Arc,
    thread::sleep,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use covet_auth_jwt::Rejection;
use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::*;

#[test]
fn a_cache_hit_returns_the_same_claims() {
    let plugin = plugin(config_with(json!({})));
    let token = token(Algorithm::RS512, Some("rsa"), &claims(json!({ "scope": "read" })));
    let first = plugin.authenticate(&token).unwrap();
    let second = plugin.authenticate(&token).unwrap();
    assert!(Arc::ptr_eq(&first, &second), "the second call should be a cache hit");
    assert_eq!(second.claims()["scope"], "read");
    let out = send(&plugin, &token);
    out.assert_continues();
    assert_eq!(out.req.get_metadata("jwt.scope"), Some("read"));
}

#[test]
fn a_cached_token_is_refused_once_expired() {
    let plugin = plugin(config_with(json!({ "leeway": 0 })));
    let exp = now() + 2;
    let token = token(Algorithm::HS256, Some("hs"), &claims(json!({ "exp": exp })));
    let first = plugin.authenticate(&token).unwrap();
    assert!(Arc::ptr_eq(&first, &plugin.authenticate(&token).unwrap()));

    // Past exp the entry is gone: the token is verified afresh (still inside
    // the second jsonwebtoken counts as valid) and not cached again.
    sleep_until(exp, 200);
    let fresh = plugin.authenticate(&token).unwrap();
    assert!(!Arc::ptr_eq(&first, &fresh), "the cache served a token past its exp");

    sleep_until(exp + 1, 100);
    assert_eq!(plugin.authenticate(&token).unwrap_err(), Rejection::Expired);
    send(&plugin, &token).assert_refused("token expired");
}

fn sleep_until(epoch_secs: u64, extra_millis: u64) {
    let target = UNIX_EPOCH + Duration::from_secs(epoch_secs) + Duration::from_millis(extra_millis);
    if let Ok(wait) = target.duration_since(SystemTime::now()) {
        sleep(wait);
    }
}

#[test]
fn tokens_not_yet_valid_are_not_cached() {
    let plugin = plugin(config_with(json!({ "leeway": "30s" })));
    let token = token(Algorithm::ES256, Some("ec256"), &claims(json!({ "nbf": now() + 20 })));
    let first = plugin.authenticate(&token).unwrap();
    let second = plugin.authenticate(&token).unwrap();
    assert!(!Arc::ptr_eq(&first, &second), "a token before its nbf was cached");
}

#[test]
fn max_entries_zero_disables_the_cache() {
    let plugin = plugin(config_with(json!({ "cache": { "max_entries": 0 } })));
    let token = token(Algorithm::EdDSA, Some("ed"), &claims(json!({})));
    let first = plugin.authenticate(&token).unwrap();
    assert!(!Arc::ptr_eq(&first, &plugin.authenticate(&token).unwrap()));
}

#[test]
fn refused_tokens_are_never_cached() {
    let plugin = plugin(config_with(json!({})));
    let good = token(Algorithm::HS256, Some("hs"), &claims(json!({})));
    plugin.authenticate(&good).unwrap();
    let (message, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{message}.c2lnbmF0dXJl");
    for _ in 0..2 {
        assert_eq!(plugin.authenticate(&forged).unwrap_err(), Rejection::BadSignature);
    }
}
