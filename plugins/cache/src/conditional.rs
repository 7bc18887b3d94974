//! Conditional requests: a client's `If-None-Match` / `If-Modified-Since`
//! answered from a stored response (RFC 9110 §13.1.2, §13.1.3: weak
//! comparison, `If-None-Match` wins), and the validators a cache adds to
//! revalidate a stale entry (RFC 9111 §4.3.1).

use covet_plugin_api::Request;

use crate::{freshness::http_date_ms, policy::Policy};

/// The client's conditional headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
}

impl Conditions {
    /// The conditions `req` carries.
    pub fn of(req: &Request<'_>) -> Conditions {
        Conditions {
            if_none_match: req.header("if-none-match").map(str::to_string),
            if_modified_since: req.header("if-modified-since").map(str::to_string),
        }
    }

    /// Whether there are any.
    pub fn any(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
}

/// Whether a stored response with `policy`'s validators satisfies a client's
/// `If-None-Match` / `If-Modified-Since`, i.e. the answer is a 304.
pub fn not_modified(if_none_match: Option<&str>, if_modified_since: Option<&str>, policy: &Policy) -> bool {
    if let Some(inm) = if_none_match {
        let Some(etag) = policy.etag.as_deref() else { return inm.trim() == "*" };
        return inm.split(',').map(str::trim).any(|t| t == "*" || weak_eq(t, etag));
    }
    let Some(ims) = if_modified_since.and_then(http_date_ms) else { return false };
    let modified = policy.last_modified.as_deref().and_then(http_date_ms);
    modified.is_some_and(|lm| lm <= ims)
}

/// RFC 9110 §8.8.3.2 weak comparison: the opaque tags match, `W/` or not.
pub fn weak_eq(a: &str, b: &str) -> bool {
    let strip = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_string();
    strip(a) == strip(b)
}

/// Makes the origin request conditional on the stored validators (only when
/// the client sent no condition of its own). Returns whether it did.
pub fn add_validators(req: &mut Request<'_>, policy: &Policy) -> bool {
    if req.header("if-none-match").is_some() || req.header("if-modified-since").is_some() {
        return false;
    }
    let mut added = false;
    if let Some(etag) = &policy.etag {
        added |= req.set_header("if-none-match", etag).is_ok();
    }
    if let Some(lm) = &policy.last_modified {
        added |= req.set_header("if-modified-since", lm).is_ok();
    }
    added
}

/// Headers a 304 carries from the stored response (RFC 9110 §15.4.5).
pub const NOT_MODIFIED_HEADERS: [&str; 7] = ["cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified"];
