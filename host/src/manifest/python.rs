//! The Python parts of the manifest: the top-level `python:` section (the
//! one embedded interpreter) and the keys of a `kind: python` plugin
//! (exactly one of `app`, `asgi`, `filter`, plus `limits.timeout` and, for
//! `asgi`, `request_body: buffered | stream`).
//!
//! ```yaml
//! python:
//!   venv: .venv              # its site-packages go on sys.path
//!   path: [python-plugins]   # extra sys.path entries
//!   threads: 4               # sync handlers/filters run on this many threads
//!   queue: 1024              # requests waiting for Python beyond which new ones get 503
//! plugins:
//!   users:
//!     kind: python
//!     app: ../python-plugins/users/app.py:app
//!     limits: { timeout: 2s }
//! ```

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Loc;
use super::source_index::join;
use super::validate::Problems;
use super::wasm::RawWasmLimits;

/// The interpreter's settings, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonSettings {
    /// Directories put first on `sys.path` (the venv's site-packages, then `path`), absolute.
    pub sys_path: Vec<PathBuf>,
    /// Threads running sync handlers and filters.
    pub threads: usize,
    /// Requests that may wait for Python before new ones get 503.
    pub queue: usize,
}

impl Default for PythonSettings {
    fn default() -> Self {
        PythonSettings { sys_path: Vec::new(), threads: 4, queue: 1024 }
    }
}

/// Which of the three Python plugin forms a plugin is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PythonForm {
    /// `app:` a `covet.Covet` decorator app.
    App,
    /// `asgi:` any ASGI 3 application.
    Asgi,
    /// `filter:` a module with `on_request` and/or `on_response`.
    Filter,
}

/// A `kind: python` plugin's settings, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonPlugin {
    /// The form.
    pub form: PythonForm,
    /// `ATTR` of `FILE.py:ATTR` (none for filters).
    pub attr: Option<String>,
    /// A dotted module name found through `sys.path` (`pkg.module:attr`), instead of a file.
    pub module: Option<String>,
    /// Time allowed for one call before the request gets 504.
    pub timeout: Duration,
    /// `request_body: stream` (ASGI only): the app reads the body through
    /// `receive()` as it arrives instead of the host buffering it first.
    pub stream_body: bool,
    /// The interpreter's settings (the top-level `python:` section).
    pub interpreter: PythonSettings,
}

impl PythonPlugin {
    /// The default per-call time limit.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
}

/// `request_body:` of an ASGI plugin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestBodyMode {
    /// Read whole (up to `limits.max_body`) before the pipeline runs.
    #[default]
    Buffered,
    /// Handed to the app's `receive()` chunk by chunk as it arrives.
    Stream,
}

/// The top-level `python:` section, as written.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Python")]
pub struct RawPython {
    /// A virtualenv whose site-packages go on `sys.path`, relative to the manifest's directory.
    #[schemars(with = "Option<String>")]
    pub venv: Option<Spanned<String>>,
    /// Extra `sys.path` entries, relative to the manifest's directory.
    #[schemars(with = "Vec<String>")]
    pub path: Vec<Spanned<String>>,
    /// Threads running sync handlers and filters (default 4).
    pub threads: Option<NonZeroUsize>,
    /// Requests waiting for Python beyond which new ones get 503 PLUGIN_OVERLOADED (default 1024).
    pub queue: Option<NonZeroUsize>,
}

/// Checks the `python:` section.
pub fn settings(base: &Path, raw: Option<RawPython>, problems: &mut Problems) -> PythonSettings {
    let raw = raw.unwrap_or_default();
    let defaults = PythonSettings::default();
    let mut sys_path = Vec::new();
    if let Some(venv) = &raw.venv {
        if let Some(site) = site_packages(&base.join(&venv.value)) {
            sys_path.push(site);
        } else {
            let message = format!("virtualenv \"{}\" has no lib/python3.*/site-packages", venv.value);
            let help = format!("`venv` is relative to the manifest's directory: looked in {}", base.join(&venv.value).display());
            problems.report(Loc::of(venv), "python.venv", message, Some(help));
        }
    }
    for (i, entry) in raw.path.iter().enumerate() {
        let joined = base.join(&entry.value);
        match std::fs::canonicalize(&joined) {
            Ok(dir) if dir.is_dir() => sys_path.push(dir),
            _ => {
                let message = format!("directory \"{}\" not found", entry.value);
                let help = format!("`path` entries are relative to the manifest's directory: looked for {}", joined.display());
                problems.report(Loc::of(entry), format!("python.path[{i}]"), message, Some(help));
            }
        }
    }
    PythonSettings {
        sys_path,
        threads: raw.threads.map_or(defaults.threads, NonZeroUsize::get),
        queue: raw.queue.map_or(defaults.queue, NonZeroUsize::get),
    }
}

