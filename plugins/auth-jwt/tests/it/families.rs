//! Every supported algorithm verifies, from PEM files and from a JWK set.

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, Jwk, JwkSet},
};
use serde_json::{Value, json};

use crate::support::*;

#[test]
fn every_algorithm_verifies_with_its_pem_key_by_kid() {
    let plugin = plugin(config_with(json!({})));
    for alg in ALL_ALGORITHMS {
        let token = token(alg, Some(pem_kid(alg)), &claims(json!({})));
        send(&plugin, &token).assert_continues();
    }
}

#[test]
fn tokens_without_kid_are_tried_on_keys_allowing_their_alg() {
    let plugin = plugin(config_with(json!({})));
    for alg in ALL_ALGORITHMS {
        send(&plugin, &token(alg, None, &claims(json!({})))).assert_continues();
    }
}

#[test]
fn every_family_verifies_from_the_jwks_with_the_sets_kids() {
    let plugin = plugin(json!({ "keys": [{ "jwks_file": fixture("jwks.json") }] }));
    let cases = [
        (Algorithm::RS256, "rsa-1"),
        (Algorithm::ES256, "ec256-1"),
        (Algorithm::ES384, "ec384-1"),
        (Algorithm::EdDSA, "ed25519-1"),
    ];
    for (alg, kid) in cases {
        send(&plugin, &token(alg, Some(kid), &claims(json!({})))).assert_continues();
    }
}

#[test]
fn a_jwk_verifies_only_its_declared_alg() {
    let plugin = plugin(json!({ "keys": [{ "jwks_file": fixture("jwks.json") }] }));
    let ps256 = token(Algorithm::PS256, Some("rsa-1"), &claims(json!({})));
    send(&plugin, &ps256).assert_refused("algorithm not allowed");
}

#[test]
fn jwks_keys_without_alg_take_the_entry_algorithms() {
    let path = std::env::temp_dir().join(format!("covet-auth-jwt-{}-noalg.json", std::process::id()));
    let mut set: Value = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    for key in set["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("alg");
    }
    std::fs::write(&path, set.to_string()).unwrap();

    let entry = json!({ "jwks_file": path, "algorithms": ["PS256", "ES256", "ES384", "EdDSA"] });
    let err = init_error(json!({ "keys": [entry] }));
    assert_eq!(err, "keys[0]: key 1 (kid `ec256-1`) of the set: ES384 needs a P-384 key, but this key is P256");

    let entry = json!({ "jwks_file": path, "algorithms": ["PS256", "EdDSA"] });
    let err = init_error(json!({ "keys": [entry] }));
    assert_eq!(err, "keys[0]: key 1 (kid `ec256-1`) of the set: PS256 cannot be verified with EC key material");

    let err = init_error(json!({ "keys": [{ "jwks_file": path }] }));
    assert!(err.ends_with("the JWK has no `alg`: add one to the JWK or give `algorithms` on this entry"), "{err}");

    set["keys"] = json!([set["keys"][0], set["keys"][3]]);
    std::fs::write(&path, set.to_string()).unwrap();
    let plugin = plugin(json!({ "keys": [{ "jwks_file": path, "algorithms": ["PS256", "EdDSA"] }] }));
    send(&plugin, &token(Algorithm::PS256, Some("rsa-1"), &claims(json!({})))).assert_continues();
    send(&plugin, &token(Algorithm::EdDSA, Some("ed25519-1"), &claims(json!({})))).assert_continues();
    std::fs::remove_file(&path).unwrap();
}

/// Guards the fixtures: the public keys in jwks.json are the PEM files' keys.
#[test]
fn fixture_jwks_holds_the_fixture_public_keys() {
    let set: JwkSet = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    let pem = |name: &str| std::fs::read(fixture(name)).unwrap();
    let expected = [
        ("rsa-1", DecodingKey::from_rsa_pem(&pem("rsa.pub.pem"))),
        ("ec256-1", DecodingKey::from_ec_pem(&pem("ec-p256.pub.pem"))),
        ("ec384-1", DecodingKey::from_ec_pem(&pem("ec-p384.pub.pem"))),
        ("ed25519-1", DecodingKey::from_ed_pem(&pem("ed25519.pub.pem"))),
    ];
    for (kid, key) in expected {
        let from_pem = Jwk::from_decoding_key(&key.unwrap(), None).unwrap();
        let in_set = set.find(kid).unwrap_or_else(|| panic!("no {kid} in jwks.json"));
        assert_eq!(public_part(&in_set.algorithm), public_part(&from_pem.algorithm), "{kid}");
    }
}

fn public_part(params: &AlgorithmParameters) -> Value {
    match params {
        AlgorithmParameters::RSA(p) => json!([p.n, p.e]),
        AlgorithmParameters::EllipticCurve(p) => json!([p.curve, p.x, p.y]),
        AlgorithmParameters::OctetKeyPair(p) => json!([p.curve, p.x]),
        _ => panic!("unexpected key type"),
    }
}
