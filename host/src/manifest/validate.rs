//! The checks serde cannot make, run once the YAML has deserialised:
//! listen addresses, the log filter, plugin names, kinds and artifact files
//! (routes are in [`super::routes`]). Every problem is collected, so one run
//! of `covet check` shows them all.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::raw::{PluginEntries, RawAdmin, RawLimits, RawListen, RawLog, RawManifest, RawPlugin};
use super::source_index::join;
use super::suggest::did_you_mean;
use super::{services, upstream_check, wasm};
use super::{
    AdminSettings, Diagnostic, Limits, ListenSpec, Loc, LogSettings, Manifest, PluginKind,
    PluginSpec, PythonForm, PythonSettings, python, routes,
};

/// The problems found so far.
#[derive(Default)]
pub struct Problems(Vec<Diagnostic>);

impl Problems {
    /// Records a problem at `loc`.
    pub fn report(
        &mut self,
        loc: Loc,
        key: impl Into<String>,
        message: String,
        help: Option<String>,
    ) {
        let loc = (loc.line > 0).then_some(loc);
        self.0.push(Diagnostic {
            loc,
            key: key.into(),
            message,
            help,
        });
    }

    /// `value` when nothing was reported, else the problems in document order.
    fn finish<T>(mut self, value: T) -> Result<T, Vec<Diagnostic>> {
        if self.0.is_empty() {
            return Ok(value);
        }
        self.0.sort_by_key(|d| {
            d.loc
                .as_ref()
                .map_or((u64::MAX, 0), |loc| (loc.line, loc.column))
        });
        Err(self.0)
    }
}

/// Checks a deserialised manifest and builds the public [`Manifest`].
/// Artifact paths are resolved against `source`'s directory.
pub fn manifest(source: &Path, raw: RawManifest) -> Result<Manifest, Vec<Diagnostic>> {
    let mut problems = Problems::default();
    let base = source.parent().unwrap_or(Path::new(""));
    let names: Vec<String> = raw
        .plugins
        .0
        .iter()
        .map(|(name, _)| name.value.clone())
        .collect();
    let upstream_names: Vec<String> = raw.upstreams.0.iter().map(|(name, _)| name.value.clone()).collect();
    let python = python::settings(base, raw.python, &mut problems);
    let telemetry = super::telemetry::settings(raw.telemetry, &mut problems);
    let tracing_on = telemetry.tracing.is_some();
    let manifest = Manifest {
        source: source.to_path_buf(),
        listen: listen(base, &raw.listen, &mut problems),
        limits: limits(&raw.limits),
        log: log(raw.log, &mut problems),
        plugins: plugins(base, source, raw.plugins, &python, &upstream_names, &mut problems),
        routes: routes::check(raw.routes, &names, tracing_on, &mut problems),
        admin: admin(base, raw.admin, &mut problems),
        python,
        io: raw.io,
        workers: raw.workers,
        processes: raw.processes,
        services: services::settings(base, raw.services, &mut problems),
        upstreams: upstream_check::check(base, raw.upstreams, &mut problems),
        telemetry,
    };
    problems.finish(manifest)
}

fn listen(base: &Path, raw: &Spanned<Vec<RawListen>>, problems: &mut Problems) -> Vec<ListenSpec> {
    if raw.value.is_empty() {
        let help = "add one, e.g. `listen: [{ addr: 127.0.0.1:8080 }]`".to_owned();
        problems.report(
            Loc::of(raw),
            "listen",
            "no address to listen on".to_owned(),
            Some(help),
        );
    }
    let mut specs: Vec<ListenSpec> = Vec::new();
    for (i, entry) in raw.value.iter().enumerate() {
        let key = format!("listen[{i}].addr");
        let location = Loc::of(&entry.addr);
        let Ok(addr) = entry.addr.value.trim().parse::<SocketAddr>() else {
            let message = format!("invalid listen address \"{}\"", entry.addr.value);
            let help = "write IP:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:80 or [::1]:8080 \
                        (host names are not resolved; port 0 picks a free port)";
            problems.report(location, key, message, Some(help.to_owned()));
            continue;
        };
        let earlier = specs
            .iter()
            .find(|spec| spec.addr == addr && addr.port() != 0);
        if let Some(earlier) = earlier {
            let Loc { line, column } = earlier.location;
            let help = format!("it is first listed at line {line}, column {column}; remove one");
            problems.report(
                location.clone(),
                key,
                format!("address {addr} is listed twice"),
                Some(help),
            );
        }
        let tls = super::tls::check(base, entry.tls.as_ref(), entry.http3.as_ref(), &format!("listen[{i}]"), problems);
        let http3 = tls.is_some() && entry.http3.as_ref().is_some_and(|f| f.value);
        specs.push(ListenSpec { addr, location, tls, http3 });
    }
    specs
}