/// `VENV/lib/python3.X/site-packages`, the first that exists.
fn site_packages(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir() && p.to_string_lossy().contains("python3"))
        .collect();
    found.sort();
    found.into_iter().next().and_then(|p| std::fs::canonicalize(p).ok())
}

/// The Python keys of one plugin entry, as written.
pub struct RawPythonPlugin<'a> {
    /// `app:`
    pub app: Option<&'a Spanned<String>>,
    /// `asgi:`
    pub asgi: Option<&'a Spanned<String>>,
    /// `filter:`
    pub filter: Option<&'a Spanned<String>>,
    /// `request_body:`
    pub request_body: Option<&'a Spanned<RequestBodyMode>>,
    /// `path:` (not used by python plugins).
    pub path: Option<&'a Spanned<String>>,
    /// `limits:`
    pub limits: Option<Spanned<RawWasmLimits>>,
}

/// Checks a `kind: python` plugin: the form, its file (returned as the
/// plugin's artifact path) and its limits. `fallback` is the artifact when
/// the app is a module found through `sys.path` (the manifest itself).
pub fn plugin(
    base: &Path,
    raw: RawPythonPlugin<'_>,
    interpreter: &PythonSettings,
    fallback: &Path,
    key: &str,
    name_loc: Loc,
    problems: &mut Problems,
) -> (PathBuf, PythonPlugin) {
    if let Some(path) = raw.path {
        let help = "a python plugin names its code with `app:`, `asgi:` or `filter:`; remove `path`";
        problems.report(Loc::of(path), join(key, "path"), "`path` is not used by `kind: python`".into(), Some(help.into()));
    }
    let given: Vec<(PythonForm, &Spanned<String>)> =
        [(PythonForm::App, raw.app), (PythonForm::Asgi, raw.asgi), (PythonForm::Filter, raw.filter)]
            .into_iter()
            .filter_map(|(f, v)| v.map(|v| (f, v)))
            .collect();
    let timeout = timeout(raw.limits, key, problems);
    let mut spec = PythonPlugin { form: PythonForm::App, attr: None, module: None, timeout, stream_body: false, interpreter: interpreter.clone() };
    let (form, target) = match given.as_slice() {
        [one] => *one,
        [] => {
            let help = "add `app: FILE.py:ATTR` (a covet.Covet app), `asgi: FILE.py:ATTR` (an ASGI app) or `filter: FILE.py`";
            problems.report(name_loc, key, "a python plugin needs one of `app`, `asgi` or `filter`".into(), Some(help.into()));
            return (fallback.to_path_buf(), spec);
        }
        [_, second, ..] => {
            let help = "keep exactly one of `app`, `asgi` and `filter`";
            let message = "a python plugin has more than one of `app`, `asgi`, `filter`".to_owned();
            problems.report(Loc::of(second.1), join(key, field_name(second.0)), message, Some(help.into()));
            return (fallback.to_path_buf(), spec);
        }
    };
    spec.form = form;
    spec.stream_body = request_body(raw.request_body, form, key, problems);
    let field = field_name(form);
    let key = join(key, field);
    let text = target.value.trim();
    let (file, attr) = match (form, text.rsplit_once(':')) {
        (PythonForm::Filter, _) => (text, None),
        (_, Some((file, attr))) if !attr.is_empty() && !file.is_empty() => (file, Some(attr.to_owned())),
        _ => {
            let help = format!("write FILE.py:ATTR, e.g. `{field}: app/main.py:app`");
            problems.report(Loc::of(target), key, format!("\"{text}\" does not name an attribute"), Some(help));
            return (fallback.to_path_buf(), spec);
        }
    };
    spec.attr = attr;
    if form == PythonForm::Asgi && !file.ends_with(".py") {
        spec.module = Some(file.to_owned());
        return (fallback.to_path_buf(), spec);
    }
    let joined = base.join(file);
    match std::fs::canonicalize(&joined) {
        Ok(path) if path.is_file() => (path, spec),
        _ => {
            let help = format!("the file is relative to the manifest's directory: looked for {}", joined.display());
            problems.report(Loc::of(target), key, format!("python file \"{file}\" not found"), Some(help));
            (joined, spec)
        }
    }
}

