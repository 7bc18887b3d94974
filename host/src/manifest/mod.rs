//! The YAML manifest: what covet listens on, its limits and logging, which
//! plugins it loads and which routes run them.
//!
//! Loading is two steps. Serde reads the text into the types of [`raw`]
//! (one to one with the YAML, with a source location on every value a later
//! check points at); [`validate`] then checks everything serde cannot
//! (plugin names, artifact files, methods, route patterns and conflicts),
//! collecting every problem instead of stopping at the first, and builds the
//! [`Manifest`] below. Every problem becomes a [`Diagnostic`] naming line,
//! column and key; [`ManifestError`] renders them the way rustc does.
//!
//! ```yaml
//! listen:
//!   - addr: 127.0.0.1:8080
//! plugins:
//!   hello:
//!     kind: native
//!     path: artifacts/libcovet_static_response.so
//!     config: { body: "hello" }
//! routes:
//!   - path: /hello
//!     methods: [GET]
//!     handler: hello
//! ```
//!
//! [`json_schema`] gives the JSON Schema of the same format, for editors.

mod diagnostic;
mod processes;
mod python;
mod raw;
mod routes;
mod schema;
mod serde_error;
mod services;
mod source_index;
mod suggest;
mod telemetry;
mod tls;
mod units;
mod upstream_check;
mod upstreams;
mod validate;
mod wasm;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diagnostic::{Diagnostic, ManifestError};
pub use schema::json_schema;
pub use processes::{MAX_PROCESSES, Processes};
pub use python::{PythonForm, PythonPlugin, PythonSettings};
pub use telemetry::{TelemetrySettings, TracingSettings};
pub use services::{HttpServices, ServiceGrants, ServicesSettings, StateBackend, StateServices};
pub use tls::{CertFiles, ClientAuth, SniCert, TlsSettings, TlsVersion};
pub use wasm::{Capabilities, DirGrant, InstanceMode, WasmLimits, WasmSettings};

/// A loaded and validated manifest. Everything in it has been checked: the
/// plugin artifacts exist, every route names defined plugins and no two
/// routes conflict.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The manifest file as it was given (not canonicalised), for messages.
    pub source: PathBuf,
    /// The addresses to listen on; never empty.
    pub listen: Vec<ListenSpec>,
    /// Connection and request limits.
    pub limits: Limits,
    /// Logging settings.
    pub log: LogSettings,
    /// The plugins, in manifest order.
    pub plugins: Vec<PluginSpec>,
    /// The routes, in manifest order.
    pub routes: Vec<RouteSpec>,
    /// The admin API settings.
    pub admin: AdminSettings,
    /// The embedded interpreter's settings (`python:`).
    pub python: PythonSettings,
    /// The I/O backend of the HTTP listeners (`io:`); `COVET_IO` overrides it.
    pub io: IoBackend,
    /// Threads serving the HTTP listeners (`workers:`); `None`: one per core
    /// this process may run on.
    pub workers: Option<std::num::NonZeroUsize>,
    /// Host processes (`processes:`); more than one runs a supervisor ([`crate::supervisor`]).
    pub processes: Processes,
    /// The host services' settings (`services:`).
    pub services: ServicesSettings,
    /// The upstreams plugins send requests to (`upstreams:`), in manifest order.
    pub upstreams: Vec<covet_services::upstream::UpstreamConfig>,
    /// Tracing and OTLP export (`telemetry:`); off by default.
    pub telemetry: TelemetrySettings,
}

/// The I/O backend of the HTTP listeners (`io:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IoBackend {
    /// tokio's multi-threaded runtime on epoll (the default).
    #[default]
    Epoll,
    /// One io_uring runtime per core, each with its own SO_REUSEPORT listener;
    /// falls back to `epoll` (with one log line) where io_uring is unavailable.
    Uring,
}

/// One address to listen on.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenSpec {
    /// The socket address; port 0 asks the OS for a free port.
    pub addr: SocketAddr,
    /// Where the address is written.
    pub location: Loc,
    /// HTTPS settings; `None` for plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Also serve HTTP/3 on UDP (only with `tls`).
    pub http3: bool,
}

/// Connection and request limits (`limits:`); every field has a default.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest request body in bytes (default 1 MiB).
    pub max_body: u64,
    /// Largest total size of the request headers in bytes (default 16 KiB).
    pub max_header_bytes: usize,
    /// Most request headers (default 100).
    pub max_headers: usize,
    /// Time allowed to receive the request headers (default 10 s).
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection stays open (default 60 s).
    pub idle_timeout: Duration,
    /// Most open connections (default 10 000).
    pub max_connections: usize,
    /// Connections the kernel queues on each listener socket before the
    /// host accepts them (default 4096; Linux caps it at
    /// `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// How long a graceful shutdown waits for requests in flight (default 30 s).
    pub shutdown_timeout: Duration,
    /// Most concurrent HTTP/2 streams per connection (default 256).
    pub h2_max_concurrent_streams: u32,
    /// How often HTTP/2 pings an idle peer, and how long it waits for the
    /// answer before closing the connection (default 20 s).
    pub h2_keepalive_interval: Duration,
    /// Longest wait for the next piece of a request body (default 30 s).
    pub body_read_timeout: Duration,
    /// Slowest request body accepted, in bytes per second, after
    /// `body_read_timeout` of grace (default 500; 0: no minimum).
    pub body_min_rate: u64,
    /// Longest a response may wait on the client to take more of it: no
    /// byte accepted within it closes the connection (default 60 s).
    pub send_timeout: Duration,
    /// Most background runs of `Flow::RespondAndContinue` in flight at once
    /// (default 64; 0: never run in the background, answer as `Respond`).
    pub background_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            listen_backlog: 4096,
            shutdown_timeout: Duration::from_secs(30),
            h2_max_concurrent_streams: 256,
            h2_keepalive_interval: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(30),
            body_min_rate: 500,
            send_timeout: Duration::from_secs(60),
            background_max: 64,
        }
    }
}

