//! A manifest builder, so a test reads as the gateway it sets up:
//!
//! ```ignore
//! let manifest = Manifest::new()
//!     .plugin("echo", "covet-test-plugin", json!({ "label": "echo" }))
//!     .route(Route::new("/users/{id}").methods(["GET"]).handler("echo"));
//! let host = Host::start(manifest).await;
//! ```
//!
//! It renders YAML with one listener on `127.0.0.1:0`, absolute artifact
//! paths and each plugin's config as inline JSON (JSON is YAML).

use std::fmt::Write as _;

use serde_json::Value;

use crate::plugin;

/// A manifest under construction.
#[derive(Default, Clone)]
pub struct Manifest {
    limits: Vec<(String, String)>,
    plugins: Vec<(String, String, Value)>,
    routes: Vec<Route>,
    access_log: Option<bool>,
}

/// One route under construction.
#[derive(Clone)]
pub struct Route {
    path: String,
    methods: Vec<String>,
    filters: Vec<String>,
    handler: String,
}

impl Route {
    /// A route for `path` (a matchit pattern), every method, no filters.
    pub fn new(path: &str) -> Route {
        Route { path: path.into(), methods: Vec::new(), filters: Vec::new(), handler: String::new() }
    }

    /// The methods it answers.
    pub fn methods<const N: usize>(mut self, methods: [&str; N]) -> Route {
        self.methods = methods.iter().map(|m| m.to_string()).collect();
        self
    }

    /// Its filters, in order.
    pub fn filters<const N: usize>(mut self, filters: [&str; N]) -> Route {
        self.filters = filters.iter().map(|f| f.to_string()).collect();
        self
    }

    /// Its handler.
    pub fn handler(mut self, handler: &str) -> Route {
        self.handler = handler.into();
        self
    }
}

impl Manifest {
    /// An empty manifest listening on `127.0.0.1:0`.
    pub fn new() -> Manifest {
        Manifest::default()
    }

    /// Sets one `limits:` key, e.g. `.limit("max_body", "16")`.
    pub fn limit(mut self, key: &str, value: &str) -> Manifest {
        self.limits.push((key.into(), value.into()));
        self
    }

    /// Turns the access log on or off (default: the host's default).
    pub fn access_log(mut self, on: bool) -> Manifest {
        self.access_log = Some(on);
        self
    }

    /// A native plugin `name` built from crate `crate_name`, with `config`.
    pub fn plugin(mut self, name: &str, crate_name: &str, config: Value) -> Manifest {
        self.plugins.push((name.into(), crate_name.into(), config));
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: Route) -> Manifest {
        self.routes.push(route);
        self
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("listen:\n  - addr: 127.0.0.1:0\n");
        if !self.limits.is_empty() {
            out.push_str("limits:\n");
            for (key, value) in &self.limits {
                let _ = writeln!(out, "  {key}: {value}");
            }
        }
        if let Some(on) = self.access_log {
            let _ = writeln!(out, "log:\n  access: {on}");
        }
        out.push_str("plugins:\n");
        for (name, crate_name, config) in &self.plugins {
            let path = Value::String(plugin(crate_name).display().to_string());
            let _ = writeln!(out, "  {name}:\n    kind: native\n    path: {path}\n    config: {config}");
        }
        out.push_str("routes:\n");
        for route in &self.routes {
            let _ = writeln!(out, "  - path: {}", Value::String(route.path.clone()));
            if !route.methods.is_empty() {
                let _ = writeln!(out, "    methods: [{}]", route.methods.join(", "));
            }
            if !route.filters.is_empty() {
                let _ = writeln!(out, "    filters: [{}]", route.filters.join(", "));
            }
            let _ = writeln!(out, "    handler: {}", route.handler);
        }
        out
    }
}

impl From<Manifest> for String {
    fn from(manifest: Manifest) -> String {
        manifest.to_yaml()
    }
}
