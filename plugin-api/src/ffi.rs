//! The FFI-stable layer: the root module a plugin library exports and the
//! `#[sabi_trait]` objects that cross the boundary in both directions.
//!
//! Plugin authors do not use this module directly; [`crate::export_plugin!`]
//! and the wrappers in [`crate::Request`] and [`crate::BodyStream`] sit on top of it.
//!
//! Since ABI 0.2 a phase returns a [`PhaseResult`]: `Ready` (a synchronous
//! plugin: no allocation, nothing to poll) or `Pending`, an FFI-safe future
//! (`async_ffi::BorrowingFfiFuture`) the host polls with its own waker passed
//! across as an [`FfiContext`]. Bodies cross as [`BodyStreamBox`] objects the
//! reader pulls [`Chunk`]s from. It is public
//! because the host and the export macro need it, and because its layout *is*
//! the ABI: fields of prefix types are only ever appended (see `docs/abi.md`).

#![allow(non_camel_case_types)] // abi_stable names the prefix reference `PluginMod_Ref`

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    RMut,
};
pub use async_ffi::{self, BorrowingFfiFuture, FfiContext, FfiPoll};

pub use crate::body::Chunk;
use crate::{BodyMode, Phases, response::Response};

/// The version of the plugin ABI this crate defines (its package version).
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a plugin library says about itself before it is instantiated.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Descriptor {
    /// The plugin's name (its crate name by default).
    pub name: RStr<'static>,
    /// The plugin's own version.
    pub version: RStr<'static>,
    /// The plugin-api version it was built against ([`ABI_VERSION`]).
    pub api_version: RStr<'static>,
    /// The phases the plugin implements; the host skips the others.
    pub phases: Phases,
    /// `true` when phase calls may block; the host then calls them off the reactor.
    pub blocking: bool,
    /// Whether the plugin reads the request body buffered or as a stream.
    pub body: BodyMode,
    /// `true` for an `AsyncPlugin`: its phases return [`PhaseResult::Pending`].
    pub asynchronous: bool,
}

/// What a phase call returns: the result now, or a future of it.
///
/// A synchronous [`crate::Plugin`] always answers `Ready` (no allocation); an
/// [`crate::AsyncPlugin`] answers `Pending` with its `async fn`'s future,
/// boxed once, which the host polls until it is ready or drops it (the
/// client went away). Each poll runs under `catch_unwind` in the plugin
/// library: a panic comes back as a ready [`Fault`] of kind `Panic`.
#[repr(C, u8)]
#[derive(StableAbi)]
pub enum PhaseResult<'a, T> {
    /// The call finished.
    Ready(RResult<T, Fault>),
    /// The call goes on; poll the future for its result.
    Pending(BorrowingFfiFuture<'a, RResult<T, Fault>>),
}

/// Why a phase call did not return normally.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The plugin panicked; the panic was caught inside the plugin library.
    Panic,
    /// The plugin returned an error.
    Error,
}

/// What `instantiate` gets: the config and where relative paths in it start.
///
/// Passed by value and built only by the host: a new field is appended at
/// the end (with the ABI version bumped), never inserted.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct InitContext<'a> {
    /// The manifest's `config:` block as JSON (`null` when absent).
    pub config_json: RStr<'a>,
    /// The manifest's directory, absolute: relative paths in the config are relative to it.
    pub base_dir: RStr<'a>,
    /// The manifest's name for this plugin instance.
    pub instance: RStr<'a>,
    /// The host services for this instance, with its grants (`config.host()`); `RNone` outside a host.
    pub host: abi_stable::std_types::ROption<&'a crate::host::ffi::HostServicesBox>,
}

/// A failed phase call: what happened and the message to log.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Fault {
    /// Panic or error.
    pub kind: FaultKind,
    /// The panic payload or the error text.
    pub message: RString,
}

/// The FFI form of [`crate::Flow`].
#[repr(u8)]
#[derive(StableAbi, Debug)]
pub enum FfiFlow {
    /// Go on to the next filter / the handler.
    Continue,
    /// Stop the chain and send this response.
    Respond(Response),
    /// Send this response now and run the rest of the chain in the background.
    RespondAndContinue(Response),
}

