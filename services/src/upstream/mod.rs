//! Upstreams: named sets of endpoints that plugins (the `proxy` above all)
//! send requests to. The host keeps them, not a plugin instance, so health,
//! ejections and counters survive a swap of the proxy plugin and a manifest
//! reload that leaves an upstream's endpoints unchanged, and every route and
//! plugin that names an upstream shares its breaker and retry budget.

pub(crate) mod breaker;
pub(crate) mod budget;
pub(crate) mod client;
mod config;
pub(crate) mod replay;
pub(crate) mod tunnel;
mod types;

pub use config::*;
pub use types::*;