fn limits(raw: &RawLimits) -> Limits {
    Limits {
        max_body: raw.max_body.0,
        max_header_bytes: usize::try_from(raw.max_header_bytes.0).unwrap_or(usize::MAX),
        max_headers: raw.max_headers.get(),
        header_read_timeout: raw.header_read_timeout.0,
        idle_timeout: raw.idle_timeout.0,
        max_connections: raw.max_connections.get(),
        listen_backlog: raw.listen_backlog.get(),
        shutdown_timeout: raw.shutdown_timeout.0,
        h2_max_concurrent_streams: raw.h2_max_concurrent_streams.get(),
        h2_keepalive_interval: raw.h2_keepalive_interval.0,
        body_read_timeout: raw.body_read_timeout.0,
        body_min_rate: raw.body_min_rate.0,
        send_timeout: raw.send_timeout.0,
        background_max: raw.background_max,
    }
}

fn log(raw: RawLog, problems: &mut Problems) -> LogSettings {
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.level.value) {
        let message = format!("invalid log level \"{}\": {e}", raw.level.value);
        let help = "write a tracing filter, e.g. info, warn or covet=debug,info".to_owned();
        problems.report(Loc::of(&raw.level), "log.level", message, Some(help));
    }
    LogSettings {
        format: raw.format,
        access: raw.access,
        level: raw.level.value,
    }
}

fn admin(base: &Path, raw: RawAdmin, problems: &mut Problems) -> AdminSettings {
    let listen = AdminSettings::parse_listen(&raw.listen.value).unwrap_or_else(|_| {
        let message = format!("invalid admin listen address \"{}\"", raw.listen.value);
        let help = "write IP:PORT, e.g. 127.0.0.1:9901 (host names are not resolved), \
                    or `off` to turn the admin API off";
        problems.report(
            Loc::of(&raw.listen),
            "admin.listen",
            message,
            Some(help.to_owned()),
        );
        None
    });
    let token_file = raw.token_file.map(|file| {
        if file.value.trim().is_empty() {
            let help = "name the file holding the admin token, or remove `token_file`".to_owned();
            problems.report(
                Loc::of(&file),
                "admin.token_file",
                "empty token file path".to_owned(),
                Some(help),
            );
        }
        base.join(&file.value)
    });
    AdminSettings { listen, token_file }
}

fn plugins(
    base: &Path,
    source: &Path,
    entries: PluginEntries,
    interpreter: &PythonSettings,
    upstreams: &[String],
    problems: &mut Problems,
) -> Vec<PluginSpec> {
    let specs = entries
        .0
        .into_iter()
        .map(|(name, raw)| plugin(base, source, name, raw, interpreter, upstreams, problems));
    specs.collect()
}

fn plugin(
    base: &Path,
    source: &Path,
    name: Spanned<String>,
    mut raw: RawPlugin,
    interpreter: &PythonSettings,
    upstreams: &[String],
    problems: &mut Problems,
) -> PluginSpec {
    let key = join("plugins", &name.value);
    check_name(&name, &key, problems);
    let mut kind = check_kind(&raw.kind, &join(&key, "kind"), problems);
    let (path, python) = if kind == PluginKind::Python(PythonForm::App) {
        let limits = raw.limits.take();
        let fields = python::RawPythonPlugin {
            app: raw.app.as_ref(),
            asgi: raw.asgi.as_ref(),
            filter: raw.filter.as_ref(),
            request_body: raw.request_body.as_ref(),
            path: raw.path.as_ref(),
            limits,
        };
        let fallback = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        let (path, spec) = python::plugin(base, fields, interpreter, &fallback, &key, Loc::of(&name), problems);
        kind = PluginKind::Python(spec.form);
        (path, Some(spec))
    } else {
        refuse_python_keys(&raw, &key, problems);
        (native_artifact(base, &raw, &name, &key, problems), None)
    };
    let grants = services::grants(raw.capabilities.as_ref(), kind, upstreams, &key, problems);
    let sandbox = wasm::RawWasm { limits: raw.limits, capabilities: raw.capabilities, instances: raw.instances, background: raw.background };
    let outbound = grants.outbound_http.clone();
    PluginSpec {
        path,
        name: name.value.clone(),
        kind,
        config: raw.config.unwrap_or(serde_json::Value::Null),
        wasm: wasm::settings(base, kind == PluginKind::Wasm, sandbox, outbound, &key, problems),
        grants,
        python,
        location: Loc::of(&name),
    }
}

