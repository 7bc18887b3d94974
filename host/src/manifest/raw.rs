//! The manifest as written: serde types that mirror the YAML one to one.
//!
//! Every value a later check points at is a `Spanned` so its line and column
//! survive deserialisation; `validate` turns these into the public types.
//! Unknown keys are refused everywhere (`deny_unknown_fields`). The doc
//! comments here are the descriptions in the JSON Schema.

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::units::{ByteSize, HumanDuration};
use super::{Limits, LogFormat};

/// Parses manifest text. YAML 1.2 booleans only (`yes` stays a string) and
/// duplicate keys are refused.
pub fn from_str(text: &str) -> Result<RawManifest, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options)
}

/// A covet manifest: what to listen on, limits, logging, plugins and routes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "covet manifest")]
pub struct RawManifest {
    /// The addresses to listen on; at least one.
    #[schemars(with = "Vec<RawListen>", length(min = 1))]
    pub listen: Spanned<Vec<RawListen>>,
    /// Connection and request limits; every field has a default.
    #[serde(default)]
    pub limits: RawLimits,
    /// Logging settings.
    #[serde(default)]
    pub log: RawLog,
    /// The plugins, by name. A name is lower-case letters, digits, `_` and `-`.
    #[serde(default)]
    pub plugins: PluginEntries,
    /// The routes. Two routes that could match the same request are an error; matchit picks static segments over `{param}` over `{*catch_all}`.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// The admin API (HTTP+JSON and gRPC on one listener); on by default on `127.0.0.1:9901`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// The embedded Python interpreter (for `kind: python` plugins): sys.path, threads and queue.
    #[serde(default)]
    pub python: Option<super::python::RawPython>,
    /// The I/O backend of the HTTP listeners: `epoll` (tokio, the default) or `uring` (one io_uring runtime per core; falls back to epoll where io_uring is unavailable). The environment variable `COVET_IO` overrides it.
    #[serde(default)]
    pub io: super::IoBackend,
    /// Threads serving the HTTP listeners, each a runtime of its own with its own socket per address (SO_REUSEPORT: the kernel spreads new connections over them; a connection stays on its thread). Default: one per core the process may run on (it honours `taskset` and cgroup CPU sets).
    #[serde(default)]
    #[schemars(with = "Option<usize>")]
    pub workers: Option<NonZeroUsize>,
    /// Host processes serving the manifest (default 1). With more, a supervisor runs that many child hosts on the same listeners (SO_REUSEPORT), each with its own Python interpreter, behind one admin API and one `/metrics`; `auto`: one per core. Each child then runs one worker thread unless `workers:` says otherwise.
    #[serde(default)]
    pub processes: super::processes::Processes,
    /// The host services plugins use: the outbound HTTP client and the shared state backend (in-process by default, or Redis). Each plugin is granted what it may use in its `capabilities:`.
    #[serde(default)]
    pub services: super::services::RawServices,
    /// Named upstreams (load-balanced sets of endpoints with health checks, retries and a circuit breaker) that plugins such as `proxy` send requests to; a plugin is granted the ones it may use in `capabilities: { upstreams: [...] }`.
    #[serde(default)]
    pub upstreams: super::upstreams::UpstreamEntries,
    /// OpenTelemetry: tracing (sampling, batching) and the OTLP collector spans and metrics are exported to; absent: tracing off.
    #[serde(default)]
    pub telemetry: Option<super::telemetry::RawTelemetry>,
}

/// One address to listen on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Listen")]
pub struct RawListen {
    /// `IP:PORT`, e.g. `127.0.0.1:8080` or `[::1]:8080`; port 0 picks a free port.
    #[schemars(with = "String")]
    pub addr: Spanned<String>,
    /// Serve HTTPS (TLS 1.2/1.3, ALPN h2 and http/1.1) on this listener.
    #[serde(default)]
    #[schemars(with = "Option<super::tls::RawTls>")]
    pub tls: Option<Spanned<super::tls::RawTls>>,
    /// Also serve HTTP/3 (QUIC) on UDP, same port; needs `tls`.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub http3: Option<Spanned<bool>>,
}

