//! The manifest's `upstreams:` block as written: named sets of endpoints
//! that plugins (the `proxy` above all) send requests to through the host
//! (see `covet_services::upstream`). [`super::upstream_check`] turns these
//! into `UpstreamConfig`s.
//!
//! ```yaml
//! upstreams:
//!   users:
//!     endpoints: ["127.0.0.1:9001", { addr: "users.internal:8080", weight: 3 }]
//!     protocol: http1            # http1 | http2 | auto
//!     balance: { policy: ring_hash, key: "header:x-user", bounded_load: 1.25 }
//!     health:
//!       active: { path: /healthz, interval: 5s, timeout: 1s, healthy: 2, unhealthy: 3, statuses: ["200-399"] }
//!       passive: { consecutive_5xx: 5, base_ejection: 10s, max_ejection: 300s, max_ejection_percent: 50 }
//!       panic_threshold: 50%
//!     retries: { attempts: 2, on: [connect_failure, reset, 502, 503, 504], budget: 20%, replay_buffer: 64KiB }
//!     circuit: { max_requests: 1024, max_pending: 1024, retry_after: 1s }
//! ```
//!
//! A plugin may use an upstream only when granted `capabilities: { upstreams: [users] }`.
//! The short forms (an endpoint as a string, `balance` as a policy name, a
//! status as a number) are custom deserialisers that hand a mapping to the
//! strict derived types, so unknown keys are still refused with their location.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::value::MapAccessDeserializer;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::units::{ByteSize, HELP_MARK, HumanDuration};

/// The `upstreams:` mapping in manifest order, each name with its location.
#[derive(Debug, Default)]
pub struct UpstreamEntries(pub Vec<(Spanned<String>, RawUpstream)>);

/// One upstream.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Upstream")]
pub struct RawUpstream {
    /// The endpoints: `"host:port"` (an IP address or a DNS name, re-resolved every `dns_refresh`), or `{ addr: "host:port", weight: 3 }` (weight 1 to 1000, default 1). At least one.
    #[schemars(with = "Vec<RawEndpoint>", length(min = 1))]
    pub endpoints: Spanned<Vec<Spanned<RawEndpoint>>>,
    /// `http1` (default), `http2` (h2c on plain TCP, ALPN h2 over TLS) or `auto` (ALPN over TLS, HTTP/1.1 on plain TCP).
    #[serde(default)]
    pub protocol: RawProtocol,
    /// TLS to the endpoints (verification on unless `insecure_skip_verify`); absent: plain TCP.
    #[serde(default)]
    pub tls: Option<RawUpstreamTls>,
    /// `round_robin` (default, smooth weighted), `least_request` (power of two choices), or `{ policy: ring_hash | maglev, key: "header:NAME" | "cookie:NAME" | client_ip | path, bounded_load: 1.25 }`.
    #[serde(default)]
    #[schemars(with = "Option<RawBalance>")]
    pub balance: Option<Spanned<RawBalance>>,
    /// Sticky sessions: the endpoint chosen first is remembered in a cookie.
    #[serde(default)]
    pub sticky: Option<RawSticky>,
    /// Active checks, passive outlier detection and the panic threshold.
    #[serde(default)]
    pub health: RawHealth,
    /// When a failed attempt is tried again on another endpoint.
    #[serde(default)]
    pub retries: RawRetries,
    /// Overall deadline of a request, all attempts included, until the response head (default 30s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// TCP connect deadline (default 2s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub connect_timeout: Option<Spanned<HumanDuration>>,
    /// Longest wait for the next chunk of a response body (default 60s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub body_idle_timeout: Option<Spanned<HumanDuration>>,
    /// The circuit breaker: most requests in flight and waiting; past it, 503 with `retry-after`.
    #[serde(default)]
    pub circuit: RawCircuit,
    /// How often DNS names in `endpoints` are resolved again (default 5s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub dns_refresh: Option<Spanned<HumanDuration>>,
    /// How long an idle pooled connection to an endpoint is kept (default 90s).
    #[serde(default)]
    pub pool_idle_timeout: Option<HumanDuration>,
    /// Most idle connections kept per endpoint (default 64).
    #[serde(default)]
    pub pool_max_idle_per_endpoint: Option<usize>,
}

