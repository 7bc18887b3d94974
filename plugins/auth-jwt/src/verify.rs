//! Verifying one token: read its header, pick the keys that may verify it,
//! check the signature and the claims. Every failure is a [`Rejection`] whose
//! [`reason`](Rejection::reason) is short and safe to send to the client.

use std::{borrow::Cow, str::FromStr, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, decode, errors::ErrorKind};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Map, Value};

use crate::{
    config::Settings,
    store::{Key, Keys},
};

/// The claims of a token, top level.
pub type Claims = Map<String, Value>;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not three base64url parts with a JSON header and payload.
    Malformed,
    /// `alg` is `none` or anything this plugin does not verify.
    UnsupportedAlgorithm,
    /// The header has `crit`: extensions this plugin does not understand.
    CriticalHeader,
    /// The token names a `kid` no configured key has.
    UnknownKid,
    /// No key fits the token and a remote key set has not been fetched yet.
    KeysUnavailable,
    /// No key that may verify this token allows its `alg`.
    AlgorithmNotAllowed,
    /// No candidate key verified the signature.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is ahead (beyond the leeway).
    NotYetValid,
    /// `iss` is not one of the configured issuers.
    BadIssuer,
    /// `aud` names none of the configured audiences.
    BadAudience,
    /// A required claim is absent.
    MissingClaim(String),
    /// A time claim (`exp`, `nbf`) is not a number.
    BadClaim(String),
}

impl Rejection {
    /// A short reason for the client, free of `"` and `\` (it goes into `WWW-Authenticate`).
    pub fn reason(&self) -> Cow<'static, str> {
        let fixed = match self {
            Rejection::Malformed => "malformed token",
            Rejection::UnsupportedAlgorithm => "unsupported algorithm",
            Rejection::CriticalHeader => "unsupported critical header",
            Rejection::UnknownKid => "unknown key id",
            Rejection::KeysUnavailable => "signing keys are not available yet",
            Rejection::AlgorithmNotAllowed => "algorithm not allowed",
            Rejection::BadSignature => "invalid signature",
            Rejection::Expired => "token expired",
            Rejection::NotYetValid => "token not yet valid",
            Rejection::BadIssuer => "invalid issuer",
            Rejection::BadAudience => "invalid audience",
            Rejection::MissingClaim(c) => return format!("missing required claim {}", sanitize(c)).into(),
            Rejection::BadClaim(c) => return format!("invalid claim {}", sanitize(c)).into(),
        };
        Cow::Borrowed(fixed)
    }
}

/// Keeps a claim name printable and quote-free for the challenge header.
fn sanitize(claim: &str) -> String {
    claim.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').take(64).collect()
}

/// The part of the JOSE header chosen keys depend on.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

/// Verifies tokens against the configured keys and claim rules.
pub struct Verifier {
    keys: Arc<Keys>,
    /// Required claims jsonwebtoken does not check itself (anything but exp/nbf/iss/aud/sub).
    other_required: Vec<String>,
}

const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "iss", "aud", "sub"];

impl Verifier {
    /// Builds the verifier over `keys` (built with [`base_validation`]'s rules).
    pub fn new(keys: Arc<Keys>, settings: &Settings) -> Verifier {
        let other_required =
            settings.required_claims.iter().filter(|c| !SPEC_CLAIMS.contains(&c.as_str())).cloned().collect();
        Verifier { keys, other_required }
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, Rejection> {
        let header = read_header(token)?;
        let alg = Algorithm::from_str(&header.alg).map_err(|_| Rejection::UnsupportedAlgorithm)?;
        if header.crit.is_some() {
            return Err(Rejection::CriticalHeader);
        }
        let claims = self.verify_with_candidates(token, alg, header.kid.as_deref())?;
        self.check_other_required(&claims)?;
        Ok(claims)
    }

    /// Tries each key that may verify the token; the first good signature decides.
    fn verify_with_candidates(&self, token: &str, alg: Algorithm, kid: Option<&str>) -> Result<Claims, Rejection> {
        let store = self.keys.current();
        let named: Vec<&Key> = match kid {
            Some(kid) => store.iter().filter(|k| k.material.kid.as_deref() == Some(kid)).collect(),
            None => store.iter().collect(),
        };
        if named.is_empty() {
            return Err(if store.pending() { Rejection::KeysUnavailable } else { Rejection::UnknownKid });
        }
        let mut candidates = named.into_iter().filter(|k| k.material.algorithms.contains(&alg)).peekable();
        if candidates.peek().is_none() {
            let waiting = kid.is_none() && store.pending();
            return Err(if waiting { Rejection::KeysUnavailable } else { Rejection::AlgorithmNotAllowed });
        }
        for key in candidates {
            match decode::<Claims>(token, &key.material.decoding, &key.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => return Err(rejection(e.kind())),
            }
        }
        Err(Rejection::BadSignature)
    }

    fn check_other_required(&self, claims: &Claims) -> Result<(), Rejection> {
        match self.other_required.iter().find(|c| !claims.contains_key(c.as_str())) {
            Some(missing) => Err(Rejection::MissingClaim(missing.clone())),
            None => Ok(()),
        }
    }
}

/// The claim rules every key shares; `algorithms` is set per key.
pub fn base_validation(settings: &Settings) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = settings.leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required: Vec<&str> =
        settings.required_claims.iter().map(String::as_str).filter(|c| SPEC_CLAIMS.contains(c)).collect();
    if let Some(issuers) = &settings.issuer {
        v.set_issuer(issuers);
        required.push("iss");
    }
    match &settings.audience {
        Some(audiences) => {
            v.set_audience(audiences);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

fn read_header(token: &str) -> Result<JoseHeader, Rejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Rejection::Malformed);
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| Rejection::Malformed)
}

fn rejection(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidIssuer => Rejection::BadIssuer,
        ErrorKind::InvalidAudience => Rejection::BadAudience,
        ErrorKind::MissingRequiredClaim(c) => Rejection::MissingClaim(c.clone()),
        ErrorKind::InvalidClaimFormat(c) => Rejection::BadClaim(c.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Rejection::AlgorithmNotAllowed,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => Rejection::BadSignature,
        _ => Rejection::Malformed,
    }
}
