//! The host services' settings (`services:`) and every plugin's grants to
//! them (`capabilities: { outbound_http, state, upstreams }`, for all plugin
//! kinds; the `upstreams:` block itself is in [`super::upstreams`]).
//!
//! ```yaml
//! services:
//!   http: { connect_timeout: 2s, request_timeout: 10s, ca: certs/internal-ca.pem,
//!           client_cert: { cert: certs/me.pem, key: certs/me.key } }
//!   state: { backend: redis, url: "redis://127.0.0.1:6379", timeout: 50ms, prefix: "covet:" }
//! plugins:
//!   auth:
//!     kind: native
//!     path: artifacts/libcovet_auth_jwt.so
//!     capabilities:
//!       outbound_http: [login.example.com, "*.internal:8443"]
//!       state: [jwks]
//! ```
//!
//! Everything has a default (in-process state, no extra CA); every grant is
//! denied by default. See docs/host-services.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::units::HumanDuration;
use super::validate::Problems;
use super::wasm::RawCapabilities;
use super::{Loc, PluginKind};
use super::source_index::join;

/// The host services' settings, checked.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ServicesSettings {
    /// The outbound HTTP client.
    pub http: HttpServices,
    /// The shared state backend.
    pub state: StateServices,
}

/// The outbound HTTP client's settings (`services.http`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpServices {
    /// Longest TCP connect.
    pub connect_timeout: Duration,
    /// Longest wait for a response head.
    pub request_timeout: Duration,
    /// Longest wait for the next response body chunk.
    pub body_idle_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per origin.
    pub pool_max_idle_per_host: usize,
    /// An extra CA bundle (PEM), absolute.
    pub ca: Option<PathBuf>,
    /// A client certificate and key (PEM), absolute.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for HttpServices {
    fn default() -> Self {
        let d = covet_services::http::HttpConfig::default();
        HttpServices {
            connect_timeout: d.connect_timeout,
            request_timeout: d.request_timeout,
            body_idle_timeout: d.body_idle_timeout,
            pool_idle_timeout: d.pool_idle_timeout,
            pool_max_idle_per_host: d.pool_max_idle_per_host,
            ca: None,
            client_cert: None,
        }
    }
}

/// Which shared state backend (`services.state.backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// In this process (the default): nothing to run, not shared between hosts.
    #[default]
    Memory,
    /// A Redis server shared by a fleet of hosts.
    Redis,
}

/// The shared state's settings (`services.state`).
#[derive(Clone, Debug, PartialEq)]
pub struct StateServices {
    /// The backend.
    pub backend: StateBackend,
    /// The Redis URL (`backend: redis`).
    pub url: String,
    /// Longest wait for one Redis operation.
    pub timeout: Duration,
    /// Prepended to every Redis key.
    pub prefix: String,
}

impl Default for StateServices {
    fn default() -> Self {
        let d = covet_services::state::RedisConfig::default();
        StateServices { backend: StateBackend::Memory, url: d.url, timeout: d.timeout, prefix: d.prefix }
    }
}

/// What one plugin may use of the host services; nothing by default.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ServiceGrants {
    /// Hosts it may send HTTP requests to (`host`, `host:port`, `*.domain`), lower-case.
    pub outbound_http: Vec<String>,
    /// Shared state namespaces it may use.
    pub state: Vec<String>,
    /// Upstreams (`upstreams:` names) it may send requests to.
    pub upstreams: Vec<String>,
}

/// The host services: outbound HTTP and shared state.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "Services")]
pub struct RawServices {
    /// The outbound HTTP client plugins use (granted per plugin by `capabilities.outbound_http`).
    pub http: RawHttp,
    /// The shared state plugins use (granted per plugin by `capabilities.state`).
    pub state: RawState,
}

/// The outbound HTTP client.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "HttpServices")]
pub struct RawHttp {
    /// Longest TCP connect, e.g. `2s` (default 5s).
    pub connect_timeout: Option<HumanDuration>,
    /// Longest wait from sending a request to its response head (default 30s); a plugin may ask for less per request.
    pub request_timeout: Option<HumanDuration>,
    /// Longest wait for the next chunk of a response body (default 30s).
    pub body_idle_timeout: Option<HumanDuration>,
    /// How long an idle pooled connection is kept (default 90s).
    pub pool_idle_timeout: Option<HumanDuration>,
    /// Most idle connections kept per origin (default 32).
    pub pool_max_idle_per_host: Option<usize>,
    /// A PEM file of extra CA certificates to trust, besides the system's and Mozilla's roots; relative to the manifest's directory.
    #[schemars(with = "Option<String>")]
    pub ca: Option<Spanned<String>>,
    /// A client certificate presented to servers that ask for one (mTLS).
    pub client_cert: Option<RawClientCert>,
}

