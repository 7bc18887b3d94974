//! The plugin's `config:` block (see `docs/cache.md`): the keys, their
//! defaults, and the checks that turn it into [`Checked`] settings.

use std::time::Duration;

use serde::Deserialize;

use crate::CacheError;

/// The `config:` block as written in the manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The L1 bound in bytes (a number, or `"256MiB"`, `"64KiB"`, `"1GiB"`).
    pub max_memory: ByteSize,
    /// Responses larger than this stream through uncached.
    pub max_object_size: ByteSize,
    /// The shared-state namespace (purge log, L2 entries).
    pub namespace: String,
    /// Whether the shared L2 tier is on.
    pub shared: bool,
    /// An L2 read slower than this is a miss.
    pub shared_timeout: Dur,
    /// How often the purge log's sequence number is read (at least 10ms).
    pub purge_poll: Dur,
    /// Whether concurrent misses for one key make one origin request.
    pub coalesce: bool,
    /// How long a coalesced waiter waits for the leader.
    pub lock_timeout: Dur,
    /// RFC 9111 §4.2.2 heuristic freshness when the response gives no expiry.
    pub heuristic: bool,
    /// A freshness lifetime replacing the response's own (max-age, Expires).
    pub ttl: Option<Dur>,
    /// The stale-while-revalidate window when the response names none.
    pub stale_while_revalidate: Dur,
    /// The stale-if-error window when the response names none.
    pub stale_if_error: Dur,
    /// What the primary key is made of.
    pub key: KeySettings,
    /// Per-path / per-request overrides; the first that matches wins.
    pub rules: Vec<Rule>,
    /// Whether `Cache-Status` is sent.
    pub status_header: bool,
    /// The cache's name in `Cache-Status`.
    pub cache_name: String,
    /// Whether `Cache-Status` carries `key="<primary key>"`.
    pub expose_key: bool,
    /// Response headers whose values are the response's tags.
    pub tag_headers: Vec<String>,
    /// Whether the tag headers are removed from the client's response.
    pub strip_tag_headers: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_memory: ByteSize(256 << 20),
            max_object_size: ByteSize(8 << 20),
            namespace: "cache".into(),
            shared: false,
            shared_timeout: Dur(Duration::from_millis(50)),
            purge_poll: Dur(Duration::from_millis(200)),
            coalesce: true,
            lock_timeout: Dur(Duration::from_secs(5)),
            heuristic: true,
            ttl: None,
            stale_while_revalidate: Dur(Duration::ZERO),
            stale_if_error: Dur(Duration::ZERO),
            key: KeySettings::default(),
            rules: Vec::new(),
            status_header: true,
            cache_name: "covet".into(),
            expose_key: false,
            tag_headers: vec!["surrogate-key".into(), "cache-tag".into()],
            strip_tag_headers: true,
        }
    }
}

/// `key:`: what joins the primary key besides the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// The host (lower case, no port) starts the key.
    pub host: bool,
    /// Which query parameters are kept.
    pub query: QueryMode,
    /// Request headers whose values join the key.
    pub headers: Vec<String>,
}

impl Default for KeySettings {
    fn default() -> KeySettings {
        KeySettings { host: true, query: QueryMode::All, headers: Vec::new() }
    }
}

/// `key.query`: `all`, `none`, or the names of the parameters kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryMode {
    /// Every parameter, sorted by name.
    All,
    /// No query at all.
    None,
    /// Only these parameters (sorted by name).
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for QueryMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<QueryMode, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(QueryMode::All),
            Raw::Word(w) if w == "none" => Ok(QueryMode::None),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("key.query: `{w}` is not all, none or a list of parameter names"))),
            Raw::List(names) => Ok(QueryMode::Only(names)),
        }
    }
}

/// One entry of `rules:`: its conditions (all that are given must hold) and
/// what it does (`bypass`, or a `ttl`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The request path starts with this.
    pub path_prefix: Option<String>,
    /// The request carries this header.
    pub header: Option<String>,
    /// The request carries this cookie.
    pub cookie: Option<String>,
    /// The freshness lifetime for responses of matching requests.
    pub ttl: Option<Dur>,
    /// Matching requests skip the cache.
    #[serde(default)]
    pub bypass: bool,
}

/// A duration: humantime text (`"200ms"`, `"1h"`) or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Dur(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(&t).map(Dur).map_err(|e| {
                serde::de::Error::custom(format!("invalid duration \"{t}\" ({e}): write it like \"200ms\" or \"1h\""))
            }),
        }
    }
}

