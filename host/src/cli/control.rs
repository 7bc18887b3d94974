//! The control-plane subcommands: `covet plugin list|reload|swap` and
//! `covet reload` talk to a running host's admin API and print either a
//! human summary or, with `--json`, the API's answer as it came.
//!
//! Exit codes (also in `--help`): 0 done; 1 the host refused (its message on
//! stderr, verbatim); 2 usage errors, including a `--config` file that cannot
//! be read; 3 the admin API cannot be used (unreachable, not the admin API,
//! or unauthorized).

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, SystemTime},
};

use clap::{ArgGroup, Args, Subcommand};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::admin_client::{AdminAddr, AdminClient, AdminError, Answer, DEFAULT_ADDR};

/// The `--help` text on exit codes and the environment.
pub const EXIT_CODES: &str = "\
Environment:
  COVET_ADMIN        the admin API address when --admin is not given (default 127.0.0.1:9901)
  COVET_ADMIN_TOKEN  sent as `authorization: Bearer <token>` when set

Exit codes:
  0  done
  1  the host refused (its message is printed to stderr as it came; nothing changed)
  2  usage error (bad arguments, or a --config file that cannot be read)
  3  the admin API cannot be used (nothing listens there, it is not covet's admin API,
     no answer within 10 s, or the token is missing or wrong)";

/// Where the admin API is and how to print its answers.
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// The admin API: HOST:PORT or http://HOST:PORT.
    #[arg(long, value_name = "ADDR", env = "COVET_ADMIN", default_value = DEFAULT_ADDR)]
    admin: AdminAddr,
    /// Print the API's JSON answer as it came instead of a summary.
    #[arg(long)]
    json: bool,
}

