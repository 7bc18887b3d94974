//! The keys only `kind: wasm` plugins take — `limits`, `capabilities`,
//! `instances` and `background` — as written ([`RawWasm`]) and as checked ([`WasmSettings`]).
//!
//! ```yaml
//! plugins:
//!   tagger:
//!     kind: wasm
//!     path: wasm/ab_tagger.wasm
//!     limits: { memory: 16MiB, timeout: 50ms, fuel: 50000000 }
//!     capabilities:
//!       env: [AB_SALT]                              # by name; nothing else is visible
//!       dirs: [{ host: data, guest: /data, mode: ro }]
//!       outbound_http: [api.internal:8080]          # host or host:port
//!       stdio: true                                 # stdout/stderr → the host log
//!     instances: fresh                              # or `fresh-init` (init in every instance), `reused` (state persists)
//!     background: { every: 30s }                    # call its `background.tick` export every 30s
//! ```
//!
//! Every limit has a default and every capability is denied by default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::Loc;
use super::source_index::join;
use super::units::{ByteSize, HumanDuration};
use super::validate::Problems;

/// A WASM plugin's sandbox, checked. Natives have none.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct WasmSettings {
    /// Memory, time and fuel per call.
    pub limits: WasmLimits,
    /// What the plugin may reach outside its sandbox.
    pub capabilities: Capabilities,
    /// Whether an instance serves one call or many.
    pub instances: InstanceMode,
    /// How often the host calls the component's `background.tick` export; `None`: never.
    pub background: Option<Duration>,
}

/// Limits of one phase call.
#[derive(Clone, Debug, PartialEq)]
pub struct WasmLimits {
    /// Most bytes of linear memory an instance may grow to.
    pub memory: u64,
    /// Wall-clock time one phase call may take.
    pub timeout: Duration,
    /// Fuel per phase call (about one unit per instruction); `None`: unmetered.
    pub fuel: Option<u64>,
}

impl WasmLimits {
    /// The default memory limit of an instance.
    pub const DEFAULT_MEMORY: u64 = 64 << 20;
    /// The largest memory limit a manifest may set (the size of a pooled memory slot).
    pub const MAX_MEMORY: u64 = 1 << 30;
    /// The default time limit of one phase call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
}

impl Default for WasmLimits {
    fn default() -> Self {
        WasmLimits { memory: Self::DEFAULT_MEMORY, timeout: Self::DEFAULT_TIMEOUT, fuel: None }
    }
}

/// Capabilities granted to a WASM plugin; empty means none.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Capabilities {
    /// Environment variables it may read, by name (with the host's values).
    pub env: Vec<String>,
    /// Directories it may open.
    pub dirs: Vec<DirGrant>,
    /// Hosts (`host` or `host:port`, lower-case) it may send HTTP requests to.
    pub outbound_http: Vec<String>,
    /// Whether its stdout and stderr go to the host log (else they are discarded).
    pub stdio: bool,
}

/// One preopened directory.
#[derive(Clone, Debug, PartialEq)]
pub struct DirGrant {
    /// The host directory, absolute.
    pub host: PathBuf,
    /// The path the plugin opens it by.
    pub guest: String,
    /// Whether the plugin may create, write and remove files in it.
    pub writable: bool,
}

/// Whether a WASM plugin's instances are used once or kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// A new instance for every phase call: nothing survives between requests (the default). `init` runs once at load; every instance starts from a snapshot of the memory it left.
    #[default]
    Fresh,
    /// A new instance for every phase call that runs `init` itself (no snapshot): for an `init` whose work must be redone per request.
    #[serde(rename = "fresh-init")]
    FreshInit,
    /// Instances are kept and reused across calls (faster; the plugin's memory and globals persist between the requests one instance serves).
    Reused,
}

/// Whether a preopened directory is read-only or read-write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirMode {
    /// Read-only (the default).
    #[default]
    Ro,
    /// Read-write: the plugin may create, write and remove files.
    Rw,
}

/// The WASM keys of a plugin entry, as written.
#[derive(Debug, Default)]
pub struct RawWasm {
    /// `limits:`
    pub limits: Option<Spanned<RawWasmLimits>>,
    /// `capabilities:`
    pub capabilities: Option<Spanned<RawCapabilities>>,
    /// `instances:`
    pub instances: Option<Spanned<InstanceMode>>,
    /// `background:`
    pub background: Option<Spanned<RawBackground>>,
}

/// Periodic background work of a WASM plugin.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WasmBackground")]
pub struct RawBackground {
    /// The pause between the end of one `tick` call and the start of the next, e.g. `30s` (at least 10ms).
    #[schemars(with = "HumanDuration")]
    pub every: Spanned<HumanDuration>,
}

