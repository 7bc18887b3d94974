//! What the fuzz targets (`fuzz/`, docs/fuzzing.md) reach of the WIT
//! binding: a store's [`Ctx`] and the `covet:plugin/types` host traits that
//! marshal the lent [`crate::exchange::Exchange`] and
//! [`crate::exchange::HostResponse`] into WIT values. Not an API.

pub use super::bindings::covet::plugin::types::{HostOutgoingResponse, HostRequest};
pub use super::bindings::{HttpVersion as WitVersion, RequestHandle, Response as WitResponse, ResponseHandle};
pub use super::sandbox::Ctx;
pub use wasmtime::{Store, component::Resource};

/// A store as a plugin instance gets one (default sandbox, no grants), on
/// the host's engine; lend it an exchange through `store.data_mut()`.
pub fn store() -> Result<Store<Ctx>, String> {
    let sandbox = super::Sandbox::new("fuzz", &Default::default(), super::services::WasmServices::none("fuzz")?);
    sandbox.store(&super::engine::runtime()?.engine)
}