/// The host's view of an in-flight request, handed to every phase call.
///
/// Implemented by the host; every method borrows from host memory, so reading
/// a header costs no copy. `Send`, so a pending phase future holding it is.
#[sabi_trait]
pub trait RequestOps: Send {
    /// The request method, e.g. `GET`.
    fn method(&self) -> RStr<'_>;
    /// The request target as received (path and query).
    fn uri(&self) -> RStr<'_>;
    /// The HTTP version the request arrived with.
    fn version(&self) -> crate::HttpVersion;
    /// The first value of a header (case-insensitive name); `RNone` when absent or not UTF-8.
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>>;
    /// All headers as `(name, value)` pairs in arrival order (values that are not UTF-8 are skipped).
    fn headers(&self) -> RVec<crate::Header>;
    /// Replaces every value of a header with one value.
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;
    /// Adds one more value for a header.
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;
    /// Removes every value of a header.
    fn remove_header(&mut self, name: RStr<'_>);
    /// The client's socket address, e.g. `127.0.0.1:51000`.
    fn client_addr(&self) -> RStr<'_>;
    /// A route parameter (`{id}` or `{*rest}` in the route's path).
    fn param(&self, name: RStr<'_>) -> ROption<RStr<'_>>;
    /// The route pattern that matched, e.g. `/users/{id}`.
    fn route(&self) -> RStr<'_>;
    /// The buffered request body.
    fn body(&self) -> RSlice<'_, u8>;
    /// A metadata value set by an earlier plugin (e.g. `jwt.sub`).
    fn metadata(&self, key: RStr<'_>) -> ROption<RStr<'_>>;
    /// Sets a metadata value for later plugins.
    fn set_metadata(&mut self, key: RStr<'_>, value: RStr<'_>);
    /// The request id (the incoming `x-request-id`, or one the host made).
    fn request_id(&self) -> RStr<'_>;
    /// Takes the request body as a stream: the unread body on a streaming
    /// route, the buffered bytes (one chunk, not copied) otherwise, an empty
    /// stream when it was taken already. `body()` is empty afterwards.
    fn take_body(&mut self) -> BodyStreamBox;
    /// Replaces the request body with a stream (a filter transforming it);
    /// later plugins read this one.
    #[sabi(last_prefix_field)]
    fn set_body_stream(&mut self, body: BodyStreamBox);
    /// Whether the span of this plugin call is recorded (the trace is
    /// sampled and an exporter is configured). Hosts without tracing
    /// (and every implementation that does not override this) record none.
    fn span_is_recording(&self) -> bool {
        false
    }
    /// Sets an attribute on the span of this plugin call (replacing one with
    /// the same key); ignored when the span is not recorded.
    fn span_set_attribute(&self, key: RStr<'_>, value: crate::span::AttrValue) {
        let _ = (key, value);
    }
    /// Adds an event, timestamped now, to the span of this plugin call;
    /// ignored when the span is not recorded.
    fn span_add_event(&self, name: RStr<'_>, attributes: RVec<crate::span::FfiAttribute>) {
        let _ = (name, attributes);
    }
    /// The `traceparent` of this plugin call's span (sampled or not), for a
    /// plugin that propagates the trace by other means than the host's
    /// services (a message queue header); `RNone` when tracing is off.
    fn traceparent(&self) -> ROption<RString> {
        ROption::RNone
    }
}

/// The host's view of the response on its way out, for `on_response`.
#[sabi_trait]
pub trait ResponseOps: Send {
    /// The status code.
    fn status(&self) -> u16;
    /// Changes the status code (100..=999).
    fn set_status(&mut self, status: u16) -> RResult<(), RString>;
    /// The first value of a header; `RNone` when absent or not UTF-8.
    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>>;
    /// Replaces every value of a header with one value.
    fn set_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;
    /// Adds one more value for a header.
    fn append_header(&mut self, name: RStr<'_>, value: RStr<'_>) -> RResult<(), RString>;
    /// Removes every value of a header.
    fn remove_header(&mut self, name: RStr<'_>);
    /// The response body.
    fn body(&self) -> RSlice<'_, u8>;
    /// Replaces the response body (the host fixes `content-length`).
    fn set_body(&mut self, body: RVec<u8>);
    /// Takes the response body (buffered or streaming) as a stream; the
    /// response is left with an empty body until one is set.
    fn take_body(&mut self) -> BodyStreamBox;
    /// Replaces the response body with a stream, written to the client as it is read.
    #[sabi(last_prefix_field)]
    fn set_body_stream(&mut self, body: BodyStreamBox);
    /// Every header as `(name, value)` pairs, in order (values that are not
    /// UTF-8 are skipped): what a cache stores. (0.4; implementations that
    /// do not override it list none.)
    fn headers(&self) -> RVec<crate::Header> {
        RVec::new()
    }
}

/// A body read chunk by chunk: the reader pulls, so a slow reader holds the
/// writer back (nothing is read from the socket that was not asked for).
///
/// Implemented on both sides: by the host for a request or response body it
/// holds, by the plugin library for a body it makes (a channel, a transform).
#[sabi_trait]
pub trait BodyStreamOps: Send {
    /// The next chunk: `RNone` at the end, `RErr` when the body broke off
    /// (the client went away, or `limits.max_body` was passed).
    fn poll_chunk(&mut self, cx: &mut FfiContext<'_>) -> FfiPoll<ROption<RResult<Chunk, RString>>>;
    /// The exact number of bytes still to come, when known.
    #[sabi(last_prefix_field)]
    fn size_hint(&self) -> ROption<u64>;
    /// The trailers that ended the body (HTTP/2 or chunked HTTP/1.1
    /// trailers, e.g. gRPC's `grpc-status`), asked once `poll_chunk` has
    /// returned `RNone`: `RNone` when there were none. Streams made by
    /// plugin-api 0.2.0 (and every stream that does not override this) have none.
    fn trailers(&mut self) -> ROption<RVec<crate::host::ffi::FfiHeader>> {
        ROption::RNone
    }
}

/// An owned body stream as it crosses the boundary.
pub type BodyStreamBox = BodyStreamOps_TO<'static, RBox<()>>;

/// A borrowed request view as passed across the boundary.
pub type RequestRef<'a> = RequestOps_TO<'a, RMut<'a, ()>>;
/// A borrowed response view as passed across the boundary.
pub type ResponseRef<'a> = ResponseOps_TO<'a, RMut<'a, ()>>;

/// One live plugin instance, made by [`PluginMod::instantiate`].
///
/// A pending phase borrows the request (and the response) for `'a`: the
/// host keeps them alive until the future is done or dropped. The future
/// owns what it needs of the instance (the async adapter shares the plugin
/// value with its futures by reference count).
#[sabi_trait]
pub trait PluginObj: Send + Sync {
    /// Filter phase before the handler.
    fn on_request<'a>(&self, req: RequestRef<'a>) -> PhaseResult<'a, FfiFlow>;
    /// Handler phase.
    fn handle<'a>(&self, req: RequestRef<'a>) -> PhaseResult<'a, Response>;
    /// Filter phase after the handler, in reverse filter order.
    fn on_response<'a>(&self, req: RequestRef<'a>, resp: ResponseRef<'a>) -> PhaseResult<'a, ()>;
    /// Called once after the instance is retired and its last request ended.
    #[sabi(last_prefix_field)]
    fn shutdown(&self) -> RResult<(), Fault>;

    /// The phases this instance needs called (the host intersects them with
    /// the descriptor's). Added in 0.5 (after `shutdown`; abi_stable still
    /// refuses a 0.4 library, see docs/abi.md). Default: every phase.
    fn phases(&self) -> crate::Phases {
        crate::Phases::ALL
    }
}

/// An owned, type-erased plugin instance.
pub type PluginBox = PluginObj_TO<'static, RBox<()>>;

/// The root module every native plugin library exports (via [`crate::export_plugin!`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Name, versions and phases of the plugin.
    pub descriptor: extern "C" fn() -> Descriptor,
    /// Makes a new instance from its config, or says why the config is refused.
    #[sabi(last_prefix_field)]
    pub instantiate: extern "C" fn(ctx: InitContext<'_>) -> RResult<PluginBox, Fault>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "covet_plugin";
    const NAME: &'static str = "covet_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