/// The manifest key of a form.
fn field_name(form: PythonForm) -> &'static str {
    match form {
        PythonForm::App => "app",
        PythonForm::Asgi => "asgi",
        PythonForm::Filter => "filter",
    }
}

/// Whether the body is streamed; `stream` on a form other than `asgi` is refused.
fn request_body(mode: Option<&Spanned<RequestBodyMode>>, form: PythonForm, key: &str, problems: &mut Problems) -> bool {
    let Some(mode) = mode else { return false };
    if form != PythonForm::Asgi {
        let help = "only an ASGI app reads its body through `receive()`: use `asgi:`, or remove `request_body`";
        let message = format!("`request_body` applies to `asgi:` plugins only, not `{}:`", field_name(form));
        problems.report(Loc::of(mode), join(key, "request_body"), message, Some(help.into()));
        return false;
    }
    mode.value == RequestBodyMode::Stream
}

fn timeout(limits: Option<Spanned<RawWasmLimits>>, key: &str, problems: &mut Problems) -> Duration {
    let Some(limits) = limits else { return PythonPlugin::DEFAULT_TIMEOUT };
    let key = join(key, "limits");
    let help = "a python plugin takes `limits: { timeout: 2s }` only";
    if let Some(m) = &limits.value.memory {
        problems.report(Loc::of(m), join(&key, "memory"), "`memory` applies to `kind: wasm` plugins only".into(), Some(help.into()));
    }
    if let Some(f) = &limits.value.fuel {
        problems.report(Loc::of(f), join(&key, "fuel"), "`fuel` applies to `kind: wasm` plugins only".into(), Some(help.into()));
    }
    match &limits.value.timeout {
        Some(t) if t.value.0.is_zero() => {
            let help = "write a positive duration, e.g. 500ms or 2s (the default is 30s)";
            problems.report(Loc::of(t), join(&key, "timeout"), "a zero timeout".into(), Some(help.into()));
            PythonPlugin::DEFAULT_TIMEOUT
        }
        Some(t) => t.value.0,
        None => PythonPlugin::DEFAULT_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::{Manifest, PluginKind, PythonForm};
    use std::path::Path;

    fn parse(dir: &Path, plugins: &str) -> Result<Manifest, crate::manifest::ManifestError> {
        let text = format!("listen: [{{ addr: 127.0.0.1:0 }}]\npython: {{ threads: 2, queue: 8, path: [.] }}\nplugins:\n{plugins}");
        Manifest::parse(&dir.join("m.yaml"), &text)
    }

    #[test]
    fn the_three_forms_parse_with_their_targets() {
        let dir = std::env::temp_dir().join(format!("covet-py-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.py"), "app = None\n").unwrap();
        let plugins = "  a: { kind: python, app: a.py:app, limits: { timeout: 2s } }\n  \
                       b: { kind: python, asgi: \"pkg.mod:app\" }\n  c: { kind: python, filter: a.py }\n";
        let m = parse(&dir, plugins).unwrap();
        assert_eq!(m.python.threads, 2);
        assert_eq!(m.python.queue, 8);
        assert_eq!(m.python.sys_path, vec![dir.canonicalize().unwrap()]);
        let a = m.plugin("a").unwrap();
        assert_eq!(a.kind, PluginKind::Python(PythonForm::App));
        let spec = a.python.as_ref().unwrap();
        assert_eq!((spec.attr.as_deref(), spec.timeout), (Some("app"), std::time::Duration::from_secs(2)));
        assert_eq!(a.path, dir.join("a.py").canonicalize().unwrap());
        let b = m.plugin("b").unwrap().python.as_ref().unwrap();
        assert_eq!((b.form, b.module.as_deref(), b.attr.as_deref()), (PythonForm::Asgi, Some("pkg.mod"), Some("app")));
        let c = m.plugin("c").unwrap();
        assert_eq!(c.kind, PluginKind::Python(PythonForm::Filter));
        assert_eq!(c.python.as_ref().unwrap().timeout, std::time::Duration::from_secs(30));
    }

    #[test]
    fn request_body_stream_is_for_asgi_plugins_only() {
        let dir = std::env::temp_dir().join(format!("covet-py-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.py"), "app = None\n").unwrap();
        let plugins = "  s: { kind: python, asgi: \"pkg.mod:app\", request_body: stream }\n  \
                       b: { kind: python, asgi: \"pkg.mod:app\", request_body: buffered }\n  \
                       d: { kind: python, asgi: \"pkg.mod:app\" }\n";
        let m = parse(&dir, plugins).unwrap();
        let streams = |name: &str| m.plugin(name).unwrap().python.as_ref().unwrap().stream_body;
        assert_eq!((streams("s"), streams("b"), streams("d")), (true, false, false));
        let plugins = "  a:\n    kind: python\n    app: a.py:app\n    request_body: stream\n  \
                       n:\n    kind: native\n    path: a.py\n    request_body: stream\n";
        let error = parse(&dir, plugins).unwrap_err();
        let said: Vec<(String, String, u64, u64)> = error
            .diagnostics
            .iter()
            .map(|d| (d.key.clone(), d.message.clone(), d.loc.as_ref().map_or(0, |l| l.line), d.loc.as_ref().map_or(0, |l| l.column)))
            .collect();
        let has = |key: &str, text: &str, line: u64| said.iter().any(|(k, m, l, c)| k == key && m.contains(text) && *l == line && *c == 19);
        assert!(has("plugins.a.request_body", "applies to `asgi:` plugins only, not `app:`", 7), "{said:?}");
        assert!(has("plugins.n.request_body", "applies to `kind: python` plugins with `asgi:` only", 11), "{said:?}");
        assert_eq!(said.len(), 2, "{said:?}");
        let wrong = parse(&dir, "  s: { kind: python, asgi: \"pkg.mod:app\", request_body: chunked }\n").unwrap_err();
        assert!(wrong.to_string().contains("chunked"), "{wrong}");
    }

    #[test]
    fn mistakes_are_reported_where_they_are_written() {
        let dir = std::env::temp_dir();
        let plugins = "  a:\n    kind: python\n    app: missing.py:app\n    asgi: x.py:app\n  \
                       b:\n    kind: python\n    asgi: nofile.py\n    limits: { fuel: 5 }\n  \
                       c:\n    kind: native\n    filter: f.py\n  d:\n    kind: python\n";
        let error = parse(&dir, plugins).unwrap_err();
        let said: Vec<(String, String, u64)> =
            error.diagnostics.iter().map(|d| (d.key.clone(), d.message.clone(), d.loc.as_ref().map_or(0, |l| l.line))).collect();
        let has = |key: &str, text: &str, line: u64| said.iter().any(|(k, m, l)| k == key && m.contains(text) && *l == line);
        assert!(has("plugins.a.asgi", "more than one of", 7), "{said:?}");
        assert!(has("plugins.b.limits.fuel", "`fuel` applies to `kind: wasm`", 11), "{said:?}");
        assert!(has("plugins.b.asgi", "does not name an attribute", 10), "{said:?}");
        assert!(has("plugins.c.filter", "applies to `kind: python` plugins only", 14), "{said:?}");
        assert!(has("plugins.c", "missing `path`", 12), "{said:?}");
        assert!(has("plugins.d", "needs one of `app`, `asgi` or `filter`", 15), "{said:?}");
    }
}
