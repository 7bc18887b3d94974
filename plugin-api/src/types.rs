//! Plain FFI-safe value types shared by host and plugins: phase sets, HTTP
//! versions, headers and the plugin's config.

use std::path::{Path, PathBuf};

use abi_stable::{StableAbi, std_types::RString};
use serde::de::DeserializeOwned;

/// A set of phases a plugin implements. The host never calls a phase outside it.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phases(u32);

impl Phases {
    /// No phase.
    pub const NONE: Phases = Phases(0);
    /// `on_request`: a filter before the handler.
    pub const ON_REQUEST: Phases = Phases(1);
    /// `handle`: the route's handler.
    pub const HANDLE: Phases = Phases(2);
    /// `on_response`: a filter after the handler.
    pub const ON_RESPONSE: Phases = Phases(4);

    /// Every phase (what an instance that names none of its own calls
    /// gets: see [`crate::Plugin::phases`]).
    pub const ALL: Phases = Phases(Self::ON_REQUEST.0 | Self::HANDLE.0 | Self::ON_RESPONSE.0);

    /// The phases in both sets.
    pub const fn intersection(self, other: Phases) -> Phases {
        Phases(self.0 & other.0)
    }

    /// Both sets together.
    pub const fn union(self, other: Phases) -> Phases {
        Phases(self.0 | other.0)
    }

    /// Whether every phase of `other` is in `self`.
    pub const fn contains(self, other: Phases) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set can act as a filter (has `on_request` or `on_response`).
    pub const fn is_filter(self) -> bool {
        self.0 & (Self::ON_REQUEST.0 | Self::ON_RESPONSE.0) != 0
    }

    /// The names of the phases in the set, e.g. `["on_request", "handle"]`.
    pub fn names(self) -> Vec<&'static str> {
        [(Self::ON_REQUEST, "on_request"), (Self::HANDLE, "handle"), (Self::ON_RESPONSE, "on_response")]
            .into_iter()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, n)| n)
            .collect()
    }
}

impl std::ops::BitOr for Phases {
    type Output = Phases;
    fn bitor(self, rhs: Phases) -> Phases {
        self.union(rhs)
    }
}

/// How a plugin reads the request body.
///
/// `Buffered` (the default, and the only form before ABI 0.2): the host reads
/// the whole body, up to `limits.max_body`, before the chain runs, and
/// `Request::body` returns it. `Stream`: the plugin reads it with
/// `Request::take_body` as it arrives (or leaves it alone). A route streams
/// its request body only when every plugin of its chain says `Stream`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyMode {
    /// The host buffers the body; `Request::body` has it.
    #[default]
    Buffered,
    /// The plugin streams the body (or does not read it).
    Stream,
}

/// The HTTP version a request arrived with.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2
    Http2,
    /// HTTP/3
    Http3,
}

impl HttpVersion {
    /// The version as written in a status line, e.g. `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2",
            HttpVersion::Http3 => "HTTP/3",
        }
    }
}

/// One header line.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Lower-case header name.
    pub name: RString,
    /// Header value.
    pub value: RString,
}

impl Header {
    /// Makes a header from a name and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header { name: RString::from(name.into()), value: RString::from(value.into()) }
    }
}

/// A plugin's `config:` block from the manifest, handed over as JSON, with
/// the manifest's directory so relative paths in the config mean what the
/// operator meant (the same rule as the plugin's own `path:`).
#[derive(Debug, Clone)]
pub struct Config<'a> {
    json: &'a str,
    base_dir: &'a Path,
    instance: &'a str,
    host: crate::host::Host,
}

impl<'a> Config<'a> {
    /// Wraps JSON text; relative paths resolve against the current directory.
    /// (For tests; the host uses [`Config::new`].)
    pub fn from_json(json: &'a str) -> Config<'a> {
        Config { json, base_dir: Path::new(""), instance: "", host: crate::host::Host::unavailable() }
    }

    /// A config as the host passes it: JSON, the manifest's directory, the instance name.
    pub fn new(json: &'a str, base_dir: &'a Path, instance: &'a str) -> Config<'a> {
        Config { json, base_dir, instance, host: crate::host::Host::unavailable() }
    }

    /// The same config with the host's services (what the host passes at init).
    pub fn with_host(mut self, host: crate::host::Host) -> Config<'a> {
        self.host = host;
        self
    }

    /// The host's services for this instance (outbound HTTP, timers and
    /// tasks, shared state), to keep for the plugin's lifetime. Outside a
    /// host (unit tests) every call fails with `Unsupported`.
    pub fn host(&self) -> crate::host::Host {
        self.host.clone()
    }

    /// The manifest's directory.
    pub fn base_dir(&self) -> &'a Path {
        self.base_dir
    }

    /// A path from the config, made relative to the manifest's directory
    /// unless it is absolute.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The manifest's name for this instance (e.g. `jwt`), for messages.
    pub fn instance(&self) -> &'a str {
        self.instance
    }

    /// The raw JSON text (`null` when the manifest gave no config).
    pub fn as_json(&self) -> &'a str {
        self.json
    }

    /// Deserialises the config into the plugin's own type. A missing config
    /// (`null`) is read as an empty map, so all-default configs need no block.
    /// The error names the offending field the way serde does, without the
    /// JSON position (it would point into text the user never wrote).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        let json = if self.json.trim() == "null" { "{}" } else { self.json };
        serde_json::from_str(json).map_err(|e| strip_position(&e.to_string()))
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_union_and_names() {
        let p = Phases::ON_REQUEST | Phases::ON_RESPONSE;
        assert!(p.is_filter());
        assert!(!p.contains(Phases::HANDLE));
        assert_eq!(p.names(), ["on_request", "on_response"]);
        assert!(!Phases::HANDLE.is_filter());
    }

    #[test]
    fn config_errors_name_the_field_without_json_position() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct C {
            rate: String,
        }
        let err = Config::from_json(r#"{"rat": "1/s"}"#).parse::<C>().unwrap_err();
        assert!(err.starts_with("unknown field `rat`, expected `rate`"), "{err}");
        assert!(!err.contains("line"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_manifest_dir() {
        let config = Config::new("null", Path::new("/etc/covet"), "jwt");
        assert_eq!(config.resolve("keys/a.pem"), Path::new("/etc/covet/keys/a.pem"));
        assert_eq!(config.resolve("/abs/b.pem"), Path::new("/abs/b.pem"));
    }

    #[test]
    fn null_config_reads_as_empty_map() {
        #[derive(serde::Deserialize, Default)]
        struct C {
            #[serde(default)]
            n: u32,
        }
        assert_eq!(Config::from_json("null").parse::<C>().unwrap().n, 0);
    }
}
