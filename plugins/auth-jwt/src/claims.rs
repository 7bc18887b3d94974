//! [`Verified`]: what a good token gives the request. Metadata and forwarded
//! header values are rendered once per token, so a cache hit only copies
//! strings into the request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covet_plugin_api::Request;
use serde_json::Value;

use crate::verify::Claims;

/// A verified token, ready to apply to requests.
#[derive(Debug)]
pub struct Verified {
    claims: Claims,
    metadata: Vec<(String, String)>,
    /// One value per [`Outputs::forward`] entry; `None` when the claim is absent.
    forwarded: Vec<Option<String>>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

impl Verified {
    /// The token's top-level claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The `exp` claim in seconds since the epoch, if any.
    pub fn expires_at(&self) -> Option<u64> {
        self.exp
    }

    /// Whether the token may be cached at `now`: already valid (`nbf` reached,
    /// leeway not counted) and not yet expired.
    pub fn is_cacheable(&self, now: SystemTime) -> bool {
        let started = self.nbf.is_none_or(|nbf| at(nbf) <= now);
        started && self.is_live(now)
    }

    /// Whether `exp` (if any) is still ahead of `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.exp.is_none_or(|exp| now < at(exp))
    }
}

fn at(epoch_secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(epoch_secs)
}

/// What a verified token is turned into: metadata and forwarded headers.
pub struct Outputs {
    /// Copy every claim into metadata as `jwt.<claim>`.
    pub claims_to_metadata: bool,
    /// `(claim, header)` pairs.
    pub forward: Vec<(String, String)>,
}

impl Outputs {
    /// Renders the claims once into what [`Outputs::apply`] writes.
    pub fn prepare(&self, claims: Claims) -> Verified {
        let metadata = match self.claims_to_metadata {
            true => claims.iter().map(|(name, value)| (format!("jwt.{name}"), text(value))).collect(),
            false => Vec::new(),
        };
        let forwarded = self.forward.iter().map(|(claim, _)| claims.get(claim).map(text)).collect();
        let exp = time_claim(&claims, "exp");
        let nbf = time_claim(&claims, "nbf");
        Verified { claims, metadata, forwarded, exp, nbf }
    }

    /// Writes metadata and forwarded headers into the request. A forwarded
    /// header whose claim is absent (or is not a valid header value) is
    /// removed, so a client can never supply it itself.
    pub fn apply(&self, verified: &Verified, req: &mut Request<'_>) {
        for (key, value) in &verified.metadata {
            req.set_metadata(key, value);
        }
        for ((_, header), value) in self.forward.iter().zip(&verified.forwarded) {
            let set = value.as_deref().map(|v| req.set_header(header, v));
            if !matches!(set, Some(Ok(()))) {
                req.remove_header(header);
            }
        }
    }
}

/// Strings as they are; anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A NumericDate claim, read the way jsonwebtoken reads it (floats rounded).
fn time_claim(claims: &Claims, name: &str) -> Option<u64> {
    let value = claims.get(name)?;
    value.as_u64().or_else(|| value.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.round() as u64))
}
