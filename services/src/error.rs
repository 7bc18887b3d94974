//! The one error type of the host services.
//!
//! Every service returns [`ServiceError`]; its `Display` text is what a plugin
//! author sees, so each variant says what failed and, where one exists, what to
//! change (for [`ServiceError::Denied`], the manifest grant to add).

use std::time::Duration;

/// What went wrong in a host service call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The plugin has no grant for this host or namespace.
    #[error(
        "plugin '{plugin}' may not use {what}: add it to the plugin's `capabilities: {{ {grant}: [...] }}` in the manifest"
    )]
    Denied {
        /// The plugin that asked.
        plugin: String,
        /// What it asked for (`outbound HTTP to host 'api.example.com:443'`).
        what: String,
        /// The manifest grant key that would allow it (`outbound_http`, `state`).
        grant: &'static str,
    },
    /// The operation did not finish in time.
    #[error("{what} timed out after {}", humantime_ms(*after))]
    Timeout {
        /// The operation (`connect to api.example.com:443`, `redis INCR`).
        what: String,
        /// The limit that was reached.
        after: Duration,
    },
    /// A TCP (or unix socket) connection could not be made.
    #[error("connecting to {target} failed: {reason}")]
    Connect {
        /// `host:port` or socket path.
        target: String,
        /// The underlying error.
        reason: String,
    },
    /// TLS configuration or handshake failure.
    #[error("TLS: {0}")]
    Tls(String),
    /// An HTTP protocol error, or a malformed request (bad URL, header).
    #[error("HTTP: {0}")]
    Http(String),
    /// The backend does not offer this operation (e.g. `eval` on the in-process state).
    #[error("{0} is not supported by this backend")]
    Unsupported(String),
    /// The state backend failed (Redis error, script error).
    #[error("state backend: {0}")]
    Backend(String),
    /// The service configuration is invalid (unreadable CA file, bad URL).
    #[error("service configuration: {0}")]
    Config(String),
    /// The owner (plugin instance) is shutting down; no new work is accepted.
    #[error("the plugin instance is shutting down")]
    ShutDown,
    /// No endpoint of an upstream could take the request (all ejected,
    /// failing health checks, refusing connections, or none resolved).
    #[error("upstream '{upstream}': no endpoint available: {reason}")]
    Unavailable {
        /// The upstream's name.
        upstream: String,
        /// Why (the last connect error, or that every endpoint is unusable).
        reason: String,
    },
    /// The upstream's circuit breaker is full (too many requests in flight and waiting).
    #[error("upstream '{upstream}' is overloaded: retry after {}", humantime_ms(*retry_after))]
    Overloaded {
        /// The upstream's name.
        upstream: String,
        /// The `retry-after` to advertise.
        retry_after: Duration,
    },
}

/// `50ms`, `1.5s`: durations in error texts.
fn humantime_ms(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

impl ServiceError {
    /// A short stable name for metrics labels and FFI (`denied`, `timeout`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::Denied { .. } => "denied",
            ServiceError::Timeout { .. } => "timeout",
            ServiceError::Connect { .. } => "connect",
            ServiceError::Tls(_) => "tls",
            ServiceError::Http(_) => "http",
            ServiceError::Unsupported(_) => "unsupported",
            ServiceError::Backend(_) => "backend",
            ServiceError::Config(_) => "config",
            ServiceError::ShutDown => "shut_down",
            ServiceError::Unavailable { .. } => "unavailable",
            ServiceError::Overloaded { .. } => "overloaded",
        }
    }
}