/// The HTTP version spoken to the endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "UpstreamProtocol")]
pub enum RawProtocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http1,
    /// HTTP/2: prior knowledge (h2c) on plain TCP, ALPN `h2` over TLS.
    Http2,
    /// Over TLS what ALPN picks; HTTP/1.1 on plain TCP.
    Auto,
}

/// TLS to an upstream's endpoints. Files are PEM, relative to the manifest's directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpstreamTls")]
pub struct RawUpstreamTls {
    /// The name sent as SNI and verified in the certificate (default: the endpoint's configured host).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sni: Option<Spanned<String>>,
    /// Extra CA certificates to trust, besides the system's and Mozilla's roots.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ca: Option<Spanned<String>>,
    /// A client certificate chain (mTLS); needs `client_key`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub client_cert: Option<Spanned<String>>,
    /// The client certificate's private key; needs `client_cert`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub client_key: Option<Spanned<String>>,
    /// Skip certificate verification (tests against self-signed servers only; logged).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Sticky sessions by cookie.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpstreamSticky")]
pub struct RawSticky {
    /// The cookie's name.
    #[schemars(with = "String")]
    pub cookie: Spanned<String>,
    /// The cookie's lifetime (`Max-Age`), e.g. `1h`; absent: a session cookie.
    #[serde(default)]
    pub ttl: Option<HumanDuration>,
}

/// Health of an upstream's endpoints.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "UpstreamHealth")]
pub struct RawHealth {
    /// Active HTTP checks (`GET path` to every endpoint every `interval`); absent: none.
    pub active: Option<RawActive>,
    /// Passive outlier detection on real traffic (on by default with these defaults).
    pub passive: Option<RawPassive>,
    /// Below this share of healthy endpoints, all endpoints are used (default 50%).
    #[schemars(with = "Option<Percent>")]
    pub panic_threshold: Option<Spanned<Percent>>,
}

/// Active health checks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpstreamActiveHealth")]
pub struct RawActive {
    /// The path requested, e.g. `/healthz`.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// Time between two checks of one endpoint (default 5s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub interval: Option<Spanned<HumanDuration>>,
    /// Deadline of one check (default 1s).
    #[serde(default)]
    #[schemars(with = "Option<HumanDuration>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Consecutive passes that make an endpoint healthy (default 2, at least 1).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub healthy: Option<Spanned<u32>>,
    /// Consecutive failures that make an endpoint unhealthy (default 3, at least 1).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub unhealthy: Option<Spanned<u32>>,
    /// Statuses that pass: numbers or ranges such as `"200-399"` (the default).
    #[serde(default)]
    #[schemars(with = "Vec<StatusEntry>")]
    pub statuses: Vec<Spanned<StatusEntry>>,
    /// The `host` header of a check (default: the endpoint's configured `host:port`).
    #[serde(default)]
    pub host: Option<String>,
}

/// Passive outlier detection. A threshold of 0 turns that trigger off.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "UpstreamPassiveHealth")]
pub struct RawPassive {
    /// Consecutive 5xx responses that eject an endpoint (default 5).
    pub consecutive_5xx: Option<u32>,
    /// Consecutive gateway errors (502, 503, 504, reset, timeout) that eject (default 3).
    pub consecutive_gateway_errors: Option<u32>,
    /// Consecutive connect failures that eject (default 3).
    pub consecutive_connect_failures: Option<u32>,
    /// First ejection time; the n-th ejection in a row lasts n times this (default 10s).
    #[schemars(with = "Option<HumanDuration>")]
    pub base_ejection: Option<Spanned<HumanDuration>>,
    /// Longest ejection (default 300s).
    #[schemars(with = "Option<HumanDuration>")]
    pub max_ejection: Option<Spanned<HumanDuration>>,
    /// Most endpoints ejected at once, percent of all (default 50).
    #[schemars(with = "Option<Percent>")]
    pub max_ejection_percent: Option<Spanned<Percent>>,
}

/// Retries.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "UpstreamRetries")]
pub struct RawRetries {
    /// Most retries per request (default 2; 0: none).
    pub attempts: Option<u32>,
    /// What is retried: `connect_failure`, `reset` and statuses (default `[connect_failure, reset, 502, 503, 504]`).
    #[schemars(with = "Option<Vec<StatusEntry>>")]
    pub on: Option<Vec<Spanned<StatusEntry>>>,
    /// Retry non-idempotent methods (POST, PATCH) too (default false).
    pub non_idempotent: bool,
    /// Deadline of each attempt until its response head (default: only the overall `timeout`).
    #[schemars(with = "Option<HumanDuration>")]
    pub per_try_timeout: Option<Spanned<HumanDuration>>,
    /// Retries may add at most this share of requests over 10 s (default 20%).
    #[schemars(with = "Option<Percent>")]
    pub budget: Option<Spanned<Percent>>,
    /// Retries always allowed per second, whatever the budget (default 3).
    pub min_per_sec: Option<u32>,
    /// A request body is kept for replay up to this size; a request whose body passed it is not retried (default 64KiB).
    pub replay_buffer: Option<ByteSize>,
    /// Wait before the first retry, doubled each time, jittered (default 25ms).
    pub backoff: Option<HumanDuration>,
}

/// The circuit breaker.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "UpstreamCircuit")]
pub struct RawCircuit {
    /// Most requests in flight at once (default 1024, at least 1).
    #[schemars(with = "Option<usize>")]
    pub max_requests: Option<Spanned<usize>>,
    /// Most requests waiting for a slot; past it, 503 at once (default 1024).
    pub max_pending: Option<usize>,
    /// The `retry-after` advertised when overloaded (default 1s).
    pub retry_after: Option<HumanDuration>,
}

/// One endpoint: `"host:port"`, or a mapping with a weight.
#[derive(Debug)]
pub enum RawEndpoint {
    /// `"host:port"`, weight 1.
    Short(String),
    /// `{ addr, weight }`.
    Full(RawEndpointMap),
}

/// An endpoint with its settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpstreamEndpoint")]
pub struct RawEndpointMap {
    /// `host:port`: an IP address (`[::1]:8080` for IPv6) or a DNS name.
    #[schemars(with = "String")]
    pub addr: Spanned<String>,
    /// Relative weight, 1 to 1000 (default 1).
    #[serde(default)]
    #[schemars(with = "Option<u32>", range(min = 1, max = 1000))]
    pub weight: Option<Spanned<u32>>,
}

/// `balance:` as written: a policy name, or a mapping.
#[derive(Debug)]
pub enum RawBalance {
    /// `round_robin`, `least_request` (a hashing policy needs the mapping form).
    Name(String),
    /// `{ policy, key, bounded_load }` (boxed: it is much larger than a name).
    Full(Box<RawBalanceMap>),
}

/// A balancing policy with its settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "UpstreamBalance")]
pub struct RawBalanceMap {
    /// `round_robin`, `least_request`, `ring_hash` or `maglev`.
    #[schemars(with = "String")]
    pub policy: Spanned<String>,
    /// What consistent hashing hashes: `header:NAME`, `cookie:NAME`, `client_ip` or `path`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub key: Option<Spanned<String>>,
    /// An endpoint takes at most this multiple of the mean load (greater than 1, e.g. 1.25); absent: unbounded.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub bounded_load: Option<Spanned<f64>>,
}

/// A status (`503`), a range (`"200-399"`) or a word (`connect_failure`).
#[derive(Debug, Clone, PartialEq)]
pub enum StatusEntry {
    /// A number.
    Number(u64),
    /// Text: a range, a number as text, or a word.
    Text(String),
}

/// A percentage from 0 to 100: `50`, `50%` or `12.5%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

/// One `upstreams:` entry key and value, in the visitor.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = UpstreamEntries;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping from upstream names to upstreams")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(UpstreamEntries(entries))
    }
}