/// A client certificate and its key, PEM files relative to the manifest's directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ClientCert")]
pub struct RawClientCert {
    /// The certificate chain (PEM), leaf first.
    #[schemars(with = "String")]
    pub cert: Spanned<String>,
    /// The private key (PEM).
    #[schemars(with = "String")]
    pub key: Spanned<String>,
}

/// The shared state backend.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "StateServices")]
pub struct RawState {
    /// `memory` (default: in this process) or `redis` (shared by every host using the same server and prefix).
    pub backend: StateBackend,
    /// `backend: redis`: `redis://host:port/db`, `rediss://…` (TLS) or `redis+unix:///path.sock` (default `redis://127.0.0.1:6379`).
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// `backend: redis`: longest wait for one operation, e.g. `50ms` (the default); past it the call fails with a timeout.
    pub timeout: Option<HumanDuration>,
    /// `backend: redis`: prepended to every key (default `covet:`); keys are `{prefix}{namespace}:{key}`.
    pub prefix: Option<String>,
}

/// Checks `services:`.
pub fn settings(base: &Path, raw: RawServices, problems: &mut Problems) -> ServicesSettings {
    ServicesSettings { http: http(base, raw.http, problems), state: state(raw.state, problems) }
}

fn http(base: &Path, raw: RawHttp, problems: &mut Problems) -> HttpServices {
    let d = HttpServices::default();
    let key = "services.http";
    HttpServices {
        connect_timeout: raw.connect_timeout.map_or(d.connect_timeout, |t| t.0),
        request_timeout: raw.request_timeout.map_or(d.request_timeout, |t| t.0),
        body_idle_timeout: raw.body_idle_timeout.map_or(d.body_idle_timeout, |t| t.0),
        pool_idle_timeout: raw.pool_idle_timeout.map_or(d.pool_idle_timeout, |t| t.0),
        pool_max_idle_per_host: raw.pool_max_idle_per_host.unwrap_or(d.pool_max_idle_per_host),
        ca: raw.ca.and_then(|ca| pem_file(base, &ca, &join(key, "ca"), problems)),
        client_cert: raw.client_cert.and_then(|cc| {
            let cert = pem_file(base, &cc.cert, &join(key, "client_cert.cert"), problems);
            let key = pem_file(base, &cc.key, &join(key, "client_cert.key"), problems);
            Some((cert?, key?))
        }),
    }
}

