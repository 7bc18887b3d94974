//! Host services for covet plugins, built once by the host and shared by every
//! plugin kind (native, WASM, Python):
//!
//! - [`http`]: outbound HTTP/1.1 and HTTP/2 with TLS, pooled per origin,
//!   timeouts, streaming bodies both ways, a per-plugin [`http::OutboundPolicy`]
//!   (denied by default) and per-plugin counters.
//! - [`tasks`]: timers and background tasks owned by a plugin instance
//!   ([`tasks::TaskSet`]), aborted at its shutdown.
//! - [`state`]: a key-value and counter store with TTLs by namespace, in
//!   process ([`state::MemoryState`]) or in Redis ([`state::RedisState`]).
//!
//! The host builds one [`Services`] at start and gives each plugin instance a
//! [`PluginServices`] carrying that plugin's grants. Everything is async on
//! tokio; nothing here knows about FFI.

mod error;
pub mod http;
pub mod state;
pub mod tasks;
pub mod upstream;

use std::sync::Arc;

pub use error::ServiceError;

/// The host's services, built once (and again on a reload that changes them).
#[derive(Clone)]
pub struct Services {
    /// The shared outbound HTTP client.
    pub http: http::HttpClient,
    /// The shared state backend.
    pub state: Arc<dyn state::SharedState>,
}

/// The settings [`Services`] are built from.
#[derive(Clone, Debug, Default)]
pub struct ServicesConfig {
    /// Outbound HTTP client settings.
    pub http: http::HttpConfig,
    /// Shared state backend.
    pub state: state::StateConfig,
}

/// What one plugin is granted (the manifest's `capabilities:`).
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Hosts it may send HTTP requests to.
    pub outbound: http::OutboundPolicy,
    /// Shared state namespaces it may use.
    pub state_namespaces: Vec<String>,
}

impl Services {
    /// Builds the client and opens the state backend (Redis connects lazily).
    /// Call inside a tokio runtime.
    pub fn new(config: &ServicesConfig) -> Result<Services, ServiceError> {
        Ok(Services { http: http::HttpClient::new(config.http.clone())?, state: state::open(&config.state)? })
    }

    /// The services plugin instance `plugin` may use: its grants, and a fresh
    /// task set on `runtime` that the instance shuts down with it.
    pub fn for_plugin(&self, plugin: &str, grants: Grants, runtime: tokio::runtime::Handle) -> PluginServices {
        PluginServices {
            http: self.http.for_plugin(plugin, grants.outbound),
            state: state::StateHandle::new(self.state.clone(), plugin, grants.state_namespaces),
            tasks: tasks::TaskSet::new(plugin, runtime),
            plugin: plugin.to_owned(),
            upstreams: Vec::new(),
        }
    }
}

/// One plugin instance's services.
#[derive(Clone)]
pub struct PluginServices {
    /// Outbound HTTP, limited to the plugin's hosts.
    pub http: http::Outbound,
    /// Shared state, limited to the plugin's namespaces.
    pub state: state::StateHandle,
    /// The instance's background tasks and timers.
    pub tasks: tasks::TaskSet,
    /// The plugin's name.
    pub plugin: String,
    /// The upstreams it may send requests to (`capabilities.upstreams`; empty
    /// from [`Services::for_plugin`], set by the host that keeps the upstreams).
    pub upstreams: Vec<String>,
}