impl<'de> Deserialize<'de> for UpstreamEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A visitor for "a string, or a mapping read as `M`".
struct ShortOrMap<T, M> {
    what: &'static str,
    short: fn(String) -> T,
    full: fn(M) -> T,
}

impl<'de, T, M: Deserialize<'de>> Visitor<'de> for ShortOrMap<T, M> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        Ok((self.short)(text.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        M::deserialize(MapAccessDeserializer::new(map)).map(self.full)
    }
}

impl<'de> Deserialize<'de> for RawEndpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let what = "an endpoint: \"host:port\" or { addr: \"host:port\", weight: N }";
        deserializer.deserialize_any(ShortOrMap { what, short: RawEndpoint::Short, full: RawEndpoint::Full })
    }
}

impl<'de> Deserialize<'de> for RawBalance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let what = "a balancing policy: round_robin, least_request, or { policy, key, bounded_load }";
        deserializer.deserialize_any(ShortOrMap { what, short: RawBalance::Name, full: |map| RawBalance::Full(Box::new(map)) })
    }
}

struct StatusVisitor;

impl Visitor<'_> for StatusVisitor {
    type Value = StatusEntry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a status such as 503, or a range such as \"200-399\"")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<StatusEntry, E> {
        Ok(StatusEntry::Number(n))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<StatusEntry, E> {
        Ok(StatusEntry::Text(text.to_owned()))
    }
}