fn pem_file(base: &Path, path: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<PathBuf> {
    let joined = base.join(&path.value);
    match joined.canonicalize() {
        Ok(file) if file.is_file() => Some(file),
        _ => {
            let help = format!("paths are relative to the manifest's directory: looked for {}", joined.display());
            problems.report(Loc::of(path), key, format!("file \"{}\" not found", path.value), Some(help));
            None
        }
    }
}

fn state(raw: RawState, problems: &mut Problems) -> StateServices {
    let d = StateServices::default();
    let url = match raw.url {
        Some(url) if !url.value.starts_with("redis://") && !url.value.starts_with("rediss://") && !url.value.starts_with("redis+unix://") => {
            let help = "write redis://host:port[/db], rediss://host:port (TLS) or redis+unix:///path/to/redis.sock";
            problems.report(Loc::of(&url), "services.state.url", format!("invalid Redis URL \"{}\"", url.value), Some(help.to_owned()));
            url.value
        }
        Some(url) => url.value,
        None => d.url,
    };
    StateServices {
        backend: raw.backend,
        url,
        timeout: raw.timeout.map_or(d.timeout, |t| t.0),
        prefix: raw.prefix.unwrap_or(d.prefix),
    }
}

/// Checks plugin `key`'s grants to the host services. `outbound_http` and
/// `state` apply to every kind; the other capability keys (`env`, `dirs`,
/// `stdio`) to `kind: wasm` only, and are refused on the others here.
pub fn grants(raw: Option<&Spanned<RawCapabilities>>, kind: PluginKind, upstreams: &[String], key: &str, problems: &mut Problems) -> ServiceGrants {
    let Some(raw) = raw else { return ServiceGrants::default() };
    let key = join(key, "capabilities");
    if kind != PluginKind::Wasm {
        refuse_sandbox_keys(raw, kind, &key, problems);
    }
    let caps = &raw.value;
    let hosts = caps.outbound_http.iter().enumerate();
    let outbound_http = hosts.filter_map(|(i, h)| outbound_host(h, &format!("{key}.outbound_http[{i}]"), problems)).collect();
    let spaces = caps.state.iter().enumerate();
    let state = spaces.filter_map(|(i, ns)| namespace(ns, &format!("{key}.state[{i}]"), problems)).collect();
    let named = caps.upstreams.iter().enumerate();
    let upstreams = named.filter_map(|(i, u)| super::upstream_check::grant(u, upstreams, &format!("{key}.upstreams[{i}]"), problems)).collect();
    ServiceGrants { outbound_http, state, upstreams }
}

fn refuse_sandbox_keys(raw: &Spanned<RawCapabilities>, kind: PluginKind, key: &str, problems: &mut Problems) {
    let caps = &raw.value;
    let spots = [
        ("env", caps.env.first().map(Loc::of), !caps.env.is_empty()),
        ("dirs", caps.dirs.first().map(|d| Loc::of(&d.host)), !caps.dirs.is_empty()),
        ("stdio", None, caps.stdio),
    ];
    for (name, loc, used) in spots {
        if !used {
            continue;
        }
        let message = format!("`capabilities.{name}` applies to `kind: wasm` plugins only");
        let help = format!(
            "a {} plugin runs in the host's process without a sandbox; it may be granted only `outbound_http`, `state` and `upstreams`",
            kind.name()
        );
        problems.report(loc.unwrap_or_else(|| Loc::of(raw)), join(key, name), message, Some(help));
    }
}

/// One `outbound_http` entry: `host`, `host:port` or `*.domain[:port]`, lower-cased.
pub fn outbound_host(host: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<String> {
    let text = host.value.trim().to_ascii_lowercase();
    if covet_services::http::is_valid_entry(&text) {
        return Some(text);
    }
    let help = "write a host name or address, optionally with a port: api.example.com, 10.0.0.7:8080, *.example.com (no scheme, no path)";
    problems.report(Loc::of(host), key, format!("invalid outbound host \"{}\"", host.value), Some(help.to_owned()));
    None
}

fn namespace(ns: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<String> {
    if covet_services::state::is_valid_namespace(&ns.value) {
        return Some(ns.value.clone());
    }
    let help = "write a name of 1 to 64 letters, digits, `_`, `-` or `.`, e.g. rate_limits";
    problems.report(Loc::of(ns), key, format!("invalid state namespace \"{}\"", ns.value), Some(help.to_owned()));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spanned<T>(value: T) -> Spanned<T> {
        Spanned::new(value, serde_saphyr::Location::UNKNOWN, serde_saphyr::Location::UNKNOWN)
    }

    #[test]
    fn outbound_hosts_are_authorities_or_wildcards() {
        let mut problems = Problems::default();
        assert_eq!(outbound_host(&spanned("API.example.com".into()), "k", &mut problems).as_deref(), Some("api.example.com"));
        assert_eq!(outbound_host(&spanned("127.0.0.1:8080".into()), "k", &mut problems).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(outbound_host(&spanned("*.example.com".into()), "k", &mut problems).as_deref(), Some("*.example.com"));
        assert_eq!(outbound_host(&spanned("http://x".into()), "k", &mut problems), None);
        assert_eq!(outbound_host(&spanned("x/y".into()), "k", &mut problems), None);
        assert_eq!(outbound_host(&spanned("u@x".into()), "k", &mut problems), None);
    }

    #[test]
    fn defaults_are_in_process_and_grant_nothing() {
        let mut problems = Problems::default();
        let settings = settings(Path::new("."), RawServices::default(), &mut problems);
        assert_eq!(settings.state.backend, StateBackend::Memory);
        assert_eq!(settings.state.timeout, Duration::from_millis(50));
        assert_eq!(grants(None, PluginKind::Native, &[], "plugins.p", &mut problems), ServiceGrants::default());
    }
}
