//! The config, compiled once into [`Rules`] per phase, and how rules edit a
//! request or a response.

use std::{borrow::Cow, collections::BTreeMap};

use covet_plugin_api::{Request, ResponseMut};
use serde::Deserialize;

use covet_plugin_api::http_syntax;

use crate::template::Template;

/// The `config:` block, as written in the manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    #[serde(default)]
    request: PhaseSettings,
    #[serde(default)]
    response: PhaseSettings,
}

/// The rules for one phase, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseSettings {
    #[serde(default)]
    add: BTreeMap<String, String>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// Checked, lower-cased, parsed rules for one phase, applied in field order.
#[derive(Debug)]
pub(crate) struct Rules {
    remove: Vec<String>,
    set: Vec<(String, Template)>,
    add: Vec<(String, Template)>,
}

impl Settings {
    /// The request and response rules; `None` for a phase without rules.
    pub(crate) fn compile(self) -> Result<(Option<Rules>, Option<Rules>), String> {
        let request = self.request.compile("request")?;
        let response = self.response.compile("response")?;
        if request.is_none() && response.is_none() {
            return Err("no rules: give `request:` and/or `response:` with `add`, `set` or `remove`".to_string());
        }
        Ok((request, response))
    }
}

impl PhaseSettings {
    fn compile(self, phase: &str) -> Result<Option<Rules>, String> {
        if self.add.is_empty() && self.set.is_empty() && self.remove.is_empty() {
            return Ok(None);
        }
        let remove = self.remove.iter().map(|n| checked_name(n, phase, "remove")).collect::<Result<_, _>>()?;
        let set = templates(&self.set, phase, "set")?;
        if let Some(name) = repeated(&set) {
            return Err(format!("`{phase}.set`: header `{name}` is given twice (names are case-insensitive)"));
        }
        Ok(Some(Rules { remove, set, add: templates(&self.add, phase, "add")? }))
    }
}

fn templates(map: &BTreeMap<String, String>, phase: &str, op: &str) -> Result<Vec<(String, Template)>, String> {
    map.iter().map(|(name, value)| checked_rule(name, value, phase, op)).collect()
}

fn checked_rule(name: &str, value: &str, phase: &str, op: &str) -> Result<(String, Template), String> {
    let name = checked_name(name, phase, op)?;
    let in_rule = |e: String| format!("`{phase}.{op}` header `{name}`: {e}");
    if value.is_empty() {
        return Err(in_rule("the value is empty; to delete a header list it under `remove`".to_string()));
    }
    http_syntax::header_value(&name, value).map_err(in_rule)?;
    let template = Template::parse(value).map_err(in_rule)?;
    Ok((name, template))
}

/// A valid, lower-cased name that is not one of the framing headers covet owns.
fn checked_name(name: &str, phase: &str, op: &str) -> Result<String, String> {
    let name = http_syntax::header_name(name).map_err(|e| format!("`{phase}.{op}`: {e}"))?;
    if matches!(name.as_str(), "content-length" | "transfer-encoding") {
        return Err(format!("`{phase}.{op}`: `{name}` is managed by covet from the body and cannot be edited"));
    }
    Ok(name)
}

fn repeated(rules: &[(String, Template)]) -> Option<&str> {
    let mut names: Vec<&str> = rules.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Something whose headers the rules edit, with the request the templates read.
pub(crate) trait HeaderTarget {
    /// Renders `template` against the request (see [`Template::render`]).
    fn render<'t>(&self, template: &'t Template) -> Option<Cow<'t, str>>;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &str);
    /// Replaces every value of `name`.
    fn set(&mut self, name: &str, value: &str);
    /// Adds a value for `name`.
    fn append(&mut self, name: &str, value: &str);
}

impl Rules {
    /// Applies `remove`, then `set`, then `add`. A rule whose template does
    /// not render (absent metadata, empty result) is skipped.
    pub(crate) fn apply(&self, target: &mut impl HeaderTarget) {
        for name in &self.remove {
            target.remove(name);
        }
        for (name, template) in &self.set {
            if let Some(value) = target.render(template) {
                target.set(name, &value);
            }
        }
        for (name, template) in &self.add {
            if let Some(value) = target.render(template) {
                target.append(name, &value);
            }
        }
    }
}

// The host refuses a value that is not valid HTTP (only possible when a
// metadata value holds e.g. a line break); that header is then not sent,
// which is the same outcome as for absent metadata, so the error is dropped.

impl HeaderTarget for Request<'_> {
    fn render<'t>(&self, template: &'t Template) -> Option<Cow<'t, str>> {
        template.render(self)
    }
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn set(&mut self, name: &str, value: &str) {
        let _ = self.set_header(name, value);
    }
    fn append(&mut self, name: &str, value: &str) {
        let _ = self.append_header(name, value);
    }
}

/// The response phase: edit the response, read the request.
pub(crate) struct Outgoing<'r, 'a, 'b> {
    pub(crate) req: &'r Request<'a>,
    pub(crate) resp: &'r mut ResponseMut<'b>,
}

impl HeaderTarget for Outgoing<'_, '_, '_> {
    fn render<'t>(&self, template: &'t Template) -> Option<Cow<'t, str>> {
        template.render(self.req)
    }
    fn remove(&mut self, name: &str) {
        self.resp.remove_header(name);
    }
    fn set(&mut self, name: &str, value: &str) {
        let _ = self.resp.set_header(name, value);
    }
    fn append(&mut self, name: &str, value: &str) {
        let _ = self.resp.append_header(name, value);
    }
}
