//! The host services a WASM plugin's stores get: its outbound HTTP
//! ([`super::outbound`], behind `wasi:http/outgoing-handler`) and its shared
//! state ([`super::state`], behind `covet:plugin/state@0.2.0`).
//!
//! They come from the host's [`covet_services::Services`] in force (built
//! from the manifest's `services:`, see `runtime::services`), limited to the
//! plugin's grants. The stores get no task set: a WASM instance runs only
//! inside a call. A plugin with `background:` gets one task set of its own
//! ([`WasmServices::tasks`]) for its ticks, owned by its executor. Asking a
//! build who it is (`describe`, at load) runs in a sandbox with
//! [`WasmServices::none`].

use std::sync::{Arc, OnceLock};

use covet_services::{
    tasks::TaskSet,
    http::{HttpClient, Outbound, OutboundPolicy},
    state::{MemoryState, SharedState, StateHandle},
};

use crate::manifest::PluginSpec;

/// One plugin's outbound HTTP and shared state.
#[derive(Clone)]
pub struct WasmServices {
    /// Outbound HTTP, limited to the plugin's hosts.
    pub http: Outbound,
    /// Shared state, limited to the plugin's namespaces.
    pub state: StateHandle,
}

impl WasmServices {
    /// The host services in force, with the grants of manifest entry `spec`.
    pub fn for_plugin(spec: &PluginSpec) -> Result<WasmServices, String> {
        let services = crate::runtime::services::current()?;
        let policy = OutboundPolicy::new(&spec.grants.outbound_http).map_err(|e| format!("invalid outbound host \"{e}\""))?;
        Ok(WasmServices {
            http: services.http.for_plugin(&spec.name, policy).with_metrics(crate::runtime::services::outbound_metrics(&spec.name)),
            state: StateHandle::new(services.state.clone(), &spec.name, spec.grants.state.clone()),
        })
    }

    /// A task set for the background ticks of a new instance of `spec`, on
    /// the host's runtime (or, outside one, the host services' own).
    pub fn tasks(spec: &PluginSpec) -> Result<TaskSet, String> {
        crate::runtime::services::for_plugin(spec).map(|services| services.tasks)
    }

    /// Services that grant nothing, on a default client and an in-process
    /// state of their own (used to ask a build who it is).
    pub fn none(plugin: &str) -> Result<WasmServices, String> {
        let (client, state) = shared()?;
        Ok(WasmServices {
            http: client.for_plugin(plugin, OutboundPolicy::deny_all()),
            state: StateHandle::new(state.clone(), plugin, Vec::new()),
        })
    }
}

/// The default client and in-process state.
type Shared = (HttpClient, Arc<dyn SharedState>);

/// The default client and in-process state, made on first use.
fn shared() -> Result<&'static Shared, String> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    let made = SHARED.get_or_init(|| {
        let client = HttpClient::new(Default::default()).map_err(|e| format!("cannot make the outbound HTTP client: {e}"))?;
        Ok((client, Arc::new(MemoryState::new())))
    });
    made.as_ref().map_err(Clone::clone)
}