/// A size in bytes: a number, or text with a unit (`"64KiB"`, `"256MiB"`, `"1GiB"`, `"10MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Reads `"256MiB"`-style text.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("invalid size \"{text}\": write it like 1048576, \"64KiB\" or \"256MiB\""))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("invalid size \"{text}\": unknown unit `{other}` (B, KiB, MiB, GiB, KB, MB, GB)")),
        };
        n.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("invalid size \"{text}\": too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Settings checked for serving: names lower-cased, durations as such.
#[derive(Debug, Clone)]
pub struct Checked {
    /// See [`Settings::max_memory`].
    pub max_memory: u64,
    /// See [`Settings::max_object_size`].
    pub max_object_size: u64,
    /// See [`Settings::namespace`].
    pub namespace: String,
    /// See [`Settings::shared`].
    pub shared: bool,
    /// See [`Settings::shared_timeout`].
    pub shared_timeout: Duration,
    /// See [`Settings::purge_poll`].
    pub purge_poll: Duration,
    /// See [`Settings::coalesce`].
    pub coalesce: bool,
    /// See [`Settings::lock_timeout`].
    pub lock_timeout: Duration,
    /// See [`Settings::heuristic`].
    pub heuristic: bool,
    /// See [`Settings::ttl`].
    pub ttl: Option<Duration>,
    /// See [`Settings::stale_while_revalidate`].
    pub stale_while_revalidate: Duration,
    /// See [`Settings::stale_if_error`].
    pub stale_if_error: Duration,
    /// See [`KeySettings::host`].
    pub key_host: bool,
    /// See [`KeySettings::query`] (names sorted).
    pub key_query: QueryMode,
    /// See [`KeySettings::headers`] (lower case).
    pub key_headers: Vec<String>,
    /// See [`Settings::rules`] (header names lower case).
    pub rules: Vec<Rule>,
    /// See [`Settings::status_header`].
    pub status_header: bool,
    /// See [`Settings::cache_name`].
    pub cache_name: String,
    /// See [`Settings::expose_key`].
    pub expose_key: bool,
    /// See [`Settings::tag_headers`] (lower case).
    pub tag_headers: Vec<String>,
    /// See [`Settings::strip_tag_headers`].
    pub strip_tag_headers: bool,
}

/// Reads the `config:` block (JSON; `null` is all defaults). An error names
/// the key it is about (`purge_poll: invalid duration ...`), without the
/// JSON position (it would point into text the user never wrote).
pub fn parse(json: &str) -> Result<Settings, String> {
    let json = if json.trim() == "null" { "{}" } else { json };
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        let message = message.rfind(" at line ").map_or(message.as_str(), |at| &message[..at]).to_string();
        match e.path().to_string().as_str() {
            "." => message,
            path => format!("{path}: {message}"),
        }
    })
}

impl Settings {
    /// Checks the settings and lower-cases the header names.
    pub fn check(self) -> Result<Checked, CacheError> {
        let bad = |m: String| Err(CacheError::Config(m));
        if self.max_memory.0 == 0 || self.max_object_size.0 == 0 {
            return bad("max_memory and max_object_size must be at least 1 byte".into());
        }
        if self.purge_poll.0 < Duration::from_millis(10) {
            return bad(format!("purge_poll is {:?}; the least is 10ms", self.purge_poll.0));
        }
        if self.namespace.is_empty() || self.cache_name.is_empty() {
            return bad("namespace and cache_name must not be empty".into());
        }
        if !self.cache_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return bad(format!("cache_name `{}` must be letters, digits, `-`, `_` or `.`", self.cache_name));
        }
        let header_names = self.key.headers.iter().chain(&self.tag_headers);
        if let Some(name) = header_names.clone().find(|n| !covet_plugin_api::http_syntax::is_token(n)) {
            return bad(format!("`{name}` is not a header name"));
        }
        let mut rules = self.rules;
        for (i, rule) in rules.iter_mut().enumerate() {
            check_rule(i, rule)?;
        }
        let key_query = match self.key.query {
            QueryMode::Only(mut names) => {
                names.sort();
                QueryMode::Only(names)
            }
            other => other,
        };
        Ok(Checked {
            max_memory: self.max_memory.0,
            max_object_size: self.max_object_size.0,
            namespace: self.namespace,
            shared: self.shared,
            shared_timeout: self.shared_timeout.0,
            purge_poll: self.purge_poll.0,
            coalesce: self.coalesce,
            lock_timeout: self.lock_timeout.0,
            heuristic: self.heuristic,
            ttl: self.ttl.map(|d| d.0),
            stale_while_revalidate: self.stale_while_revalidate.0,
            stale_if_error: self.stale_if_error.0,
            key_host: self.key.host,
            key_query,
            key_headers: self.key.headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            rules,
            status_header: self.status_header,
            cache_name: self.cache_name,
            expose_key: self.expose_key,
            tag_headers: self.tag_headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            strip_tag_headers: self.strip_tag_headers,
        })
    }
}

fn check_rule(i: usize, rule: &mut Rule) -> Result<(), CacheError> {
    if rule.path_prefix.is_none() && rule.header.is_none() && rule.cookie.is_none() {
        return Err(CacheError::Config(format!("rules[{i}] has no condition (path_prefix, header or cookie)")));
    }
    if !rule.bypass && rule.ttl.is_none() {
        return Err(CacheError::Config(format!("rules[{i}] does nothing: give it `bypass: true` or a `ttl`")));
    }
    if rule.path_prefix.as_ref().is_some_and(|p| !p.starts_with('/')) {
        return Err(CacheError::Config(format!("rules[{i}].path_prefix must start with `/`")));
    }
    if let Some(h) = &mut rule.header {
        if !covet_plugin_api::http_syntax::is_token(h) {
            return Err(CacheError::Config(format!("rules[{i}].header `{h}` is not a header name")));
        }
        *h = h.to_ascii_lowercase();
    }
    Ok(())
}
