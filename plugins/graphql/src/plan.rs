//! Compiling one field's [`HttpSpec`] into a [`Plan`]: templates parsed, every
//! placeholder checked against the field's arguments and its parent type's
//! fields, the upstream or URL checked against the plugin's grants, durations
//! read. Any mistake refuses the load with a message naming `Type.field`.

use std::time::Duration;

use covet_plugin_api::host::Host;

use crate::{
    config::{HttpSpec, duration},
    error::ConfigError,
    template::{Source, Template},
};

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A named upstream of the manifest (`path` is the path and query).
    Upstream(std::sync::Arc<str>),
    /// Outbound HTTP (`path` is an absolute URL).
    Url,
}

/// A compiled batch spec.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// One instance's key.
    pub key: Template,
    /// The answer items' field matched with the keys.
    pub match_field: String,
    /// Joins `{batch.keys}`.
    pub separator: String,
    /// Keys per call.
    pub max_keys: usize,
}

/// How one field is resolved, ready to render per request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `Type.field`, for messages.
    pub field: String,
    /// A number unique in the schema (batch slots are keyed by it).
    pub id: usize,
    /// Upstream or URL.
    pub target: Target,
    /// `GET`, `POST`, …
    pub method: std::sync::Arc<str>,
    /// The path (upstream) or URL template.
    pub path: Template,
    /// Header templates.
    pub headers: Vec<(String, Template)>,
    /// The body template (JSON-encoded placeholders).
    pub body: Option<Template>,
    /// The path into the answer.
    pub select: Vec<String>,
    /// Batching, when configured.
    pub batch: Option<BatchPlan>,
    /// Cache lifetime of the answer.
    pub cache_ttl: Option<Duration>,
    /// The call's timeout.
    pub timeout: Duration,
}

/// What a spec is checked against.
pub struct FieldContext<'a> {
    /// The parent type's name.
    pub type_name: &'a str,
    /// The field's name.
    pub field_name: &'a str,
    /// The field's argument names.
    pub args: Vec<&'a str>,
    /// The parent type's field names; `None` for a root type (no parent value).
    pub parent_fields: Option<Vec<&'a str>>,
    /// The plugin's host services (grants are checked here).
    pub host: &'a Host,
    /// The config's default timeout.
    pub default_timeout: Duration,
}