/// Logging settings (`log:`).
#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    /// How log lines are written.
    pub format: LogFormat,
    /// Whether one access-log line is written per request.
    pub access: bool,
    /// A `tracing` filter directive, e.g. `info` or `covet=debug,warn`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Pretty,
            access: true,
            level: "info".to_owned(),
        }
    }
}

/// The admin API settings (`admin:`), as written in the manifest; the
/// environment (`COVET_ADMIN_LISTEN`, `COVET_ADMIN_TOKEN`) is applied when
/// the admin server starts (see `crate::admin`).
#[derive(Clone, Debug, PartialEq)]
pub struct AdminSettings {
    /// Where the admin API listens; `None` when the manifest says `listen: off`.
    pub listen: Option<SocketAddr>,
    /// The file holding the bearer token, resolved against the manifest's directory.
    pub token_file: Option<PathBuf>,
}

impl AdminSettings {
    /// Reads an admin listen value: `IP:PORT`, or `off` (→ `Ok(None)`).
    pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        match text.trim() {
            "off" => Ok(None),
            addr => addr.parse().map(Some),
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        let listen = AdminSettings::parse_listen(raw::DEFAULT_ADMIN_LISTEN)
            .ok()
            .flatten();
        AdminSettings {
            listen,
            token_file: None,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// One plugin to load.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSpec {
    /// The plugin's name, as routes refer to it.
    pub name: String,
    /// The runtime that runs it.
    pub kind: PluginKind,
    /// The artifact, absolute and canonicalised.
    pub path: PathBuf,
    /// The plugin's `config:` as JSON; `Null` when absent.
    pub config: serde_json::Value,
    /// A WASM plugin's limits, capabilities and instance mode; `None` for natives.
    pub wasm: Option<WasmSettings>,
    /// A Python plugin's form, target and timeout; `None` for other kinds.
    pub python: Option<PythonPlugin>,
    /// What the plugin may use of the host services (every kind).
    pub grants: ServiceGrants,
    /// Where the plugin's name (its key under `plugins:`) is written.
    pub location: Loc,
}

/// The runtimes a plugin can be built for: native, WASM and Python.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    /// A Rust `cdylib` built against `covet-plugin-api`.
    Native,
    /// A WebAssembly component run by wasmtime (see `runtime::wasm`).
    Wasm,
    /// Python code in the embedded interpreter (see `runtime::python`), of one form.
    Python(PythonForm),
}

impl PluginKind {
    /// `native`, `wasm` or `python`.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Native => "native",
            PluginKind::Wasm => "wasm",
            PluginKind::Python(_) => "python",
        }
    }
}

/// One route: a path pattern, the methods it answers, its filters and handler.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// A matchit 0.9 pattern, e.g. `/api/{id}/{*rest}`.
    pub path: String,
    /// The methods it answers; empty means every method.
    pub methods: Vec<http::Method>,
    /// The filter plugins, in the order they run on the request.
    pub filters: Vec<Named>,
    /// The plugin that answers the request.
    pub handler: Named,
    /// The share of new traces recorded on this route (`trace_sample_ratio`),
    /// replacing the default ratio; `None`: the default.
    pub trace_sample_ratio: Option<f64>,
    /// Where the route's `path` value is written.
    pub location: Loc,
}

/// A reference to a plugin by name, with where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// The plugin's name.
    pub name: String,
    /// Where the name is written.
    pub location: Loc,
}

/// A position in the manifest: 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq)]
pub struct Loc {
    /// The line, from 1.
    pub line: u64,
    /// The column, from 1, counted in characters.
    pub column: u64,
}

impl Loc {
    /// The location serde-saphyr recorded, or `None` when it is unknown.
    fn from_yaml(location: &serde_saphyr::Location) -> Option<Loc> {
        (location.line() > 0).then(|| Loc {
            line: location.line(),
            column: location.column(),
        })
    }

    /// Where a spanned value is used (for an alias: the alias, not the anchor).
    fn of<T>(spanned: &serde_saphyr::Spanned<T>) -> Loc {
        let at = &spanned.referenced;
        Loc {
            line: at.line(),
            column: at.column(),
        }
    }
}

impl Manifest {
    /// Reads, parses and validates the manifest at `path`. Artifact paths are
    /// resolved against the manifest's directory.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Manifest::parse(path, &text),
            Err(e) => Err(ManifestError::single(
                path,
                None,
                Diagnostic {
                    loc: None,
                    key: String::new(),
                    message: format!("cannot read the manifest: {e}"),
                    help: None,
                },
            )),
        }
    }

    /// Parses and validates manifest `text`, named `source_name` in messages.
    /// Artifact paths are resolved against `source_name`'s directory.
    pub fn parse(source_name: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let error = |diagnostics| ManifestError {
            file: source_name.to_path_buf(),
            source_text: Some(text.to_owned()),
            diagnostics,
        };
        let raw = raw::from_str(text).map_err(|e| error(vec![serde_error::diagnose(&e, text)]))?;
        validate::manifest(source_name, raw).map_err(error)
    }

    /// The plugin called `name`, if the manifest defines one.
    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|plugin| plugin.name == name)
    }
}

#[cfg(test)]
mod tests;
