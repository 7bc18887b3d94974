//! Templates of an `@http` call: literal text with placeholders
//! `{args.NAME…}`, `{parent.NAME…}`, `{meta.KEY}`, `{header.NAME}` and
//! `{batch.keys}`. A `{` that does not start one of these is literal (so
//! JSON bodies need no escaping). Rendering encodes each value for where it
//! goes: percent-encoded in a URL, raw in a header, JSON in a body.

use std::fmt::Write;

use serde_json::Value;

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A field argument, then a path into it (`args.input.name`).
    Args(Vec<String>),
    /// The parent object's JSON, then a path (`parent.author.id`).
    Parent(Vec<String>),
    /// Request metadata set by earlier plugins (`meta.jwt.sub`: key `jwt.sub`).
    Meta(String),
    /// A request header (`header.x-tenant`, lower-cased).
    Header(String),
    /// The batched keys, each encoded, joined by the batch separator.
    BatchKeys,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(Source),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// How rendered values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Percent-encoded (everything but RFC 3986 unreserved characters).
    Url,
    /// As text (header values).
    Raw,
    /// As JSON (`"text"`, `7`, `{"a":1}`).
    Json,
}

/// The values a template is rendered with.
pub trait Env {
    /// The value of `source` (`None`: absent or null).
    fn lookup(&self, source: &Source) -> Option<Value>;
    /// The batch keys and their separator, when rendering a batched call.
    fn batch_keys(&self) -> Option<(&[String], &str)> {
        None
    }
}

impl Template {
    /// Parses `text`; an unknown placeholder root (`{args}`, `{meta.}`) is an error naming it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let inner = after.find('}').map(|c| &after[..c]);
            match inner.and_then(|inner| placeholder(inner).map(|p| (inner, p))) {
                Some((inner, parsed)) => {
                    let source = parsed.map_err(|e| format!("placeholder {{{inner}}}: {e}"))?;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(source));
                    rest = &after[inner.len() + 1..];
                }
                None => {
                    lit.push('{');
                    rest = after;
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// The placeholders, for checks at init.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(s) => Some(s),
            Part::Lit(_) => None,
        })
    }

    /// The literal text before the first placeholder.
    pub fn prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(s)) => s,
            _ => "",
        }
    }

    /// The text; `None` when a placeholder has no value (absent or null).
    pub fn render(&self, env: &dyn Env, encoding: Encoding) -> Option<String> {
        let mut out = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(Source::BatchKeys) => {
                    let (keys, separator) = env.batch_keys()?;
                    for (i, key) in keys.iter().enumerate() {
                        if i > 0 {
                            out.push_str(separator);
                        }
                        write_value(&mut out, &Value::String(key.clone()), encoding);
                    }
                }
                Part::Var(source) => write_value(&mut out, &env.lookup(source)?, encoding),
            }
        }
        Some(out)
    }
}

/// `Some(Ok)` for a placeholder, `Some(Err)` for one with a known root but a
/// bad rest, `None` for text that is not a placeholder (left literal).
fn placeholder(inner: &str) -> Option<Result<Source, String>> {
    let (root, rest) = inner.split_once('.').unwrap_or((inner, ""));
    let path = || -> Result<Vec<String>, String> {
        let segments: Vec<String> = rest.split('.').map(str::to_owned).collect();
        if segments.iter().any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
            return Err(format!("'{rest}' is not a dotted path of names"));
        }
        Ok(segments)
    };
    Some(match root {
        "args" => path().map(Source::Args),
        "parent" => path().map(Source::Parent),
        "meta" if !rest.is_empty() && !rest.contains(char::is_whitespace) => Ok(Source::Meta(rest.to_owned())),
        "meta" => Err("give a metadata key: {meta.jwt.sub}".into()),
        "header" if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) => {
            Ok(Source::Header(rest.to_ascii_lowercase()))
        }
        "header" => Err("give a header name: {header.x-tenant}".into()),
        "batch" if rest == "keys" => Ok(Source::BatchKeys),
        "batch" => Err("the only batch placeholder is {batch.keys}".into()),
        _ => return None,
    })
}

/// Writes `value` encoded.
fn write_value(out: &mut String, value: &Value, encoding: Encoding) {
    match (encoding, value) {
        (Encoding::Json, v) => out.push_str(&v.to_string()),
        (Encoding::Raw, Value::String(s)) => out.push_str(s),
        (Encoding::Raw, v) => out.push_str(&v.to_string()),
        (Encoding::Url, Value::String(s)) => percent_encode(out, s),
        (Encoding::Url, v) => percent_encode(out, &v.to_string()),
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Follows `path` into `value` (object keys, or list indexes).
pub fn walk<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
