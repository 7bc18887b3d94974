//! Loading and checking verification keys, once, at `init`.
//!
//! Every key is pinned to algorithms of one family, and its material is read
//! with that family's loader (an HMAC secret only from `secret_env`, public
//! keys only from PEM or JWK). A token can therefore only be verified with the
//! algorithm and key type the operator configured: the RS256→HS256 key
//! confusion attack has nothing to work with.

use std::{collections::HashSet, fs, path::Path, str::FromStr};

use jsonwebtoken::{
    Algorithm, AlgorithmFamily, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};

use crate::{
    config::KeySettings,
    error::{ConfigError, KeyError},
};

/// A loaded key: what it verifies and with what.
pub struct KeyMaterial {
    /// The key id tokens must name, if the key has one.
    pub kid: Option<String>,
    /// The algorithms this key verifies, all of one family.
    pub algorithms: Vec<Algorithm>,
    /// The key itself.
    pub decoding: DecodingKey,
}

/// A key set fetched over HTTP: where from, and the algorithms its entry lists.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    /// Where the set comes from.
    pub location: Location,
    /// The entry's `algorithms` (for JWKs without `alg`); may be empty.
    pub listed: Vec<Algorithm>,
}

/// Where a remote key set is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JWK set URL.
    Jwks(String),
    /// An OIDC issuer: its discovery document's `jwks_uri`.
    Discovery(String),
}

/// Every entry of `keys:`: the keys read now, and the sets fetched later.
pub struct Loaded {
    /// Keys from secrets, PEM files and JWK set files.
    pub local: Vec<KeyMaterial>,
    /// `jwks_url` and `oidc_discovery` entries, in order.
    pub remote: Vec<RemoteSource>,
}

/// Loads every entry of `keys:`; JWK sets expand to one key per signing key.
pub fn load_all(entries: &[KeySettings]) -> Result<Loaded, ConfigError> {
    let mut loaded = Loaded { local: Vec::new(), remote: Vec::new() };
    for (index, entry) in entries.iter().enumerate() {
        let at = |e| ConfigError::at(location(index, entry), e);
        match remote_source(entry).map_err(at)? {
            Some(source) => loaded.remote.push(source),
            None => loaded.local.extend(load_entry(entry).map_err(at)?),
        }
    }
    check_unique_kids(&loaded.local)?;
    Ok(loaded)
}

fn remote_source(entry: &KeySettings) -> Result<Option<RemoteSource>, KeyError> {
    let location = match (&entry.jwks_url, &entry.oidc_discovery) {
        (None, None) => return Ok(None),
        (Some(url), None) => Location::Jwks(url.clone()),
        (None, Some(issuer)) => Location::Discovery(issuer.clone()),
        (Some(_), Some(_)) => return Err(KeyError::Source),
    };
    if entry.secret_env.is_some() || entry.pem_file.is_some() || entry.jwks_file.is_some() {
        return Err(KeyError::Source);
    }
    if entry.kid.is_some() {
        return Err(KeyError::KidWithJwks);
    }
    Ok(Some(RemoteSource { location, listed: parse_names(&entry.algorithms)? }))
}

fn location(index: usize, entry: &KeySettings) -> String {
    match &entry.kid {
        Some(kid) => format!("keys[{index}] (kid `{kid}`)"),
        None => format!("keys[{index}]"),
    }
}

fn load_entry(entry: &KeySettings) -> Result<Vec<KeyMaterial>, KeyError> {
    let kid = entry.kid.clone();
    match (&entry.secret_env, &entry.pem_file, &entry.jwks_file) {
        (Some(var), None, None) => Ok(vec![load_secret(kid, parse_algorithms(&entry.algorithms)?, var)?]),
        (None, Some(path), None) => Ok(vec![load_pem(kid, parse_algorithms(&entry.algorithms)?, path)?]),
        (None, None, Some(path)) if kid.is_none() => load_jwks(path, &parse_names(&entry.algorithms)?),
        (None, None, Some(_)) => Err(KeyError::KidWithJwks),
        _ => Err(KeyError::Source),
    }
}

