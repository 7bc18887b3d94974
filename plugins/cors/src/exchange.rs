//! What the filter does with one request: tell a preflight from an actual
//! request, decide whether it is allowed, and write the CORS headers (onto
//! the filter's own 204, or onto the handler's response).

use covet_plugin_api::{Request, Response, ResponseMut};

use crate::config::{AllowHeaders, Policy};

/// `vary` on every preflight answer.
pub const PREFLIGHT_VARY: [&str; 3] = ["origin", "access-control-request-method", "access-control-request-headers"];

/// What kind of cross-origin request this is.
pub enum Kind<'r> {
    /// No `origin`: not a CORS request.
    Plain,
    /// `OPTIONS` with `origin` and `access-control-request-method`.
    Preflight { origin: &'r str, method: &'r str },
    /// Any other request with `origin`.
    Actual { origin: &'r str },
}

impl<'r> Kind<'r> {
    /// Classifies `req`.
    pub fn of(req: &'r Request<'_>) -> Kind<'r> {
        let Some(origin) = req.header("origin") else { return Kind::Plain };
        match req.header("access-control-request-method") {
            Some(method) if req.method() == "OPTIONS" => Kind::Preflight { origin, method },
            _ => Kind::Actual { origin },
        }
    }
}

/// Why a preflight is refused, for the 403's message and details.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The origin is not allowed.
    Origin,
    /// The method it asks for is not allowed.
    Method(String),
    /// A header it asks for is not allowed.
    Header(String),
}

/// Checks a preflight; `Ok` carries the `access-control-allow-headers` value, if any.
pub fn check_preflight<'a>(policy: &'a Policy, req: &'a Request<'_>, origin: &str, method: &str) -> Result<Option<&'a str>, Refusal> {
    if !policy.origins.allows(origin) {
        return Err(Refusal::Origin);
    }
    if !policy.methods.iter().any(|m| m == method) {
        return Err(Refusal::Method(method.to_string()));
    }
    let requested = req.header("access-control-request-headers").map(str::trim).filter(|h| !h.is_empty());
    match &policy.headers {
        AllowHeaders::Mirror => Ok(requested),
        AllowHeaders::List(names, value) => {
            let wanted = requested.into_iter().flat_map(|h| h.split(',')).map(str::trim).filter(|h| !h.is_empty());
            for header in wanted {
                if !names.iter().any(|n| n.eq_ignore_ascii_case(header)) {
                    return Err(Refusal::Header(header.to_ascii_lowercase()));
                }
            }
            Ok(Some(value.as_str()).filter(|v| !v.is_empty()))
        }
    }
}

/// The 403 for a refused preflight (covet's structured error).
pub fn forbidden(refusal: &Refusal, origin: &str, request_id: &str) -> Response {
    let (message, details) = match refusal {
        Refusal::Origin => (
            format!("CORS: origin {origin} is not allowed"),
            serde_json::json!({ "origin": origin }),
        ),
        Refusal::Method(method) => (
            format!("CORS: method {method} is not allowed for cross-origin requests"),
            serde_json::json!({ "origin": origin, "method": method }),
        ),
        Refusal::Header(header) => (
            format!("CORS: request header {header} is not allowed for cross-origin requests"),
            serde_json::json!({ "origin": origin, "header": header }),
        ),
    };
    let mut resp = Response::error(403, "CORS_FORBIDDEN", &message, details, request_id);
    for name in PREFLIGHT_VARY {
        resp = resp.with_header("vary", name);
    }
    resp
}

/// Where CORS headers are written: the filter's own response or the handler's.
pub trait Headers {
    /// Replaces a header.
    fn set(&mut self, name: &str, value: &str);
    /// The first value of a header.
    fn get(&self, name: &str) -> Option<&str>;
    /// Adds one more value.
    fn append(&mut self, name: &str, value: &str);
}

impl Headers for Response {
    fn set(&mut self, name: &str, value: &str) {
        let kept = self.headers.iter().filter(|h| !h.name.as_str().eq_ignore_ascii_case(name)).cloned();
        let mut headers: Vec<_> = kept.collect();
        headers.push(covet_plugin_api::Header::new(name, value));
        self.headers = headers.into();
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.header(name)
    }
    fn append(&mut self, name: &str, value: &str) {
        self.headers.push(covet_plugin_api::Header::new(name, value));
    }
}

impl Headers for ResponseMut<'_> {
    // Values come from the config (checked at init) or from the request's
    // own headers, so the host never refuses them; a refusal changes nothing.
    fn set(&mut self, name: &str, value: &str) {
        let _ = self.set_header(name, value);
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.header(name)
    }
    fn append(&mut self, name: &str, value: &str) {
        let _ = self.append_header(name, value);
    }
}

/// `access-control-allow-origin` (+ credentials) for an allowed `origin`.
pub fn allow_origin(policy: &Policy, origin: &str, out: &mut impl Headers) {
    let value = if policy.origins.is_any() { "*" } else { origin };
    out.set("access-control-allow-origin", value);
    if policy.credentials {
        out.set("access-control-allow-credentials", "true");
    }
}

/// The headers of an allowed preflight's answer.
pub fn preflight_headers(policy: &Policy, origin: &str, allow_headers: Option<&str>, out: &mut impl Headers) {
    allow_origin(policy, origin, out);
    out.set("access-control-allow-methods", &policy.methods_value);
    if let Some(headers) = allow_headers {
        out.set("access-control-allow-headers", headers);
    }
    if let Some(max_age) = &policy.max_age {
        out.set("access-control-max-age", max_age);
    }
    add_vary(out, &PREFLIGHT_VARY);
}

/// The headers of an actual request from an allowed `origin`.
pub fn actual_headers(policy: &Policy, origin: &str, out: &mut impl Headers) {
    allow_origin(policy, origin, out);
    if let Some(expose) = &policy.expose {
        out.set("access-control-expose-headers", expose);
    }
}

/// Adds the `names` not yet in the response's `vary` as one more `vary`
/// value; `vary: *` already covers everything. (Only the first `vary` line
/// is visible to a filter, so a name on a later line may be repeated:
/// harmless, as `vary` is a set.)
pub fn add_vary(out: &mut impl Headers, names: &[&str]) {
    let existing = out.get("vary").unwrap_or("");
    let listed: Vec<&str> = existing.split(',').map(str::trim).collect();
    if listed.contains(&"*") {
        return;
    }
    let missing: Vec<&str> =
        names.iter().copied().filter(|n| !listed.iter().any(|l| l.eq_ignore_ascii_case(n))).collect();
    if !missing.is_empty() {
        out.append("vary", &missing.join(", "));
    }
}