/// The `path:` of a native or WASM plugin (required).
fn native_artifact(base: &Path, raw: &RawPlugin, name: &Spanned<String>, key: &str, problems: &mut Problems) -> PathBuf {
    match &raw.path {
        Some(path) => artifact(base, path, &join(key, "path"), problems),
        None => {
            let help = "add `path:` naming the plugin's artifact (a .so library or a .wasm component)";
            problems.report(Loc::of(name), key, "missing `path`".to_owned(), Some(help.to_owned()));
            base.to_path_buf()
        }
    }
}

fn refuse_python_keys(raw: &RawPlugin, key: &str, problems: &mut Problems) {
    for (field, value) in [("app", &raw.app), ("asgi", &raw.asgi), ("filter", &raw.filter)] {
        if let Some(value) = value {
            let help = "it names Python code: set `kind: python`, or remove it";
            let message = format!("`{field}` applies to `kind: python` plugins only");
            problems.report(Loc::of(value), join(key, field), message, Some(help.to_owned()));
        }
    }    if let Some(mode) = &raw.request_body {
        let help = "request body streaming is for ASGI apps: set `kind: python` with `asgi:`, or remove it";
        let message = "`request_body` applies to `kind: python` plugins with `asgi:` only".to_owned();
        problems.report(Loc::of(mode), join(key, "request_body"), message, Some(help.to_owned()));
    }
}

/// `[a-z0-9][a-z0-9_-]*`
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn check_name(name: &Spanned<String>, key: &str, problems: &mut Problems) {
    if valid_name(&name.value) {
        return;
    }
    let mut help = "a plugin name is lower-case letters, digits, `_` and `-`, \
                    starting with a letter or digit"
        .to_owned();
    let lower = name.value.to_ascii_lowercase();
    if valid_name(&lower) {
        help.push_str(&format!(", e.g. \"{lower}\""));
    }
    let message = format!("invalid plugin name \"{}\"", name.value);
    problems.report(Loc::of(name), key, message, Some(help));
}

/// The kinds a manifest may name.
const KINDS: [&str; 3] = ["native", "wasm", "python"];

/// The plugin's kind (`native` when it is invalid, which is reported; a
/// python plugin's form is filled in by the caller).
fn check_kind(kind: &Spanned<String>, key: &str, problems: &mut Problems) -> PluginKind {
    if let Some(message) = crate::runtime::missing_runtime(&kind.value) {
        // A runtime left out of this build (cargo features): refused here, with its line.
        let help = crate::runtime::missing_runtime_help(&kind.value);
        problems.report(Loc::of(kind), key, message, Some(help));
    }
    let (message, help) = match kind.value.as_str() {
        "native" => return PluginKind::Native,
        "wasm" => return PluginKind::Wasm,
        "python" => return PluginKind::Python(PythonForm::App),
        other => (
            format!("unknown plugin kind \"{other}\""),
            did_you_mean(other, KINDS)
                .unwrap_or_else(|| "the kind is \"native\", \"wasm\" or \"python\"".to_owned()),
        ),
    };
    problems.report(Loc::of(kind), key, message, Some(help));
    PluginKind::Native
}

