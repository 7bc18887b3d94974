//! The plugin's config and how it becomes the one prebuilt [`Response`].

use std::{collections::BTreeMap, path::Path, path::PathBuf};

use covet_plugin_api::{Header, Response};
use serde::Deserialize;

use covet_plugin_api::http_syntax;

/// The `config:` block, as written in the manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    #[serde(default = "default_status")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    pub(crate) body_file: Option<PathBuf>,
    content_type: Option<String>,
}

fn default_status() -> u16 {
    200
}

/// The body and the content type it implies when `content_type` is not given.
struct Body {
    bytes: Vec<u8>,
    default_type: Option<&'static str>,
}

impl Settings {
    /// Validates everything and builds the response `handle` will clone.
    pub(crate) fn into_response(self) -> Result<Response, String> {
        check_status(self.status)?;
        let body = load_body(self.body, self.body_file.as_deref())?;
        check_body_allowed(self.status, &body.bytes)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        if let Some(value) = self.content_type.as_deref().or(body.default_type) {
            http_syntax::header_value("content-type", value)?;
            headers.push(Header::new("content-type", value));
        }
        for (name, value) in &self.headers {
            headers.push(extra_header(name, value, &headers)?);
        }
        let mut response = Response::new(self.status).with_body(body.bytes);
        response.headers = headers.into();
        Ok(response)
    }
}

fn check_status(status: u16) -> Result<(), String> {
    if (200..=599).contains(&status) {
        Ok(())
    } else {
        Err(format!("`status: {status}` is out of range; use a final status code from 200 to 599"))
    }
}

/// 204 and 304 responses cannot carry a body (RFC 9110 §15.3.5, §15.4.5).
fn check_body_allowed(status: u16, body: &[u8]) -> Result<(), String> {
    if matches!(status, 204 | 304) && !body.is_empty() {
        return Err(format!(
            "`status: {status}` responses cannot have a body; remove `body`/`body_file` or use another status"
        ));
    }
    Ok(())
}

fn load_body(inline: Option<String>, file: Option<&Path>) -> Result<Body, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err("give either `body` or `body_file`, not both".to_string()),
        (Some(text), None) => Ok(Body { bytes: text.into_bytes(), default_type: Some(TEXT_PLAIN) }),
        (None, Some(path)) => Ok(Body { bytes: read_body_file(path)?, default_type: Some(guess_type(path)) }),
        (None, None) => Ok(Body { bytes: Vec::new(), default_type: None }),
    }
}

/// Reads `body_file` (already resolved against the manifest's directory).
fn read_body_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let resolved = std::env::current_dir().map(|dir| dir.join(path)).unwrap_or_else(|_| path.to_path_buf());
        format!(
            "cannot read `body_file: {}` (looked at {}): {e}; relative paths are relative to the manifest's directory",
            path.display(),
            resolved.display()
        )
    })
}

/// Checks one entry of `headers`. `content-type` and `content-length` have
/// their own sources (the `content_type` key, the body), so they are refused here.
fn extra_header(name: &str, value: &str, so_far: &[Header]) -> Result<Header, String> {
    let name = http_syntax::header_name(name)?;
    match name.as_str() {
        "content-type" => return Err("set the content type with `content_type`, not in `headers`".to_string()),
        "content-length" => return Err("remove `content-length` from `headers`; covet sets it from the body".to_string()),
        _ => {}
    }
    if so_far.iter().any(|h| h.name.as_str() == name) {
        return Err(format!("header `{name}` is given twice in `headers` (names are case-insensitive)"));
    }
    http_syntax::header_value(&name, value)?;
    Ok(Header::new(name, value))
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// The content type for a body file, from its extension (case-insensitive).
pub(crate) fn guess_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "txt" => TEXT_PLAIN,
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}
