//! WASM plugins end to end: the real binary with the components built from
//! `wasm-plugins/` (`cargo build --target wasm32-wasip2 --release` there;
//! scripts/test.sh does it).
//!
//! - [`chains`]: WASM and native plugins in one chain, in both orders;
//!   instances fresh per call unless the manifest opts into reuse;
//! - [`faults`]: trap, infinite loop, memory bomb, fuel, slow waits — each
//!   fails its own request with its status while other routes keep serving;
//! - [`capabilities`]: files, environment, outbound HTTP and stdio are
//!   denied without a grant and work with one;
//! - [`http`]: an unmodified `wasi:http` component as a handler;
//! - [`stream`]: a `wasi:http` component's response body streamed as it is
//!   written (first chunk early, 50 MiB with bounded memory, SSE, limits);
//! - [`services`]: host services from a component: outbound HTTP through
//!   the host's pooled client, shared state (in process and Redis), timers;
//! - [`swap`]: hot swap of a WASM plugin through the admin API;
//! - [`background`]: periodic `tick`s with no request, owned by the
//!   instance (errors logged, stopped when it is retired);
//! - [`traced`]: `covet:plugin/tracing@0.2.0` calls are no-ops with tracing off.

mod background;
mod capabilities;
mod chains;
mod faults;
mod http;
mod services;
mod stream;
mod swap;
mod traced;

use std::path::PathBuf;

use covet_e2e::{Host, artifacts_dir, workspace_root};
use serde_json::{Map, Value, json};

/// The component `name` (`ab_tagger`, `covet_wasm_probe`, …) built by
/// `cargo build --target wasm32-wasip2 --release` in `wasm-plugins/`.
pub fn component(name: &str) -> PathBuf {
    let file = format!("{name}.wasm");
    let shared = artifacts_dir().parent().map(|target| target.join("wasm32-wasip2/release").join(&file));
    let own = workspace_root().join("wasm-plugins/target/wasm32-wasip2/release").join(&file);
    shared.filter(|p| p.exists()).unwrap_or_else(|| {
        assert!(
            own.exists(),
            "{file} is missing: run `cargo build --target wasm32-wasip2 --release` in wasm-plugins/ (scripts/test.sh does)"
        );
        own
    })
}

/// A manifest written as JSON (which is YAML): plugins of both kinds, with
/// any WASM keys, and routes.
#[derive(Default)]
pub struct Gateway {
    plugins: Map<String, Value>,
    routes: Vec<Value>,
}

impl Gateway {
    /// An empty gateway listening on `127.0.0.1:0`.
    pub fn new() -> Gateway {
        Gateway::default()
    }

    /// A native plugin from crate `crate_name`.
    pub fn native(mut self, name: &str, crate_name: &str, config: Value) -> Gateway {
        let path = covet_e2e::plugin(crate_name);
        self.plugins.insert(name.into(), json!({ "kind": "native", "path": path, "config": config }));
        self
    }

    /// A WASM plugin from component `file` with `config`.
    pub fn wasm(self, name: &str, file: &str, config: Value) -> Gateway {
        self.wasm_with(name, file, config, json!({}))
    }

    /// A WASM plugin with more keys (`limits`, `capabilities`, `instances`).
    pub fn wasm_with(mut self, name: &str, file: &str, config: Value, keys: Value) -> Gateway {
        let mut plugin = json!({ "kind": "wasm", "path": component(file) });
        if !config.is_null() {
            plugin["config"] = config;
        }
        if let (Some(entry), Value::Object(more)) = (plugin.as_object_mut(), keys) {
            entry.extend(more);
        }
        self.plugins.insert(name.into(), plugin);
        self
    }

    /// A route for `path` through `filters` to `handler`.
    pub fn route(mut self, path: &str, filters: &[&str], handler: &str) -> Gateway {
        self.routes.push(json!({ "path": path, "filters": filters, "handler": handler }));
        self
    }

    /// The manifest text.
    pub fn yaml(&self) -> String {
        let manifest = json!({
            "listen": [{ "addr": "127.0.0.1:0" }],
            "plugins": self.plugins,
            "routes": self.routes,
        });
        serde_json::to_string_pretty(&manifest).expect("JSON")
    }

    /// Starts a host on it and waits until it is ready.
    pub async fn start(self) -> Host {
        Host::start(self.yaml()).await
    }
}

impl From<Gateway> for String {
    fn from(gateway: Gateway) -> String {
        gateway.yaml()
    }
}