impl FieldContext<'_> {
    fn error(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::field(self.type_name, self.field_name, reason)
    }

    fn template(&self, what: &str, text: &str) -> Result<Template, ConfigError> {
        Template::parse(text).map_err(|e| self.error(format!("{what}: {e}")))
    }

    /// Each placeholder names something that exists; `batched` templates may
    /// not use per-instance values (`args`, `parent`), `{batch.keys}` only there.
    fn check(&self, what: &str, template: &Template, batched: bool) -> Result<(), ConfigError> {
        for source in template.sources() {
            match source {
                Source::Args(path) if batched => {
                    return Err(self.error(format!(
                        "{what}: {{args.{}}} differs per field instance; a batched call may use only {{batch.keys}}, meta and header values",
                        path.join(".")
                    )));
                }
                Source::Parent(path) if batched => {
                    return Err(self.error(format!(
                        "{what}: {{parent.{}}} differs per field instance; put it in batch.key",
                        path.join(".")
                    )));
                }
                Source::Args(path) if !self.args.contains(&path[0].as_str()) => {
                    return Err(self.error(format!(
                        "{what}: {{args.{}}}: the field has no argument '{}' (it has: {})",
                        path.join("."),
                        path[0],
                        list(&self.args)
                    )));
                }
                Source::Parent(path) => match &self.parent_fields {
                    None => {
                        return Err(self.error(format!(
                            "{what}: {{parent.{}}}: '{}' is a root type, it has no parent value",
                            path.join("."),
                            self.type_name
                        )));
                    }
                    Some(fields) if !fields.contains(&path[0].as_str()) => {
                        return Err(self.error(format!(
                            "{what}: {{parent.{}}}: type '{}' has no field '{}' (it has: {})",
                            path.join("."),
                            self.type_name,
                            path[0],
                            list(fields)
                        )));
                    }
                    Some(_) => {}
                },
                Source::BatchKeys if !batched => {
                    return Err(self.error(format!("{what}: {{batch.keys}} needs a `batch:` block")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// Compiles `spec` for the field described by `cx`.
pub fn compile(spec: &HttpSpec, cx: &FieldContext<'_>, id: usize) -> Result<Plan, ConfigError> {
    let batched = spec.batch.is_some();
    let (target, path) = target(spec, cx)?;
    cx.check("path", &path, batched)?;
    if batched && !path.sources().any(|s| *s == Source::BatchKeys) {
        return Err(cx.error("a batched call must carry the keys: put {batch.keys} in its path or url"));
    }
    let method = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(cx.error(format!("method '{method}' is not an HTTP method")));
    }
    let mut headers = Vec::new();
    for (name, value) in spec.headers.pairs() {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
            return Err(cx.error(format!("header '{name}' is not a valid header name")));
        }
        let template = cx.template(&format!("header '{name}'"), &value)?;
        cx.check(&format!("header '{name}'"), &template, batched)?;
        headers.push((name.to_ascii_lowercase(), template));
    }
    let body = spec.body.as_deref().map(|b| cx.template("body", b)).transpose()?;
    if let Some(body) = &body {
        cx.check("body", body, batched)?;
    }
    let batch = spec.batch.as_ref().map(|b| -> Result<BatchPlan, ConfigError> {
        let key = cx.template("batch.key", &b.key)?;
        cx.check("batch.key", &key, false)?;
        if key.sources().next().is_none() {
            return Err(cx.error("batch.key has no placeholder: give the instance's key, e.g. {parent.authorId}"));
        }
        if b.max_keys == 0 {
            return Err(cx.error("batch.max_keys must be at least 1"));
        }
        Ok(BatchPlan { key, match_field: b.match_field.clone(), separator: b.separator.clone(), max_keys: b.max_keys })
    });
    let cache_ttl = spec.cache_ttl.as_deref().map(|t| duration(&format!("{}.cache_ttl", field(cx)), t)).transpose()?;
    let timeout = match &spec.timeout {
        Some(t) => duration(&format!("{}.timeout", field(cx)), t)?,
        None => cx.default_timeout,
    };
    let select = match spec.select.as_deref() {
        None | Some("") => Vec::new(),
        Some(s) => s.split('.').map(str::to_owned).collect(),
    };
    Ok(Plan {
        field: field(cx),
        id,
        target,
        method: method.into(),
        path,
        headers,
        body,
        select,
        batch: batch.transpose()?,
        cache_ttl,
        timeout,
    })
}

fn field(cx: &FieldContext<'_>) -> String {
    format!("{}.{}", cx.type_name, cx.field_name)
}

/// The target and its path template; the upstream must be granted, a URL's
/// origin fixed (no placeholder before the path) and granted.
fn target(spec: &HttpSpec, cx: &FieldContext<'_>) -> Result<(Target, Template), ConfigError> {
    match (&spec.upstream, &spec.path, &spec.url) {
        (Some(name), Some(path), None) => {
            if !path.starts_with('/') {
                return Err(cx.error(format!("path '{path}' must start with '/'")));
            }
            let template = cx.template("path", path)?;
            cx.host.upstream(name).check().map_err(|e| cx.error(format!("upstream '{name}': {}", e.message)))?;
            Ok((Target::Upstream(name.as_str().into()), template))
        }
        (None, None, Some(url)) => {
            let template = cx.template("url", url)?;
            let prefix = template.prefix();
            let origin_end = prefix
                .find("://")
                .and_then(|s| prefix[s + 3..].find('/').map(|p| s + 3 + p))
                .ok_or_else(|| cx.error(format!("url '{url}': the scheme, host and port must be literal, followed by '/'")))?;
            cx.host.http().check(&prefix[..origin_end]).map_err(|e| cx.error(format!("url '{url}': {}", e.message)))?;
            Ok((Target::Url, template))
        }
        (Some(_), None, _) => Err(cx.error("an upstream call needs a `path`")),
        _ => Err(cx.error("give either `upstream` with `path`, or `url`")),
    }
}
