//! `Cache-Control` directives (RFC 9111 §5.2), read from a request or a
//! response: hand-written because the grammar is small and the hit path
//! reads the request's directives without allocating.

/// The directives a cache acts on. Durations are in seconds; a directive
/// given twice keeps its first value; an invalid delta is ignored, except
/// `max-age`/`s-maxage`, where RFC 9111 §4.2.1 asks to treat the response as stale (0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (unqualified, or qualified: field names in `no_cache_fields`).
    pub no_cache: bool,
    /// Fields named by a qualified `no-cache="…"` (not stored).
    pub no_cache_fields: Vec<String>,
    /// `private` (unqualified).
    pub private: bool,
    /// Fields named by a qualified `private="…"` (not stored by a shared cache).
    pub private_fields: Vec<String>,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage`.
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error`.
    pub stale_if_error: Option<u64>,
    /// `max-stale` (request): `Some(None)` for any staleness.
    pub max_stale: Option<Option<u64>>,
    /// `min-fresh` (request).
    pub min_fresh: Option<u64>,
    /// `only-if-cached` (request).
    pub only_if_cached: bool,
}

impl Directives {
    /// Reads one `Cache-Control` value (several header lines joined with `,`).
    pub fn parse(value: &str) -> Directives {
        let mut d = Directives::default();
        for part in split_top_level(value) {
            let (name, arg) = match part.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (part.trim(), None),
            };
            d.apply(name, arg);
        }
        d
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "no-store" => self.no_store = true,
            "no-cache" => match arg {
                Some(fields) => self.no_cache_fields.extend(field_list(fields)),
                None => self.no_cache = true,
            },
            "private" => match arg {
                Some(fields) => self.private_fields.extend(field_list(fields)),
                None => self.private = true,
            },
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "max-age" => first(&mut self.max_age, Some(delta(arg).unwrap_or(0))),
            "s-maxage" => first(&mut self.s_maxage, Some(delta(arg).unwrap_or(0))),
            "stale-while-revalidate" => first(&mut self.stale_while_revalidate, delta(arg)),
            "stale-if-error" => first(&mut self.stale_if_error, delta(arg)),
            "max-stale" if self.max_stale.is_none() => self.max_stale = Some(delta(arg)),
            "min-fresh" => first(&mut self.min_fresh, delta(arg)),
            "only-if-cached" => self.only_if_cached = true,
            _ => {}
        }
    }
}

fn first(slot: &mut Option<u64>, value: Option<u64>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// A delta-seconds argument (quoted or not); too large saturates.
fn delta(arg: Option<&str>) -> Option<u64> {
    let text = arg?.trim().trim_matches('"');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX / 2_000))
}

/// The field names of a qualified `no-cache="a, b"` / `private="a"`, lower case.
fn field_list(arg: &str) -> impl Iterator<Item = String> + '_ {
    arg.trim_matches('"').split(',').map(|f| f.trim().to_ascii_lowercase()).filter(|f| !f.is_empty())
}

/// Splits on commas outside double quotes.
fn split_top_level(value: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter().filter(|p| !p.trim().is_empty())
}

/// Whether a request's `Pragma` asks for `no-cache` (honoured only when the
/// request has no `Cache-Control`, RFC 9111 §5.4).
pub fn pragma_no_cache(pragma: &str) -> bool {
    pragma.split(',').any(|p| p.trim().eq_ignore_ascii_case("no-cache"))
}