fn check_unique_kids(keys: &[KeyMaterial]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for kid in keys.iter().filter_map(|k| k.kid.as_deref()) {
        if !seen.insert(kid) {
            return Err(ConfigError::DuplicateKid(kid.to_string()));
        }
    }
    Ok(())
}

/// Parses algorithm names; `none` and anything unknown are refused.
fn parse_names(names: &[String]) -> Result<Vec<Algorithm>, KeyError> {
    let mut algorithms: Vec<Algorithm> = Vec::with_capacity(names.len());
    for name in names {
        let alg = Algorithm::from_str(name).map_err(|_| KeyError::UnknownAlgorithm(name.clone()))?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    Ok(algorithms)
}

/// Parses a key's `algorithms`: required, non-empty, one family.
fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, KeyError> {
    let algorithms = parse_names(names)?;
    let first = *algorithms.first().ok_or(KeyError::NoAlgorithms)?;
    match algorithms.iter().find(|a| a.family() != first.family()) {
        Some(other) => Err(KeyError::MixedFamilies(name(first), name(*other))),
        None => Ok(algorithms),
    }
}

fn name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "HMAC",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "Ed25519",
    }
}

fn load_secret(kid: Option<String>, algorithms: Vec<Algorithm>, var: &str) -> Result<KeyMaterial, KeyError> {
    if algorithms[0].family() != AlgorithmFamily::Hmac {
        let hint = "an HMAC secret only verifies HS256/HS384/HS512; give public keys with pem_file or jwks_file";
        return Err(KeyError::WrongSource { source_kind: "secret_env", alg: name(algorithms[0]), hint });
    }
    let secret = std::env::var_os(var).map(|v| v.into_encoded_bytes()).unwrap_or_default();
    if secret.is_empty() {
        return Err(KeyError::SecretUnset(var.to_string()));
    }
    let strictest = algorithms.iter().copied().max_by_key(|a| hmac_min_len(*a)).unwrap_or(Algorithm::HS256);
    if secret.len() < hmac_min_len(strictest) {
        let min = hmac_min_len(strictest);
        return Err(KeyError::SecretTooShort { var: var.to_string(), alg: name(strictest), min });
    }
    Ok(KeyMaterial { kid, algorithms, decoding: DecodingKey::from_secret(&secret) })
}

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
fn hmac_min_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn load_pem(kid: Option<String>, algorithms: Vec<Algorithm>, path: &Path) -> Result<KeyMaterial, KeyError> {
    let family = algorithms[0].family();
    if family == AlgorithmFamily::Hmac {
        let hint = "HMAC algorithms take a shared secret from secret_env";
        return Err(KeyError::WrongSource { source_kind: "pem_file", alg: name(algorithms[0]), hint });
    }
    let pem = fs::read(path).map_err(|error| KeyError::Read { path: path.to_path_buf(), error })?;
    if pem.windows(16).any(|w| w == b"PRIVATE KEY-----") {
        return Err(KeyError::PrivatePem { path: path.to_path_buf() });
    }
    let (decoded, kind) = match family {
        AlgorithmFamily::Rsa => (DecodingKey::from_rsa_pem(&pem), "an RSA"),
        AlgorithmFamily::Ec => (DecodingKey::from_ec_pem(&pem), "an EC"),
        _ => (DecodingKey::from_ed_pem(&pem), "an Ed25519"),
    };
    let decoding = decoded.map_err(|_| KeyError::BadPem { path: path.to_path_buf(), kind })?;
    check_shape(&decoding, &algorithms)?;
    Ok(KeyMaterial { kid, algorithms, decoding })
}

