//! # covet host
//!
//! The network core (listeners, HTTP/1.1 and HTTP/2 via hyper), the manifest,
//! the router, the plugin pipeline and the plugin runtimes. Features live in
//! plugins; this crate only carries what every plugin needs.
//!
//! Where things are:
//! - [`cli`] — the `covet` command line;
//! - [`manifest`] — the YAML manifest: types, validation, error reports, JSON Schema;
//! - [`server`] — listeners, connection limits and timeouts, graceful shutdown;
//! - [`service`] — one HTTP request: limits, health, routing, access log;
//! - [`router`] — matchit trees per method; [`routes`] — the route table;
//! - [`pipeline`] — one request through filters and handler;
//! - [`runtime`] — the executor trait and its native implementation;
//! - [`registry`] — the plugin slots a request takes its instances from;
//! - [`loader`] — loading and initialising a manifest's plugins;
//! - [`control`] — the control plane: start-up, swaps, reloads, events;
//! - [`admin`] — the admin API (HTTP+JSON and gRPC) over the control plane;
//! - [`watch`] — `covet host --watch`: reloads changed manifests and artifacts;
//! - [`metrics`] — request and plugin metrics, Prometheus exposition;
//! - [`otel`] — OpenTelemetry: the manifest's tracing and OTLP export made live, server spans;
//! - [`problem`] — the one place errors become responses.

pub mod access_log;
pub mod admin;
pub mod background;
pub mod cli;
pub mod clock;
pub mod control;
pub mod error;
pub mod exchange;
pub mod loader;
pub mod manifest;
pub mod metadata;
pub mod metrics;
pub mod otel;
pub mod pipeline;
pub mod problem;
pub mod registry;
pub mod request_id;
pub mod router;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod service;
pub mod supervisor;
pub mod telemetry;
pub mod watch;