/// The shortest interval `background.every` may have.
pub const MIN_BACKGROUND_EVERY: Duration = Duration::from_millis(10);

/// Limits of one phase call of a WASM plugin.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "WasmLimits")]
pub struct RawWasmLimits {
    /// Most linear memory an instance may grow to, e.g. `16MiB` (default 64MiB, at most 1GiB). Running out fails the request with a 500.
    #[schemars(with = "Option<ByteSize>")]
    pub memory: Option<Spanned<ByteSize>>,
    /// Wall-clock time one phase call may take, e.g. `50ms` (default 1s). Past it the request gets a 504.
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Fuel per phase call (wasmtime fuel: about one unit per instruction); absent means unmetered. Running out fails the request with a 500.
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub fuel: Option<Spanned<u64>>,
}

/// What a WASM plugin may reach outside its sandbox; nothing by default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "WasmCapabilities")]
pub struct RawCapabilities {
    /// Environment variables the plugin may read, by name, with the host's values. No others are visible.
    #[schemars(with = "Vec<String>")]
    pub env: Vec<Spanned<String>>,
    /// Host directories the plugin may open (WASI preopens). No other file is reachable.
    pub dirs: Vec<RawDir>,
    /// Hosts the plugin may send HTTP requests to (host services; every plugin kind; for WASM through `wasi:http/outgoing-handler`): `host` (any port), `host:port` or `*.example.com` (subdomains). Requests to others are denied.
    #[schemars(with = "Vec<String>")]
    pub outbound_http: Vec<Spanned<String>>,
    /// Route the plugin's stdout and stderr to the host log, one line per event tagged with the plugin's name (default false: discarded).
    pub stdio: bool,
    /// Shared state namespaces the plugin may use (host services; every plugin kind), e.g. `[rate_limits]`.
    #[schemars(with = "Vec<String>")]
    pub state: Vec<Spanned<String>>,
    /// Upstreams (the top-level `upstreams:`) the plugin may send requests to (host services; every plugin kind), e.g. `[users]`.
    #[schemars(with = "Vec<String>")]
    pub upstreams: Vec<Spanned<String>>,
}

/// One directory a WASM plugin may open.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "WasmDir")]
pub struct RawDir {
    /// The directory on the host, relative to the manifest's directory.
    #[schemars(with = "String")]
    pub host: Spanned<String>,
    /// The absolute path the plugin opens it by, e.g. `/data`.
    #[schemars(with = "String")]
    pub guest: Spanned<String>,
    /// `ro` (default) or `rw`.
    #[serde(default)]
    pub mode: DirMode,
}

/// Checks the WASM keys of plugin `key`. For a native plugin (`is_wasm`
/// false) `limits` and `instances` are errors and the result is `None`
/// (`capabilities` are checked for every kind by `services::grants`, which
/// gives `outbound_http`, already checked).
pub fn settings(
    base: &Path,
    is_wasm: bool,
    raw: RawWasm,
    outbound_http: Vec<String>,
    key: &str,
    problems: &mut Problems,
) -> Option<WasmSettings> {
    if !is_wasm {
        refuse_on_native(&raw, key, problems);
        return None;
    }
    let limits = raw.limits.map(|l| l.value).unwrap_or_default();
    let capabilities = raw.capabilities.map(|c| c.value).unwrap_or_default();
    Some(WasmSettings {
        limits: check_limits(limits, &join(key, "limits"), problems),
        capabilities: check_capabilities(base, capabilities, outbound_http, &join(key, "capabilities"), problems),
        instances: raw.instances.map(|i| i.value).unwrap_or_default(),
        background: raw.background.map(|b| check_background(b.value, &join(key, "background"), problems)),
    })
}

fn refuse_on_native(raw: &RawWasm, key: &str, problems: &mut Problems) {
    let spots = [
        ("limits", raw.limits.as_ref().map(Loc::of)),
        ("instances", raw.instances.as_ref().map(Loc::of)),
        ("background", raw.background.as_ref().map(Loc::of)),
    ];
    for (name, loc) in spots {
        let Some(loc) = loc else { continue };
        let message = format!("`{name}` applies to `kind: wasm` plugins only");
        let help = match name {
            "background" => "native and Python plugins start their own background work (plugin-api `host.spawn`, `@covet.every`); remove it",
            _ => "native plugins run in the host's process without a sandbox; remove it, or use a wasm build",
        };
        problems.report(loc, join(key, name), message, Some(help.to_owned()));
    }
}