fn load_jwks(path: &Path, listed: &[Algorithm]) -> Result<Vec<KeyMaterial>, KeyError> {
    let text = fs::read_to_string(path).map_err(|error| KeyError::Read { path: path.to_path_buf(), error })?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| KeyError::BadJwks { path: path.to_path_buf(), error: e.to_string() })?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for (index, jwk) in set.keys.iter().enumerate().filter(|(_, jwk)| is_signing_key(jwk)) {
        let kid = jwk.common.key_id.clone();
        let key = load_jwk(jwk, listed).map_err(|e| KeyError::InJwks { index, kid, source: Box::new(e) })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::EmptyJwks { path: path.to_path_buf() });
    }
    Ok(keys)
}

/// Encryption keys (`use: enc`, RSA-OAEP and friends) in a set are skipped.
pub fn is_signing_key(jwk: &Jwk) -> bool {
    let encryption_alg = matches!(
        jwk.common.key_algorithm,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256)
    );
    !encryption_alg && !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
}

/// Loads one JWK, pinned to its `alg` or to the `listed` algorithms of its family.
pub fn load_jwk(jwk: &Jwk, listed: &[Algorithm]) -> Result<KeyMaterial, KeyError> {
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| KeyError::JwkKeyType)?;
    let family = decoding.family();
    let algorithms = match jwk.common.key_algorithm {
        Some(declared) => vec![declared_algorithm(declared, listed)?],
        None => listed.iter().copied().filter(|a| a.family() == family).collect(),
    };
    match algorithms.first() {
        None if listed.is_empty() => return Err(KeyError::JwkNoAlgorithm),
        None => return Err(KeyError::KeyTypeMismatch { alg: name(listed[0]), family: family_name(family) }),
        Some(alg) if alg.family() != family => {
            return Err(KeyError::KeyTypeMismatch { alg: name(*alg), family: family_name(family) });
        }
        Some(_) => {}
    }
    check_shape(&decoding, &algorithms)?;
    Ok(KeyMaterial { kid: jwk.common.key_id.clone(), algorithms, decoding })
}

fn declared_algorithm(declared: KeyAlgorithm, listed: &[Algorithm]) -> Result<Algorithm, KeyError> {
    let alg = Algorithm::try_from(declared).map_err(|_| KeyError::UnknownAlgorithm(declared.to_string()))?;
    if !listed.is_empty() && !listed.contains(&alg) {
        return Err(KeyError::JwkAlgorithmNotListed(name(alg)));
    }
    Ok(alg)
}

/// Checks what the family alone does not: RSA size, EC curve per algorithm.
fn check_shape(key: &DecodingKey, algorithms: &[Algorithm]) -> Result<(), KeyError> {
    let unusable = || KeyError::Unusable(family_name(key.family()));
    let jwk = Jwk::from_decoding_key(key, None).map_err(|_| unusable())?;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => check_rsa_size(&rsa.n),
        AlgorithmParameters::EllipticCurve(ec) => algorithms.iter().try_for_each(|alg| check_curve(*alg, &ec.curve)),
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Ok(()),
        AlgorithmParameters::OctetKey(_) => Ok(()),
        _ => Err(unusable()),
    }
}

/// aws-lc verifies RSA signatures only with 2048..=8192-bit keys.
fn check_rsa_size(modulus_b64: &str) -> Result<(), KeyError> {
    let bits = modulus_b64.trim_end_matches('=').len() * 6 / 8 * 8;
    if bits < 2048 {
        return Err(KeyError::RsaTooSmall(bits));
    }
    Ok(())
}

fn check_curve(alg: Algorithm, curve: &EllipticCurve) -> Result<(), KeyError> {
    let (needs, wanted) = match alg {
        Algorithm::ES384 => ("a P-384 key", EllipticCurve::P384),
        _ => ("a P-256 key", EllipticCurve::P256),
    };
    if *curve == wanted {
        return Ok(());
    }
    Err(KeyError::Shape { alg: name(alg), needs, found: format!("{curve:?}") })
}
