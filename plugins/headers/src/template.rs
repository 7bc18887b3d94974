//! Header value templates: parsed once at init into segments, rendered per
//! request with at most one allocation (none for a constant value).

use std::borrow::Cow;

use covet_plugin_api::Request;

/// A parsed header value.
#[derive(Debug, PartialEq)]
pub(crate) enum Template {
    /// No placeholders: sent as is.
    Constant(String),
    /// Literal text and placeholders, in order.
    Dynamic(Vec<Segment>),
}

/// One piece of a [`Template::Dynamic`].
#[derive(Debug, PartialEq)]
pub(crate) enum Segment {
    Literal(String),
    /// `{jwt.sub}`: a metadata key set by an earlier plugin.
    Metadata(String),
    /// `{request.id}`
    RequestId,
    /// `{request.method}`
    Method,
    /// `{request.path}` (without the query)
    Path,
    /// `{client.ip}`
    ClientIp,
}

const PLACEHOLDERS: &str =
    "`{request.id}`, `{request.method}`, `{request.path}`, `{client.ip}` or a metadata key such as `{jwt.sub}`";

impl Template {
    /// Parses `src`: `{key}` is a placeholder, `{{` and `}}` are literal braces.
    pub(crate) fn parse(src: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = src;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let tail = &rest[at..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
            } else if tail.starts_with('}') {
                return Err("a `}` has no matching `{`; write `}}` for a literal `}`".to_string());
            } else {
                let (key, after) = split_placeholder(tail)?;
                flush(&mut literal, &mut segments);
                segments.push(Segment::from_key(key)?);
                rest = after;
            }
        }
        literal.push_str(rest);
        if segments.is_empty() {
            return Ok(Template::Constant(literal));
        }
        flush(&mut literal, &mut segments);
        Ok(Template::Dynamic(segments))
    }

    /// The value for this request, or `None` when a metadata key it uses is
    /// absent or the result is empty: the header is then skipped.
    pub(crate) fn render<'t>(&'t self, req: &Request<'_>) -> Option<Cow<'t, str>> {
        match self {
            Template::Constant(text) => Some(Cow::Borrowed(text)),
            Template::Dynamic(segments) => {
                let mut out = String::with_capacity(64);
                for segment in segments {
                    out.push_str(segment.value(req)?);
                }
                (!out.is_empty()).then_some(Cow::Owned(out))
            }
        }
    }
}

impl Segment {
    fn from_key(key: &str) -> Result<Segment, String> {
        match key {
            "request.id" => Ok(Segment::RequestId),
            "request.method" => Ok(Segment::Method),
            "request.path" => Ok(Segment::Path),
            "client.ip" => Ok(Segment::ClientIp),
            _ if is_metadata_key(key) => Ok(Segment::Metadata(key.to_string())),
            _ => Err(format!("`{{{key}}}` is not a placeholder; use {PLACEHOLDERS}, or `{{{{` for a literal `{{`")),
        }
    }

    fn value<'r>(&'r self, req: &'r Request<'_>) -> Option<&'r str> {
        match self {
            Segment::Literal(text) => Some(text),
            Segment::Metadata(key) => req.metadata(key),
            Segment::RequestId => Some(req.request_id()),
            Segment::Method => Some(req.method()),
            Segment::Path => Some(req.path()),
            Segment::ClientIp => Some(req.client_ip()),
        }
    }
}

/// A metadata key is `namespace.field`: it has a dot between non-empty parts
/// and no whitespace. `request.*` and `client.*` are reserved for request facts.
fn is_metadata_key(key: &str) -> bool {
    let reserved = key.starts_with("request.") || key.starts_with("client.");
    let shaped = key.split('.').all(|part| !part.is_empty()) && key.contains('.');
    shaped && !reserved && !key.contains(char::is_whitespace)
}

/// Splits `{key}rest` (`tail` starts with `{`) into `key` and `rest`.
fn split_placeholder(tail: &str) -> Result<(&str, &str), String> {
    let unclosed = || "a `{` is never closed; close the placeholder with `}` or write `{{` for a literal `{`".to_string();
    let end = tail.find('}').ok_or_else(unclosed)?;
    let key = &tail[1..end];
    if key.contains('{') {
        return Err(unclosed());
    }
    Ok((key, &tail[end + 1..]))
}

fn flush(literal: &mut String, segments: &mut Vec<Segment>) {
    if !literal.is_empty() {
        segments.push(Segment::Literal(std::mem::take(literal)));
    }
}

#[cfg(test)]
mod tests {
    use super::{Segment::*, Template};

    #[test]
    fn text_without_placeholders_is_constant() {
        assert_eq!(Template::parse("max-age=60").unwrap(), Template::Constant("max-age=60".into()));
    }

    #[test]
    fn placeholders_split_the_text_into_segments() {
        let parsed = Template::parse("u={jwt.sub} via {request.method}").unwrap();
        let expected = vec![Literal("u=".into()), Metadata("jwt.sub".into()), Literal(" via ".into()), Method];
        assert_eq!(parsed, Template::Dynamic(expected));
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        assert_eq!(Template::parse("{{jwt.sub}}").unwrap(), Template::Constant("{jwt.sub}".into()));
        let parsed = Template::parse("{{{client.ip}}}").unwrap();
        assert_eq!(parsed, Template::Dynamic(vec![Literal("{".into()), ClientIp, Literal("}".into())]));
    }

    #[test]
    fn unbalanced_braces_are_refused() {
        for src in ["{jwt.sub", "a}b", "{jwt.{sub}", "{jwt.sub}}"] {
            assert!(Template::parse(src).is_err(), "{src}");
        }
    }

    #[test]
    fn keys_need_a_dot_and_reserved_namespaces_are_closed() {
        assert_eq!(Template::parse("{ratelimit.key}").unwrap(), Template::Dynamic(vec![Metadata("ratelimit.key".into())]));
        for src in ["{sub}", "{}", "{request.host}", "{client.port}", "{jwt. sub}", "{.sub}", "{jwt.}"] {
            let err = Template::parse(src).unwrap_err();
            assert!(err.contains("is not a placeholder"), "{src}: {err}");
        }
    }
}