fn check_limits(raw: RawWasmLimits, key: &str, problems: &mut Problems) -> WasmLimits {
    let memory = raw.memory.map_or(WasmLimits::DEFAULT_MEMORY, |m| {
        if m.value.0 > WasmLimits::MAX_MEMORY || m.value.0 < 1 << 20 {
            let message = format!("memory limit {} bytes is out of range", m.value.0);
            let help = "write a size from 1MiB to 1GiB, e.g. 16MiB (the default is 64MiB)";
            problems.report(Loc::of(&m), join(key, "memory"), message, Some(help.to_owned()));
        }
        m.value.0
    });
    let timeout = raw.timeout.map_or(WasmLimits::DEFAULT_TIMEOUT, |t| {
        if t.value.0.is_zero() {
            let help = "write a positive duration, e.g. 50ms or 2s (the default is 1s)";
            problems.report(Loc::of(&t), join(key, "timeout"), "a zero timeout".to_owned(), Some(help.to_owned()));
        }
        t.value.0
    });
    let fuel = raw.fuel.map(|f| {
        if f.value == 0 {
            let help = "write a positive number, or remove `fuel` for no fuel metering";
            problems.report(Loc::of(&f), join(key, "fuel"), "zero fuel".to_owned(), Some(help.to_owned()));
        }
        f.value
    });
    WasmLimits { memory, timeout, fuel }
}

fn check_background(raw: RawBackground, key: &str, problems: &mut Problems) -> Duration {
    let every = raw.every.value.0;
    if every < MIN_BACKGROUND_EVERY {
        let message = format!("background interval {} ms is too short", every.as_millis());
        let help = "write an interval of 10ms or more, e.g. 30s (the pause between the end of one tick and the next)";
        problems.report(Loc::of(&raw.every), join(key, "every"), message, Some(help.to_owned()));
    }
    every
}

fn check_capabilities(base: &Path, raw: RawCapabilities, outbound_http: Vec<String>, key: &str, problems: &mut Problems) -> Capabilities {
    let env = raw.env.iter().enumerate().filter_map(|(i, name)| env_name(name, &format!("{key}.env[{i}]"), problems));
    let env = env.collect();
    let dirs = raw.dirs.iter().enumerate().filter_map(|(i, dir)| dir_grant(base, dir, &format!("{key}.dirs[{i}]"), problems));
    let dirs = dirs.collect();
    Capabilities { env, dirs, outbound_http, stdio: raw.stdio }
}

fn env_name(name: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<String> {
    let text = name.value.as_str();
    if !text.is_empty() && !text.contains(['=', '\0']) {
        return Some(text.to_owned());
    }
    let help = "write the variable's name only, e.g. API_TOKEN (its value comes from the host's environment)";
    problems.report(Loc::of(name), key, format!("invalid environment variable name \"{text}\""), Some(help.to_owned()));
    None
}

fn dir_grant(base: &Path, raw: &RawDir, key: &str, problems: &mut Problems) -> Option<DirGrant> {
    let guest = raw.guest.value.trim();
    if !guest.starts_with('/') {
        let help = "write an absolute path the plugin will open, e.g. /data";
        let message = format!("guest path \"{guest}\" is not absolute");
        problems.report(Loc::of(&raw.guest), join(key, "guest"), message, Some(help.to_owned()));
        return None;
    }
    let joined = base.join(&raw.host.value);
    match std::fs::canonicalize(&joined) {
        Ok(host) if host.is_dir() => Some(DirGrant { host, guest: guest.to_owned(), writable: raw.mode == DirMode::Rw }),
        Ok(_) | Err(_) => {
            let message = format!("directory \"{}\" not found", raw.host.value);
            let help = format!("`host` is relative to the manifest's directory: looked for {}", joined.display());
            problems.report(Loc::of(&raw.host), join(key, "host"), message, Some(help));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spanned<T>(value: T) -> Spanned<T> {
        Spanned::new(value, serde_saphyr::Location::UNKNOWN, serde_saphyr::Location::UNKNOWN)
    }

    #[test]
    fn defaults_grant_nothing() {
        let mut problems = Problems::default();
        let settings = settings(Path::new("."), true, RawWasm::default(), Vec::new(), "plugins.p", &mut problems).unwrap();
        assert_eq!(settings.capabilities, Capabilities::default());
        assert_eq!(settings.limits, WasmLimits::default());
        assert_eq!(settings.instances, InstanceMode::Fresh);
        assert_eq!(settings.background, None, "no background work unless asked for");
    }

    #[test]
    fn background_every_is_kept() {
        let mut problems = Problems::default();
        let every = RawBackground { every: spanned(HumanDuration(Duration::from_secs(30))) };
        let raw = RawWasm { background: Some(spanned(every)), ..RawWasm::default() };
        let settings = settings(Path::new("."), true, raw, Vec::new(), "plugins.p", &mut problems).unwrap();
        assert_eq!(settings.background, Some(Duration::from_secs(30)));
    }
}
