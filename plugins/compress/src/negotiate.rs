//! Header logic, free of I/O: `Accept-Encoding` negotiation with q-values
//! (RFC 9110 §12.5.3), content-type matching, `Cache-Control: no-transform`
//! and strong-ETag weakening.

/// A content coding this plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Coding {
    /// `gzip` (also accepted as `x-gzip` from clients).
    #[serde(rename = "gzip")]
    Gzip,
    /// `br` (brotli).
    #[serde(rename = "br")]
    Brotli,
    /// `zstd`.
    #[serde(rename = "zstd")]
    Zstd,
}

impl Coding {
    /// The token used in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The coding a `Content-Encoding` token names, if this plugin speaks it.
    pub fn from_token(token: &str) -> Option<Coding> {
        let token = token.trim();
        if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Some(Coding::Gzip)
        } else if token.eq_ignore_ascii_case("br") {
            Some(Coding::Brotli)
        } else if token.eq_ignore_ascii_case("zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }
}

/// The q-value of each member of an `Accept-Encoding` value, in thousandths
/// (`None` when the member is not mentioned).
#[derive(Debug, Default)]
struct Accepted {
    gzip: Option<u16>,
    br: Option<u16>,
    zstd: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

/// Parses a q-value (`0`, `0.5`, `1.000`) into thousandths; `None` if malformed.
fn parse_q(text: &str) -> Option<u16> {
    let text = text.trim();
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

fn parse_accept(header: &str) -> Accepted {
    let mut accepted = Accepted::default();
    for member in header.split(',') {
        let mut parts = member.split(';');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            if let Some((key, value)) = param.split_once('=')
                && key.trim().eq_ignore_ascii_case("q")
            {
                q = parse_q(value);
            }
        }
        let Some(q) = q else { continue }; // a malformed q-value: ignore the member
        let slot = if name == "*" {
            &mut accepted.any
        } else if name.eq_ignore_ascii_case("identity") {
            &mut accepted.identity
        } else {
            match Coding::from_token(name) {
                Some(Coding::Gzip) => &mut accepted.gzip,
                Some(Coding::Brotli) => &mut accepted.br,
                Some(Coding::Zstd) => &mut accepted.zstd,
                None => continue,
            }
        };
        // The highest q given for a coding wins (gzip and x-gzip, say).
        *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
    }
    accepted
}

/// Picks the coding for a response: among the server's `preference` (most
/// preferred first), the one the client rates highest (ties go to the
/// server's order); a coding the client does not name gets the q of `*`,
/// or is not acceptable. `None` — send it uncompressed — when nothing is
/// acceptable (q=0 excludes), or the client rates `identity` explicitly
/// above every acceptable coding.
pub fn negotiate(accept_encoding: &str, preference: &[Coding]) -> Option<Coding> {
    let accepted = parse_accept(accept_encoding);
    let mut best: Option<(Coding, u16)> = None;
    for &coding in preference {
        let named = match coding {
            Coding::Gzip => accepted.gzip,
            Coding::Brotli => accepted.br,
            Coding::Zstd => accepted.zstd,
        };
        let q = named.or(accepted.any).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, top)| q > top) {
            best = Some((coding, q));
        }
    }
    let (coding, q) = best?;
    match accepted.identity {
        Some(identity) if identity > q => None,
        _ => Some(coding),
    }
}

/// A pattern of compressible content types: `text/*`, `application/json`,
/// or a structured-syntax suffix `+json` (any `type/x+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    /// Exactly this media type.
    Exact(String),
    /// Any subtype of this top-level type (`text/*`).
    Prefix(String),
    /// Any media type ending with this suffix (`+json`).
    Suffix(String),
}

impl TypePattern {
    /// Parses `text/*`, `+xml` or `application/json` (case-insensitive).
    pub fn parse(text: &str) -> Result<TypePattern, String> {
        let text = text.trim().to_ascii_lowercase();
        if let Some(top) = text.strip_suffix("/*") {
            return if top.is_empty() || top.contains('/') { Err(format!("bad content type pattern {text:?}")) } else { Ok(TypePattern::Prefix(format!("{top}/"))) };
        }
        if text.starts_with('+') && text.len() > 1 && !text.contains('/') {
            return Ok(TypePattern::Suffix(text));
        }
        match text.split_once('/') {
            Some((top, sub)) if !top.is_empty() && !sub.is_empty() && !sub.contains('/') => Ok(TypePattern::Exact(text)),
            _ => Err(format!("bad content type pattern {text:?}: use type/subtype, type/* or +suffix")),
        }
    }

    fn matches(&self, media_type: &str) -> bool {
        match self {
            TypePattern::Exact(t) => media_type == t,
            TypePattern::Prefix(p) => media_type.starts_with(p.as_str()),
            TypePattern::Suffix(s) => media_type.ends_with(s.as_str()),
        }
    }
}

/// The default compressible types.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/wasm",
    "application/x-ndjson",
    "application/graphql-response+json",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
    "+json",
    "+xml",
];

/// Whether a `Content-Type` value (parameters ignored) matches any pattern.
pub fn type_matches(content_type: &str, patterns: &[TypePattern]) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    !media_type.is_empty() && patterns.iter().any(|p| p.matches(&media_type))
}

/// Whether a `Cache-Control` value carries `no-transform`.
pub fn no_transform(cache_control: &str) -> bool {
    cache_control.split(',').any(|d| d.split('=').next().unwrap_or_default().trim().eq_ignore_ascii_case("no-transform"))
}

/// A strong ETag made weak (`"x"` → `W/"x"`): the compressed bytes are a
/// different representation, so a byte-for-byte validator no longer holds.
/// `None` when it is already weak (or not an entity tag).
pub fn weaken_etag(etag: &str) -> Option<String> {
    let etag = etag.trim();
    etag.starts_with('"').then(|| format!("W/{etag}"))
}

/// Whether a `Vary` value already names `accept-encoding` (or is `*`).
pub fn vary_has_accept_encoding(vary: &str) -> bool {
    vary.split(',').map(str::trim).any(|v| v == "*" || v.eq_ignore_ascii_case("accept-encoding"))
}