/// `covet plugin …`.
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// List the live plugins: version, artifact hash, age and call counts.
    #[command(after_help = EXIT_CODES)]
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Re-read a plugin's artifact from its path and make a new instance live
    /// (new code if the file changed; a fresh instance of the same code otherwise).
    #[command(after_help = EXIT_CODES)]
    Reload {
        /// The plugin's name in the manifest.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a plugin run another artifact and/or config; requests in flight
    /// finish on the old instance.
    #[command(after_help = EXIT_CODES)]
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["path", "config"])))]
    Swap {
        /// The plugin's name in the manifest.
        name: String,
        /// The new artifact (relative paths are taken from the current directory).
        #[arg(long, value_name = "P")]
        path: Option<PathBuf>,
        /// The new config, a YAML or JSON file (replaces the old config whole).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const UNREACHABLE: u8 = 3;

/// Runs `covet plugin …`.
pub fn plugin(command: PluginCommand) -> ExitCode {
    match command {
        PluginCommand::List { admin } => run(&admin, |c| c.get("/v1/plugins"), |list: PluginList| table(&list.plugins, now())),
        PluginCommand::Reload { name, admin } => {
            run(&admin, |c| c.post(&format!("/v1/plugins/{name}/reload"), None), |s: Swapped| s.line())
        }
        PluginCommand::Swap { name, path, config, admin } => {
            let body = match swap_body(path.as_deref(), config.as_deref()) {
                Ok(body) => body,
                Err(why) => {
                    eprintln!("error: {why}");
                    return ExitCode::from(USAGE);
                }
            };
            run(&admin, |c| c.post(&format!("/v1/plugins/{name}/swap"), Some(&body)), |s: Swapped| s.line())
        }
    }
}

/// Runs `covet reload`.
pub fn reload(admin: AdminArgs) -> ExitCode {
    run(&admin, |c| c.post("/v1/reload", None), |r: Reloaded| r.summary())
}

/// Sends one request, prints the answer (raw with `--json`, else `render`ed)
/// or the failure, and returns the exit code.
pub(super) fn run<T: DeserializeOwned>(
    args: &AdminArgs,
    call: impl FnOnce(&AdminClient) -> Result<Answer, AdminError>,
    render: impl FnOnce(T) -> String,
) -> ExitCode {
    let client = AdminClient::from_env(args.admin.clone());
    let answer = match call(&client) {
        Ok(answer) => answer,
        Err(err) => return failed(&err),
    };
    let text = if args.json {
        String::from_utf8_lossy(&answer.raw).trim_end().to_string()
    } else {
        match T::deserialize(&answer.json) {
            Ok(parsed) => render(parsed),
            Err(e) => return failed(&AdminError::Unreachable(format!("unexpected answer from {}: {e}", client.addr()))),
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end());
    ExitCode::SUCCESS
}

fn failed(err: &AdminError) -> ExitCode {
    eprintln!("{err}");
    match err {
        AdminError::Refused { .. } => ExitCode::from(REFUSED),
        AdminError::Unauthorized { .. } | AdminError::Unreachable(_) => ExitCode::from(UNREACHABLE),
    }
}

/// The swap request body: an absolute `path` and the parsed `config`.
fn swap_body(path: Option<&Path>, config: Option<&Path>) -> Result<Value, String> {
    let mut body = json!({});
    if let Some(path) = path {
        let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
        body["path"] = Value::String(absolute.to_string_lossy().into_owned());
    }
    if let Some(config) = config {
        body["config"] = read_config(config)?;
    }
    Ok(body)
}

/// Reads a YAML (or JSON, which is YAML) config file.
pub fn read_config(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_saphyr::from_str::<Value>(&text).map_err(|e| format!("{} is not valid YAML or JSON: {e}", path.display()))
}

fn now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64()
}

/// `GET /v1/plugins`.
#[derive(Deserialize)]
struct PluginList {
    plugins: Vec<PluginRow>,
}

/// The fields of a `PluginStatus` the table shows.
#[derive(Deserialize, Debug, Clone)]
struct PluginRow {
    name: String,
    kind: String,
    version: String,
    sha256: String,
    loaded_at: f64,
    requests: u64,
    errors: u64,
    panics: u64,
}

/// A `SwapOutcome`.
#[derive(Deserialize)]
struct Swapped {
    plugin: String,
    old_version: String,
    new_version: String,
    new_code: bool,
    took_ms: f64,
}

impl Swapped {
    /// `auth: 1.0.0 → 2.0.0 (new code, live in 1.8 ms)`.
    fn line(self) -> String {
        let what = if self.new_code { "new code" } else { "same code, new instance" };
        let (plugin, old, new) = (self.plugin, self.old_version, self.new_version);
        format!("{plugin}: {old} → {new} ({what}, live in {} ms)", millis(self.took_ms))
    }
}

/// A `ReloadOutcome`.
#[derive(Deserialize)]
struct Reloaded {
    added: Vec<String>,
    changed: Vec<String>,
    unchanged: Vec<String>,
    removed: Vec<String>,
    routes: usize,
    warnings: Vec<String>,
}

impl Reloaded {
    fn summary(self) -> String {
        let list = |names: &[String]| if names.is_empty() { "-".to_string() } else { names.join(", ") };
        let mut out = format!("manifest reloaded: {} routes live\n", self.routes);
        for (label, names) in
            [("added", &self.added), ("changed", &self.changed), ("removed", &self.removed), ("unchanged", &self.unchanged)]
        {
            let _ = writeln!(out, "  {:<10} {}", format!("{label}:"), list(names));
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }
}

/// `1.8`, `0.42`, `12`: enough digits to read, no more.
fn millis(ms: f64) -> String {
    match ms {
        ms if ms >= 10.0 => format!("{ms:.0}"),
        ms if ms >= 1.0 => format!("{ms:.1}"),
        ms => format!("{ms:.2}"),
    }
}

/// How long ago `then` was, at `now` (seconds since the epoch): `42s`, `5m12s`, `3h04m`, `2d07h`.
fn age(then: f64, now: f64) -> String {
    let secs = (now - then).max(0.0) as u64;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The `plugin list` table: a header and one aligned row per plugin.
fn table(plugins: &[PluginRow], now: f64) -> String {
    const HEADER: [&str; 8] = ["NAME", "KIND", "VERSION", "SHA256", "LOADED", "REQUESTS", "ERRORS", "PANICS"];
    const NUMERIC_FROM: usize = 5;
    let rows: Vec<[String; 8]> = plugins
        .iter()
        .map(|p| {
            let sha = p.sha256.chars().take(12).collect();
            let loaded = age(p.loaded_at, now);
            let counts = [p.requests, p.errors, p.panics].map(|n| n.to_string());
            let [requests, errors, panics] = counts;
            [p.name.clone(), p.kind.clone(), p.version.clone(), sha, loaded, requests, errors, panics]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = HEADER.map(String::from);
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| if i >= NUMERIC_FROM { format!("{cell:>w$}") } else { format!("{cell:<w$}") })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, version: &str, loaded_at: f64, requests: u64) -> PluginRow {
        let sha256 = "0123456789abcdef".repeat(4);
        PluginRow { name: name.into(), kind: "native".into(), version: version.into(), sha256, loaded_at, requests, errors: 0, panics: 1 }
    }

    #[test]
    fn the_table_aligns_columns_and_shortens_the_hash() {
        let rows = [row("auth", "1.0.0", 1000.0, 7), row("rate-limit", "10.2.3", 700.0, 123456)];
        let text = table(&rows, 1042.0);
        let expected = "\
NAME        KIND    VERSION  SHA256        LOADED  REQUESTS  ERRORS  PANICS
auth        native  1.0.0    0123456789ab  42s            7       0       1
rate-limit  native  10.2.3   0123456789ab  5m42s     123456       0       1
";
        assert_eq!(text, expected);
    }

    #[test]
    fn an_empty_host_lists_only_the_header() {
        assert_eq!(table(&[], 0.0).lines().count(), 1);
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(100.0, 100.4), "0s");
        assert_eq!(age(0.0, 3599.0), "59m59s");
        assert_eq!(age(0.0, 3.0 * 3600.0 + 240.0), "3h04m");
        assert_eq!(age(0.0, 2.0 * 86_400.0 + 7.0 * 3600.0), "2d07h");
        assert_eq!(age(10.0, 5.0), "0s", "a clock skew never prints a negative age");
    }

    #[test]
    fn a_swap_is_one_line_with_both_versions() {
        let swapped = |new_code, took_ms| Swapped {
            plugin: "auth".into(),
            old_version: "1.0.0".into(),
            new_version: "2.0.0".into(),
            new_code,
            took_ms,
        };
        assert_eq!(swapped(true, 1.83).line(), "auth: 1.0.0 → 2.0.0 (new code, live in 1.8 ms)");
        assert_eq!(swapped(false, 0.4213).line(), "auth: 1.0.0 → 2.0.0 (same code, new instance, live in 0.42 ms)");
        assert_eq!(swapped(true, 25.6).line(), "auth: 1.0.0 → 2.0.0 (new code, live in 26 ms)");
    }

    #[test]
    fn a_reload_lists_every_group_and_its_warnings() {
        let reloaded = Reloaded {
            added: vec!["a".into(), "b".into()],
            changed: vec![],
            unchanged: vec!["c".into()],
            removed: vec!["d".into()],
            routes: 3,
            warnings: vec!["`listen` changed: it takes effect after a restart".into()],
        };
        let expected = "\
manifest reloaded: 3 routes live
  added:     a, b
  changed:   -
  removed:   d
  unchanged: c
warning: `listen` changed: it takes effect after a restart
";
        assert_eq!(reloaded.summary(), expected);
    }

    #[test]
    fn config_files_are_read_as_yaml_or_json() {
        let dir = std::env::temp_dir().join(format!("covet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("cfg.yaml");
        std::fs::write(&yaml, "label: v2\nlimits:\n  - 1\n  - two\n").unwrap();
        assert_eq!(read_config(&yaml).unwrap(), json!({ "label": "v2", "limits": [1, "two"] }));
        let json_file = dir.join("cfg.json");
        std::fs::write(&json_file, r#"{"label": "v3", "on": true}"#).unwrap();
        assert_eq!(read_config(&json_file).unwrap(), json!({ "label": "v3", "on": true }));
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "label: [unclosed\n").unwrap();
        assert!(read_config(&bad).unwrap_err().contains("bad.yaml is not valid YAML or JSON"));
        assert!(read_config(&dir.join("missing.yaml")).unwrap_err().starts_with("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_relative_swap_path_is_sent_absolute() {
        let body = swap_body(Some(Path::new("libs/x.so")), None).unwrap();
        let sent = PathBuf::from(body["path"].as_str().unwrap());
        assert!(sent.is_absolute());
        assert_eq!(sent, std::env::current_dir().unwrap().join("libs/x.so"));
        assert!(body.get("config").is_none(), "no config key when --config is absent");
    }
}
