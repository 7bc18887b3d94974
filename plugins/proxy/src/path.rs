//! The path sent upstream: `strip_prefix` removes a leading prefix (on a
//! segment boundary: `/api` matches `/api`, `/api/x` and `/api?q`, not
//! `/apix`), `rewrite_prefix` puts another in its place. The query is kept
//! as is. A request outside the prefix goes upstream unchanged.

use std::borrow::Cow;

use crate::error::ConfigError;

/// The prefix rule, normalised at `init` (no trailing `/`; the root is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefix {
    strip: String,
    rewrite: String,
}

impl Prefix {
    /// Checks and normalises both prefixes (each optional).
    pub fn new(strip: Option<&str>, rewrite: Option<&str>) -> Result<Prefix, ConfigError> {
        Ok(Prefix { strip: normalise("strip_prefix", strip)?, rewrite: normalise("rewrite_prefix", rewrite)? })
    }

    /// Whether the rule changes anything.
    pub fn is_identity(&self) -> bool {
        self.strip == self.rewrite
    }

    /// The upstream path and query for `uri` (path plus optional `?query`);
    /// borrowed when nothing changes.
    pub fn apply<'a>(&self, uri: &'a str) -> Cow<'a, str> {
        if self.is_identity() {
            return Cow::Borrowed(uri);
        }
        let Some(rest) = uri.strip_prefix(self.strip.as_str()) else {
            return Cow::Borrowed(uri);
        };
        if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
            return Cow::Borrowed(uri);
        }
        let slash = if self.rewrite.is_empty() && !rest.starts_with('/') { "/" } else { "" };
        let mut out = String::with_capacity(self.rewrite.len() + slash.len() + rest.len());
        out.push_str(&self.rewrite);
        out.push_str(slash);
        out.push_str(rest);
        Cow::Owned(out)
    }
}

/// `/api/` → `/api`, `/` → `` (the root), refusing what is not a path.
fn normalise(field: &'static str, value: Option<&str>) -> Result<String, ConfigError> {
    let Some(value) = value else { return Ok(String::new()) };
    let bad = || ConfigError::BadPrefix { field, value: value.to_owned() };
    if !value.starts_with('/')
        || value.contains(['?', '#'])
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(strip: Option<&str>, rewrite: Option<&str>) -> Prefix {
        Prefix::new(strip, rewrite).unwrap()
    }

    #[test]
    fn strip_keeps_the_query_and_a_leading_slash() {
        let p = rule(Some("/api"), None);
        assert_eq!(p.apply("/api/users/7?full=1"), "/users/7?full=1");
        assert_eq!(p.apply("/api"), "/");
        assert_eq!(p.apply("/api/"), "/");
        assert_eq!(p.apply("/api?x=1"), "/?x=1");
    }

    #[test]
    fn outside_the_prefix_is_unchanged_and_not_copied() {
        let p = rule(Some("/api"), Some("/v2"));
        assert!(matches!(p.apply("/apix/users"), Cow::Borrowed("/apix/users")));
        assert!(matches!(p.apply("/other?a=b"), Cow::Borrowed("/other?a=b")));
        assert!(matches!(rule(None, None).apply("/a?b"), Cow::Borrowed("/a?b")));
    }

    #[test]
    fn rewrite_replaces_the_prefix() {
        let p = rule(Some("/api/"), Some("/v2/"));
        assert_eq!(p.apply("/api/users?x"), "/v2/users?x");
        assert_eq!(p.apply("/api"), "/v2");
        assert_eq!(p.apply("/api?x"), "/v2?x");
    }

    #[test]
    fn rewrite_alone_prefixes_every_path() {
        let p = rule(None, Some("/v2"));
        assert_eq!(p.apply("/users"), "/v2/users");
        assert_eq!(p.apply("/"), "/v2/");
    }

    #[test]
    fn root_strip_is_identity() {
        assert!(rule(Some("/"), None).is_identity());
        assert_eq!(rule(Some("/"), None).apply("/x"), "/x");
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_field() {
        for bad in ["api", "/a?b", "/a#b", "/a b", ""] {
            let err = Prefix::new(Some(bad), None).unwrap_err().to_string();
            assert!(err.starts_with("strip_prefix:"), "{err}");
        }
        let err = Prefix::new(None, Some("v2")).unwrap_err().to_string();
        assert!(err.starts_with("rewrite_prefix: `v2`"), "{err}");
    }
}
