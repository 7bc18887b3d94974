//! # covet-plugin-api
//!
//! The contract between the covet host and a **native** plugin: a Rust
//! `cdylib` the host loads at run time. The same contract has a WIT package
//! for WebAssembly components (`covet:plugin@0.1.0` in `plugin-api/wit/`,
//! see `docs/wasm.md`) and will have a Python module; this crate is its
//! native Rust binding.
//!
//! ## The phases
//!
//! | phase | when | returns |
//! |---|---|---|
//! | [`Plugin::init`] | once per instance, before it takes traffic | the instance, or an error that aborts the load |
//! | [`Plugin::on_request`] | filters, in manifest order | [`Flow::Continue`] or [`Flow::Respond`] |
//! | [`Plugin::handle`] | the route's one handler | a [`Response`] |
//! | [`Plugin::on_response`] | filters, reverse order | edits through [`ResponseMut`] |
//! | [`Plugin::shutdown`] | once, after the instance is retired and idle | — |
//!
//! Plugins pass facts to each other through per-request metadata
//! ([`Request::metadata`], [`Request::set_metadata`]), keyed `plugin.field`
//! by convention (`jwt.sub`, `ratelimit.key`).
//!
//! ## Synchronous, blocking and async phases
//!
//! [`Plugin`] phases are plain synchronous functions called on the host's
//! I/O threads: a filter call costs a few nanoseconds of overhead and no
//! allocation. Such a phase must not block; a plugin that has to sets
//! [`Plugin::BLOCKING`] (called through `tokio::task::block_in_place`).
//! A plugin that waits (timers, host services, a streamed body) implements
//! [`AsyncPlugin`] with `async fn` phases and is exported with
//! `export_plugin!(async T)`: the host polls its futures with its own waker,
//! drops them when the client goes away, and turns a panic into a 500.
//!
//! ## The request body
//!
//! By default the host buffers the request body before the chain runs, up
//! to the listener's `limits.max_body` (1 MiB by default; larger bodies get a
//! 413 before any plugin runs), and [`Request::body`] returns it. A plugin
//! declaring [`BodyMode::Stream`] reads it with [`Request::take_body`] as a
//! [`BodyStream`]; a route streams only when all its plugins do (see
//! `docs/streaming.md`). Responses may stream too ([`Response::stream`]).
//!
//! ## ABI policy
//!
//! The ABI is checked by `abi_stable` when the host loads the library: the
//! plugin-api version the plugin was built against must be compatible with the
//! host's (for `0.y.z`, the same `y`: 0.2 builds are refused by a 0.3 host),
//! and every type that crosses the
//! boundary must have the same layout. A plugin that fails either check is
//! refused with a message naming both versions. Trait objects and the root
//! module are prefix types: new methods are only ever appended, and a
//! method added to a trait the host implements (`RequestOps`,
//! `HostServicesOps`, …) bumps `y` (see `docs/abi.md`).
//!
//! ## A complete plugin
//!
//! ```
//! use covet_plugin_api::{export_plugin, Config, Flow, Phases, Plugin, Request, Response};
//!
//! /// Answers 403 unless the request carries the configured header.
//! pub struct RequireHeader {
//!     name: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     header: String,
//! }
//!
//! impl Plugin for RequireHeader {
//!     const PHASES: Phases = Phases::ON_REQUEST;
//!
//!     fn init(config: Config<'_>) -> Result<Self, String> {
//!         let settings: Settings = config.parse()?;
//!         Ok(RequireHeader { name: settings.header })
//!     }
//!
//!     fn on_request(&self, req: &mut Request<'_>) -> Flow {
//!         match req.header(&self.name) {
//!             Some(_) => Flow::Continue,
//!             None => Flow::Respond(Response::text(403, "missing header")),
//!         }
//!     }
//! }
//!
//! export_plugin!(RequireHeader);
//! ```
//!
//! Build it with `crate-type = ["cdylib"]` and point the manifest at the `.so`:
//!
//! ```yaml
//! plugins:
//!   require-key: { kind: native, path: libmy_plugin.so, config: { header: x-api-key } }
//! ```
#![deny(missing_docs)]

mod async_plugin;
mod body;
mod body_channel;
pub mod ffi;
pub mod host;
pub mod http_syntax;
mod plugin;
mod request;
mod response;
mod shared;
pub mod span;
mod types;

pub mod testing;

#[doc(hidden)]
pub mod __export;

pub use async_plugin::AsyncPlugin;
pub use body::{BodyStream, Chunk};
pub use body_channel::BodySender;
pub use plugin::Plugin;
pub use request::Request;
pub use response::{Flow, Response, ResponseMut, StreamSlot};
pub use shared::{Body, Headers};
pub use span::AttrValue;
/// JSON values, as [`Response::error`] takes for `details` (re-exported so a
/// plugin needs no serde_json of its own).
pub use serde_json::Value as JsonValue;
pub use types::{BodyMode, Config, Header, HttpVersion, Phases};