impl<'de> Deserialize<'de> for StatusEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StatusVisitor)
    }
}

const PERCENT_HELP: &str = "write a number from 0 to 100, optionally with `%`, e.g. 50%";

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = Percent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a percentage such as 50%")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Percent, E> {
        Ok(Percent(n as f64))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Percent, E> {
        Ok(Percent(n as f64))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Percent, E> {
        Ok(Percent(n))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Percent, E> {
        let number = text.trim().strip_suffix('%').unwrap_or(text).trim();
        match number.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Percent(n)),
            _ => Err(E::custom(format!("invalid percentage \"{text}\"{HELP_MARK}{PERCENT_HELP}"))),
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PercentVisitor)
    }
}

impl JsonSchema for UpstreamEntries {
    fn schema_name() -> Cow<'static, str> {
        "Upstreams".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let upstream = generator.subschema_for::<RawUpstream>();
        json_schema!({
            "type": "object",
            "propertyNames": { "pattern": "^[a-z0-9][a-z0-9_-]*$" },
            "additionalProperties": upstream
        })
    }
}

impl JsonSchema for RawEndpoint {
    fn schema_name() -> Cow<'static, str> {
        "UpstreamEndpointEntry".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<RawEndpointMap>();
        json_schema!({
            "description": "`host:port`, or `{ addr, weight }`",
            "anyOf": [{ "type": "string" }, full]
        })
    }
}

impl JsonSchema for RawBalance {
    fn schema_name() -> Cow<'static, str> {
        "UpstreamBalanceEntry".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let full = generator.subschema_for::<RawBalanceMap>();
        json_schema!({
            "anyOf": [{ "enum": ["round_robin", "least_request"] }, full]
        })
    }
}

impl JsonSchema for StatusEntry {
    fn schema_name() -> Cow<'static, str> {
        "StatusEntry".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a status (503), a range (\"200-399\"), or for `retries.on` also `connect_failure` or `reset`",
            "anyOf": [{ "type": "integer", "minimum": 100, "maximum": 599 }, { "type": "string" }]
        })
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "0 to 100, e.g. 50 or \"50%\"",
            "anyOf": [
                { "type": "number", "minimum": 0, "maximum": 100 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?%$" }
            ]
        })
    }
}