/// The artifact's absolute path; a missing file or directory is reported.
fn artifact(base: &Path, path: &Spanned<String>, key: &str, problems: &mut Problems) -> PathBuf {
    let joined = base.join(&path.value);
    let problem = match std::fs::metadata(&joined) {
        Ok(meta) if meta.is_file() => match joined.canonicalize() {
            Ok(absolute) => return absolute,
            Err(e) => (
                format!("cannot resolve artifact \"{}\": {e}", path.value),
                None,
            ),
        },
        Ok(_) => (
            format!("artifact \"{}\" is not a file", path.value),
            Some(format!(
                "`path` names the plugin's library (e.g. a .so); it resolved to {}",
                joined.display()
            )),
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => (
            format!("artifact \"{}\" not found", path.value),
            Some(missing_help(path, &joined)),
        ),
        Err(e) => (
            format!("cannot read artifact \"{}\": {e}", path.value),
            None,
        ),
    };
    problems.report(Loc::of(path), key, problem.0, problem.1);
    joined
}

/// Where the missing artifact was looked for, and how to produce it.
fn missing_help(written: &Spanned<String>, joined: &Path) -> String {
    let relative = match Path::new(&written.value).is_absolute() {
        true => "",
        false => "`path` is relative to the manifest's directory: ",
    };
    let build = match package_of(joined) {
        Some(package) => {
            format!("build it with `cargo build -p {package}` and copy the library there")
        }
        None => "build the plugin first".to_owned(),
    };
    format!("{relative}looked for {}; {build}", joined.display())
}

/// `libcovet_auth_jwt.so` → `covet-auth-jwt`, the cargo package it comes from.
fn package_of(library: &Path) -> Option<String> {
    let stem = library.file_stem()?.to_str()?;
    let name = stem.strip_prefix("lib")?;
    (!name.is_empty()).then(|| name.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_section_defaults_to_loopback_and_resolves_the_token_file() {
        let listen = "listen:\n  - addr: 127.0.0.1:0\n";
        let parse = |text: &str| Manifest::parse(Path::new("conf/m.yaml"), text);
        assert_eq!(parse(listen).unwrap().admin, AdminSettings::default());
        assert_eq!(
            AdminSettings::default().listen,
            Some("127.0.0.1:9901".parse().unwrap())
        );
        let text = format!("{listen}admin:\n  listen: off\n  token_file: secrets/admin.token\n");
        let admin = parse(&text).unwrap().admin;
        assert_eq!(admin.listen, None);
        assert_eq!(
            admin.token_file,
            Some(PathBuf::from("conf/secrets/admin.token"))
        );
        let admin = parse(&format!("{listen}admin: {{ listen: \"[::1]:0\" }}\n"))
            .unwrap()
            .admin;
        assert_eq!(admin.listen, Some("[::1]:0".parse().unwrap()));
    }

    #[test]
    fn a_bad_admin_address_is_reported_at_its_value() {
        let text = "listen:\n  - addr: 127.0.0.1:0\nadmin:\n  listen: localhost:9901\n";
        let error = Manifest::parse(Path::new("m.yaml"), text).unwrap_err();
        let d = &error.diagnostics[0];
        assert_eq!(d.key, "admin.listen");
        let at = Loc {
            line: 4,
            column: 11,
        };
        assert_eq!(d.loc, Some(at));
        assert_eq!(d.message, "invalid admin listen address \"localhost:9901\"");
    }

    #[test]
    fn plugin_names_are_lower_case_words() {
        assert!(valid_name("jwt"));
        assert!(valid_name("rate-limit_2"));
        assert!(valid_name("0x"));
        assert!(!valid_name("JWT"));
        assert!(!valid_name("-jwt"));
        assert!(!valid_name(""));
        assert!(!valid_name("a.b"));
    }

    #[test]
    fn a_library_names_its_package() {
        let package = package_of(Path::new("artifacts/libcovet_auth_jwt.so"));
        assert_eq!(package.as_deref(), Some("covet-auth-jwt"));
        assert_eq!(package_of(Path::new("plugin.wasm")), None);
    }

    #[test]
    fn the_missing_help_says_where_it_looked() {
        let written = Spanned::new(
            "a/libx.so".to_owned(),
            serde_saphyr::Location::UNKNOWN,
            serde_saphyr::Location::UNKNOWN,
        );
        let help = missing_help(&written, Path::new("m/a/libx.so"));
        assert_eq!(
            help,
            "`path` is relative to the manifest's directory: looked for m/a/libx.so; \
             build it with `cargo build -p x` and copy the library there"
        );
    }
}