/// Connection and request limits.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Limits")]
pub struct RawLimits {
    /// Largest request body: bytes, or a size such as `512KiB`, `1MiB`, `10MB` (default 1MiB).
    pub max_body: ByteSize,
    /// Largest total size of the request headers (default 16KiB).
    pub max_header_bytes: ByteSize,
    /// Most request headers (default 100).
    pub max_headers: NonZeroUsize,
    /// Time allowed to receive the request headers, e.g. `10s` (default 10s).
    pub header_read_timeout: HumanDuration,
    /// How long an idle keep-alive connection stays open (default 60s).
    pub idle_timeout: HumanDuration,
    /// Most open connections (default 10000).
    pub max_connections: NonZeroUsize,
    /// Connections the kernel queues on each listener socket (one per worker and address) before they are accepted (default 4096). Linux caps it at `net.core.somaxconn`; raise both for accept storms beyond workers × backlog.
    pub listen_backlog: std::num::NonZeroU32,
    /// How long a graceful shutdown waits for requests in flight (default 30s).
    pub shutdown_timeout: HumanDuration,
    /// Most concurrent HTTP/2 streams per connection (default 256).
    pub h2_max_concurrent_streams: NonZeroU32,
    /// How often HTTP/2 pings a peer, and how long it waits for the answer before closing the connection (default 20s).
    pub h2_keepalive_interval: HumanDuration,
    /// Longest wait for the next piece of a request body; past it the request is answered 408 and the connection closed (default 30s).
    pub body_read_timeout: HumanDuration,
    /// Slowest request body accepted, in bytes per second, after `body_read_timeout` of grace: a body trickled slower is answered 408 (default 500; 0: no minimum).
    pub body_min_rate: ByteSize,
    /// Longest a response may wait on the client to take more of it (a client that stops reading); past it the connection is closed, with GOAWAY on HTTP/2 (default 60s).
    pub send_timeout: HumanDuration,
    /// Most background runs in flight at once: a filter answering with `RespondAndContinue` (a cache's stale-while-revalidate) past it is answered as `Respond`, nothing in the background (default 64; 0: never in the background).
    pub background_max: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        let limits = Limits::default();
        RawLimits {
            max_body: ByteSize(limits.max_body),
            max_header_bytes: ByteSize(limits.max_header_bytes as u64),
            max_headers: nonzero(limits.max_headers),
            header_read_timeout: HumanDuration(limits.header_read_timeout),
            idle_timeout: HumanDuration(limits.idle_timeout),
            max_connections: nonzero(limits.max_connections),
            listen_backlog: std::num::NonZeroU32::new(limits.listen_backlog).unwrap_or(std::num::NonZeroU32::MIN),
            shutdown_timeout: HumanDuration(limits.shutdown_timeout),
            h2_max_concurrent_streams: NonZeroU32::new(limits.h2_max_concurrent_streams)
                .unwrap_or(NonZeroU32::MIN),
            h2_keepalive_interval: HumanDuration(limits.h2_keepalive_interval),
            body_read_timeout: HumanDuration(limits.body_read_timeout),
            body_min_rate: ByteSize(limits.body_min_rate),
            send_timeout: HumanDuration(limits.send_timeout),
            background_max: limits.background_max,
        }
    }
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// Logging settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Log")]
pub struct RawLog {
    /// `pretty` (default) or `json`.
    pub format: LogFormat,
    /// Write one access-log line per request (default true).
    pub access: bool,
    /// A `tracing` filter directive, e.g. `info` or `covet=debug,warn` (default `info`).
    #[schemars(with = "String")]
    pub level: Spanned<String>,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: LogFormat::Pretty,
            access: true,
            level: Spanned::new("info".to_owned(), Location::UNKNOWN, Location::UNKNOWN),
        }
    }
}

/// The admin API.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Admin")]
pub struct RawAdmin {
    /// `IP:PORT` of the admin listener (default `127.0.0.1:9901`), or `off` to disable the admin API. `COVET_ADMIN_LISTEN` overrides it. A non-loopback address needs a token.
    #[schemars(with = "String")]
    pub listen: Spanned<String>,
    /// A file holding the bearer token every admin request must carry, relative to the manifest's directory. `COVET_ADMIN_TOKEN` takes precedence.
    #[schemars(with = "Option<String>")]
    pub token_file: Option<Spanned<String>>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: Spanned::new(
                DEFAULT_ADMIN_LISTEN.to_owned(),
                Location::UNKNOWN,
                Location::UNKNOWN,
            ),
            token_file: None,
        }
    }
}

