//! Cache keys. The primary key is `{host}{path}[?{query}]`, then
//! `\n{name}: {value}` for each configured key header; GET and HEAD share
//! it. A response that varies (`Vary`) is stored under a secondary key:
//! the primary key, `\n`, and the normalised values of the request headers
//! `Vary` names.

use covet_plugin_api::Request;

use crate::settings::{Checked, QueryMode};

/// The primary key of `req` as `settings` say.
pub fn primary(req: &Request<'_>, settings: &Checked) -> String {
    let uri = req.uri();
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let mut key = String::with_capacity(uri.len() + 32);
    if settings.key_host {
        push_host(&mut key, req.header("host").unwrap_or(""));
    }
    key.push_str(path);
    if let Some(q) = query {
        push_query(&mut key, q, &settings.key_query);
    }
    for name in &settings.key_headers {
        key.push('\n');
        key.push_str(name);
        key.push_str(": ");
        key.push_str(req.header(name).map(str::trim).unwrap_or(""));
    }
    key
}

/// The request's host, lower case, without a port.
pub fn host(req: &Request<'_>) -> String {
    let mut out = String::new();
    push_host(&mut out, req.header("host").unwrap_or(""));
    out
}

fn push_host(key: &mut String, host: &str) {
    let host = host.trim();
    let bare = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    key.extend(bare.chars().map(|c| c.to_ascii_lowercase()));
}

fn push_query(key: &mut String, query: &str, mode: &QueryMode) {
    if matches!(mode, QueryMode::None) || query.is_empty() {
        return;
    }
    if matches!(mode, QueryMode::All) && sorted(query) {
        key.push('?');
        key.push_str(query);
        return;
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if let QueryMode::Only(kept) = mode {
        params.retain(|p| kept.iter().any(|k| k == param_name(p)));
    }
    if params.is_empty() {
        return;
    }
    // Stable: repeated names keep their order.
    params.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    key.push('?');
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            key.push('&');
        }
        key.push_str(p);
    }
}

/// Whether the query's parameters are in name order already, none empty
/// (the common case: kept as it is, with no list to sort).
fn sorted(query: &str) -> bool {
    let mut last = "";
    for p in query.split('&') {
        let name = param_name(p);
        if p.is_empty() || name < last {
            return false;
        }
        last = name;
    }
    true
}

fn param_name(param: &str) -> &str {
    param.split_once('=').map_or(param, |(n, _)| n)
}

/// The secondary key of the variant `req` selects among the names `vary` lists.
pub fn variant(primary: &str, vary: &[String], req: &Request<'_>) -> String {
    let mut key = String::with_capacity(primary.len() + 16 * vary.len());
    key.push_str(primary);
    key.push('\n');
    for (i, name) in vary.iter().enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        key.push_str(name);
        key.push('=');
        if let Some(value) = req.header(name) {
            push_normalised(&mut key, value);
        }
    }
    key
}

/// A header value with its whitespace collapsed (`gzip,  br` and `gzip, br`
/// select the same variant).
fn push_normalised(key: &mut String, value: &str) {
    let mut space = false;
    for c in value.trim().chars() {
        if c == ' ' || c == '\t' {
            space = true;
            continue;
        }
        if space && c != ',' && !key.ends_with(',') {
            key.push(' ');
        }
        space = false;
        key.push(c);
    }
}

/// The header names of a `Vary` value, lower case, in order; `None` for `Vary: *`.
pub fn vary_names(vary: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for name in vary.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "*" {
            return None;
        }
        let lower = name.to_ascii_lowercase();
        if !names.contains(&lower) {
            names.push(lower);
        }
    }
    Some(names)
}
