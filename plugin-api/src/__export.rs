//! What [`crate::export_plugin!`] expands to: an adapter that turns a
//! [`Plugin`] into the FFI [`PluginObj`] and catches every panic before it
//! reaches the boundary (unwinding across `extern "C"` would abort the host).

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr, RString},
};

use crate::{
    Config, Flow, Plugin, Request, Response, ResponseMut,
    ffi::{Descriptor, Fault, FaultKind, InitContext, FfiFlow, PluginBox, PluginObj, PluginObj_TO, RequestRef, ResponseRef},
};

pub use abi_stable;

/// The symbol abi_stable looks up in a plugin library (checked by a test
/// against `abi_stable::library::ROOT_MODULE_LOADER_NAME`).
pub const LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Wraps a plugin value so the host can call it through [`PluginObj`].
pub struct Adapter<P>(P);

fn guard<T>(call: impl FnOnce() -> T) -> RResult<T, Fault> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => ROk(value),
        Err(payload) => RErr(Fault { kind: FaultKind::Panic, message: panic_message(&payload).into() }),
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

impl<P: Plugin> PluginObj for Adapter<P> {
    fn on_request(&self, req: RequestRef<'_>) -> RResult<FfiFlow, Fault> {
        guard(|| match self.0.on_request(&mut Request::from_ffi(req)) {
            Flow::Continue => FfiFlow::Continue,
            Flow::Respond(resp) => FfiFlow::Respond(resp),
        })
    }

    fn handle(&self, req: RequestRef<'_>) -> RResult<Response, Fault> {
        guard(|| self.0.handle(&mut Request::from_ffi(req)))
    }

    fn on_response(&self, req: RequestRef<'_>, resp: ResponseRef<'_>) -> RResult<(), Fault> {
        guard(|| self.0.on_response(&mut Request::from_ffi(req), &mut ResponseMut::from_ffi(resp)))
    }

    fn shutdown(&self) -> RResult<(), Fault> {
        guard(|| self.0.shutdown())
    }
}

/// The `instantiate` entry of the root module for plugin type `P`.
pub extern "C" fn instantiate<P: Plugin>(ctx: InitContext<'_>) -> RResult<PluginBox, Fault> {
    let base_dir = std::path::Path::new(ctx.base_dir.as_str());
    let made = guard(|| P::init(Config::new(ctx.config_json.as_str(), base_dir, ctx.instance.as_str())));
    match made {
        ROk(Ok(plugin)) => ROk(PluginObj_TO::from_value(Adapter(plugin), TD_Opaque)),
        ROk(Err(message)) => RErr(Fault { kind: FaultKind::Error, message: RString::from(message) }),
        RErr(fault) => RErr(fault),
    }
}

/// The descriptor of plugin type `P` with the crate's name and version.
pub fn descriptor<P: Plugin>(name: &'static str, version: &'static str) -> Descriptor {
    Descriptor {
        name: RStr::from_str(name),
        version: RStr::from_str(version),
        api_version: RStr::from_str(crate::ffi::ABI_VERSION),
        phases: P::PHASES,
        blocking: P::BLOCKING,
    }
}

/// Exports a [`Plugin`] type as the library's covet plugin. Use once per cdylib:
///
/// ```ignore
/// covet_plugin_api::export_plugin!(MyPlugin);
/// ```
///
/// The plugin's name and version are the crate's (`CARGO_PKG_NAME`,
/// `CARGO_PKG_VERSION`); the ABI version is the plugin-api it was built against.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            use $crate::__export::abi_stable::{library, prefix_type::PrefixTypeTrait};

            extern "C" fn __covet_descriptor() -> $crate::ffi::Descriptor {
                $crate::__export::descriptor::<$plugin>(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            }

            fn __covet_root_module() -> $crate::ffi::PluginMod_Ref {
                $crate::ffi::PluginMod {
                    descriptor: __covet_descriptor,
                    instantiate: $crate::__export::instantiate::<$plugin>,
                }
                .leak_into_prefix()
            }

            extern "C" fn __covet_erased_module() -> library::RootModuleResult {
                library::__call_root_module_loader(__covet_root_module)
            }

            #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
            pub static __COVET_LIB_HEADER: library::LibHeader = unsafe {
                library::LibHeader::from_constructor::<$crate::ffi::PluginMod_Ref>(
                    __covet_erased_module,
                    library::CheckTypeLayout::Yes,
                )
            };
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn loader_symbol_matches_abi_stable() {
        assert_eq!(super::LOADER_SYMBOL, abi_stable::library::ROOT_MODULE_LOADER_NAME);
    }
}