/// Where the admin API listens when the manifest does not say.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// One plugin.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Plugin")]
pub struct RawPlugin {
    /// The runtime: `native` (a Rust cdylib built against covet-plugin-api), `wasm` (a WebAssembly component: the covet:plugin world, or a wasi:http/incoming-handler as a handler) or `python` (a covet.Covet app, an ASGI app or a filter module).
    #[schemars(with = "super::schema::KindSchema")]
    pub kind: Spanned<String>,
    /// The artifact (e.g. `artifacts/libcovet_auth_jwt.so`), relative to the manifest's directory (not used by `kind: python`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// `kind: python` only: a covet.Covet decorator app, `FILE.py:ATTR`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub app: Option<Spanned<String>>,
    /// `kind: python` only: any ASGI 3 app, `FILE.py:ATTR` or `pkg.module:attr` found through sys.path.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub asgi: Option<Spanned<String>>,
    /// `kind: python` only: a filter module `FILE.py` with `on_request` and/or `on_response`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub filter: Option<Spanned<String>>,
    /// `kind: python` with `asgi:` only: `buffered` (default: the body is read whole before the pipeline runs) or `stream` (the app's `receive()` gets it chunk by chunk as it arrives; filters in front see an empty body).
    #[serde(default)]
    #[schemars(with = "Option<super::python::RequestBodyMode>")]
    pub request_body: Option<Spanned<super::python::RequestBodyMode>>,
    /// Settings handed to the plugin's `init`; any YAML.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `kind: wasm`: memory, time and fuel limits of one phase call (defaults: 64MiB, 1s, unmetered); `kind: python`: `timeout` only (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<super::wasm::RawWasmLimits>")]
    pub limits: Option<Spanned<super::wasm::RawWasmLimits>>,
    /// What the plugin may use; nothing by default. Every kind: `outbound_http` (hosts), `state` (shared state namespaces) and `upstreams` (names under `upstreams:`); `kind: wasm` only: `env`, `dirs`, `stdio`.
    #[serde(default)]
    #[schemars(with = "Option<super::wasm::RawCapabilities>")]
    pub capabilities: Option<Spanned<super::wasm::RawCapabilities>>,
    /// `kind: wasm` only: `fresh` (default: a new instance per phase call, nothing survives between requests; `init` runs once at load and instances start from a snapshot of its memory), `fresh-init` (the same, but every instance runs `init` itself) or `reused`.
    #[serde(default)]
    #[schemars(with = "Option<super::wasm::InstanceMode>")]
    pub instances: Option<Spanned<super::wasm::InstanceMode>>,
    /// `kind: wasm` only: periodic background work, `{ every: 30s }`: the host calls the component's `covet:plugin/background@0.2.0` `tick` export at that interval, under the plugin's limits and grants.
    #[serde(default)]
    #[schemars(with = "Option<super::wasm::RawBackground>")]
    pub background: Option<Spanned<super::wasm::RawBackground>>,
}

/// One route.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Route")]
pub struct RawRoute {
    /// A matchit pattern: `/users/{id}` matches one segment, `/files/{*rest}` the rest of the path.
    #[schemars(with = "String", regex(pattern = "^/"))]
    pub path: Spanned<String>,
    /// The methods this route answers (upper-case); absent means every method.
    #[serde(default)]
    #[schemars(with = "Option<Vec<super::schema::MethodSchema>>")]
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Plugins that run before the handler, in this order (and after it, in reverse).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub filters: Vec<Spanned<String>>,
    /// The plugin that answers the request.
    #[schemars(with = "String")]
    pub handler: Spanned<String>,
    /// Share of new traces recorded on this route, 0.0 to 1.0; replaces `telemetry.tracing.sample_ratio` here (needs `telemetry.tracing`).
    #[serde(default)]
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 1.0))]
    pub trace_sample_ratio: Option<Spanned<f64>>,
}

/// The `plugins:` mapping in manifest order, each name with its location.
#[derive(Debug, Default)]
pub struct PluginEntries(pub Vec<(Spanned<String>, RawPlugin)>);

impl<'de> Deserialize<'de> for PluginEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = PluginEntries;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping from plugin names to plugins")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(PluginEntries(entries))
    }
}
