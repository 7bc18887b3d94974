//! The FFI-stable layer: the root module a plugin library exports and the
//! `#[sabi_trait]` objects that cross the boundary in both directions.
//!
//! Plugin authors do not use this module directly; [`crate::export_plugin!`]
//! and the wrappers in [`crate::request`] sit on top of it. It is public
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

use crate::{Phases, response::Response};

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
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct InitContext<'a> {
    /// The manifest's `config:` block as JSON (`null` when absent).
    pub config_json: RStr<'a>,
    /// The manifest's directory, absolute: relative paths in the config are relative to it.
    pub base_dir: RStr<'a>,
    /// The manifest's name for this plugin instance.
    pub instance: RStr<'a>,
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
}

/// The host's view of an in-flight request, handed to every phase call.
///
/// Implemented by the host; every method borrows from host memory, so reading
/// a header costs no copy.
#[sabi_trait]
pub trait RequestOps {
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
    #[sabi(last_prefix_field)]
    fn request_id(&self) -> RStr<'_>;
}

/// The host's view of the response on its way out, for `on_response`.
#[sabi_trait]
pub trait ResponseOps {
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
    #[sabi(last_prefix_field)]
    fn set_body(&mut self, body: RVec<u8>);
}

/// A borrowed request view as passed across the boundary.
pub type RequestRef<'a> = RequestOps_TO<'a, RMut<'a, ()>>;
/// A borrowed response view as passed across the boundary.
pub type ResponseRef<'a> = ResponseOps_TO<'a, RMut<'a, ()>>;

/// One live plugin instance, made by [`PluginMod::instantiate`].
#[sabi_trait]
pub trait PluginObj: Send + Sync {
    /// Filter phase before the handler.
    fn on_request(&self, req: RequestRef<'_>) -> RResult<FfiFlow, Fault>;
    /// Handler phase.
    fn handle(&self, req: RequestRef<'_>) -> RResult<Response, Fault>;
    /// Filter phase after the handler, in reverse filter order.
    fn on_response(&self, req: RequestRef<'_>, resp: ResponseRef<'_>) -> RResult<(), Fault>;
    /// Called once after the instance is retired and its last request ended.
    #[sabi(last_prefix_field)]
    fn shutdown(&self) -> RResult<(), Fault>;
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
