//! What [`crate::export_plugin!`] expands to: an adapter that turns a
//! [`Plugin`] into the FFI [`PluginObj`] and catches every panic before it
//! reaches the boundary (unwinding across `extern "C"` would abort the host).

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr, RString},
};

use crate::{
    AsyncPlugin, BodyMode, Config, Flow, Phases, Plugin, Request, Response, ResponseMut,
    ffi::{
        BorrowingFfiFuture, Descriptor, Fault, FaultKind, FfiFlow, InitContext, PhaseResult, PluginBox, PluginObj,
        PluginObj_TO, RequestRef, ResponseRef,
    },
};

pub use abi_stable;

/// The symbol abi_stable looks up in a plugin library (checked by a test
/// against `abi_stable::library::ROOT_MODULE_LOADER_NAME`).
pub const LOADER_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Wraps a [`Plugin`] so the host can call it through [`PluginObj`].
pub struct Adapter<P>(P);

/// Wraps an [`AsyncPlugin`] so the host can call it through [`PluginObj`].
/// Each pending phase holds a reference count on the plugin value, so the
/// future never outlives what it borrows.
pub struct AsyncAdapter<P>(std::sync::Arc<P>);

fn guard<T>(call: impl FnOnce() -> T) -> RResult<T, Fault> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => ROk(value),
        Err(payload) => RErr(panic_fault(&payload)),
    }
}

fn panic_fault(payload: &Box<dyn std::any::Any + Send>) -> Fault {
    Fault { kind: FaultKind::Panic, message: panic_message(payload).into() }
}

/// The text of a panic payload.
pub fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn flow(flow: Flow) -> FfiFlow {
    match flow {
        Flow::Continue => FfiFlow::Continue,
        Flow::Respond(resp) => FfiFlow::Respond(resp),
        Flow::RespondAndContinue(resp) => FfiFlow::RespondAndContinue(resp),
    }
}

impl<P: Plugin> PluginObj for Adapter<P> {
    fn on_request<'a>(&self, req: RequestRef<'a>) -> PhaseResult<'a, FfiFlow> {
        PhaseResult::Ready(guard(|| flow(self.0.on_request(&mut Request::from_ffi(req)))))
    }

    fn handle<'a>(&self, req: RequestRef<'a>) -> PhaseResult<'a, Response> {
        PhaseResult::Ready(guard(|| self.0.handle(&mut Request::from_ffi(req))))
    }

    fn on_response<'a>(&self, req: RequestRef<'a>, resp: ResponseRef<'a>) -> PhaseResult<'a, ()> {
        PhaseResult::Ready(guard(|| self.0.on_response(&mut Request::from_ffi(req), &mut ResponseMut::from_ffi(resp))))
    }

    fn shutdown(&self) -> RResult<(), Fault> {
        guard(|| self.0.shutdown())
    }

    fn phases(&self) -> Phases {
        // A panic here is a plugin bug; every phase is the safe answer.
        catch_unwind(AssertUnwindSafe(|| self.0.phases())).unwrap_or(Phases::ALL)
    }
}

/// A future whose every poll runs under `catch_unwind`: a panic ends it with
/// a `Panic` fault instead of unwinding into the host.
struct Guarded<F>(F);

impl<F: Future> Future for Guarded<F> {
    type Output = RResult<F::Output, Fault>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|g| &mut g.0) };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(ROk(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(RErr(panic_fault(&payload))),
        }
    }
}

fn pending<'a, T: 'a>(fut: impl Future<Output = T> + Send + 'a) -> PhaseResult<'a, T> {
    PhaseResult::Pending(BorrowingFfiFuture::new(Guarded(fut)))
}

impl<P: AsyncPlugin> PluginObj for AsyncAdapter<P> {
    fn on_request<'a>(&self, req: RequestRef<'a>) -> PhaseResult<'a, FfiFlow> {
        let mut req = Request::from_ffi(req);
        match guard(|| self.0.on_request_now(&mut req)) {
            ROk(Some(now)) => PhaseResult::Ready(ROk(flow(now))),
            RErr(fault) => PhaseResult::Ready(RErr(fault)),
            ROk(None) => {
                let plugin = self.0.clone();
                pending(async move { flow(plugin.on_request(&mut req).await) })
            }
        }
    }

    fn handle<'a>(&self, req: RequestRef<'a>) -> PhaseResult<'a, Response> {
        let mut req = Request::from_ffi(req);
        match guard(|| self.0.handle_now(&mut req)) {
            ROk(Some(now)) => PhaseResult::Ready(ROk(now)),
            RErr(fault) => PhaseResult::Ready(RErr(fault)),
            ROk(None) => {
                let plugin = self.0.clone();
                pending(async move { plugin.handle(&mut req).await })
            }
        }
    }

    fn on_response<'a>(&self, req: RequestRef<'a>, resp: ResponseRef<'a>) -> PhaseResult<'a, ()> {
        let (mut req, mut resp) = (Request::from_ffi(req), ResponseMut::from_ffi(resp));
        match guard(|| self.0.on_response_now(&mut req, &mut resp)) {
            ROk(true) => PhaseResult::Ready(ROk(())),
            RErr(fault) => PhaseResult::Ready(RErr(fault)),
            ROk(false) => {
                let plugin = self.0.clone();
                pending(async move { plugin.on_response(&mut req, &mut resp).await })
            }
        }
    }

    fn shutdown(&self) -> RResult<(), Fault> {
        guard(|| self.0.shutdown())
    }

    fn phases(&self) -> Phases {
        // A panic here is a plugin bug; every phase is the safe answer.
        catch_unwind(AssertUnwindSafe(|| self.0.phases())).unwrap_or(Phases::ALL)
    }
}

/// How the export macro sees a plugin type, sync or async.
pub trait Exportable: Send + Sync + Sized + 'static {
    /// The phases it implements.
    const PHASES: Phases;
    /// Whether phase calls may block.
    const BLOCKING: bool;
    /// How it reads the request body.
    const BODY: BodyMode;
    /// Whether it is an [`AsyncPlugin`].
    const ASYNC: bool;
    /// Its `init`.
    fn init(config: Config<'_>) -> Result<Self, String>;
    /// Boxes it as the FFI object.
    fn into_ffi(self) -> PluginBox;
}

/// Marks a [`Plugin`] for export (the `export_plugin!(T)` form).
pub struct SyncExport<P>(pub P);
/// Marks an [`AsyncPlugin`] for export (the `export_plugin!(async T)` form).
pub struct AsyncExport<P>(pub P);

impl<P: Plugin> Exportable for SyncExport<P> {
    const PHASES: Phases = P::PHASES;
    const BLOCKING: bool = P::BLOCKING;
    const BODY: BodyMode = P::BODY;
    const ASYNC: bool = false;
    fn init(config: Config<'_>) -> Result<Self, String> {
        P::init(config).map(SyncExport)
    }
    fn into_ffi(self) -> PluginBox {
        PluginObj_TO::from_value(Adapter(self.0), TD_Opaque)
    }
}

impl<P: AsyncPlugin> Exportable for AsyncExport<P> {
    const PHASES: Phases = P::PHASES;
    const BLOCKING: bool = false;
    const BODY: BodyMode = P::BODY;
    const ASYNC: bool = true;
    fn init(config: Config<'_>) -> Result<Self, String> {
        P::init(config).map(AsyncExport)
    }
    fn into_ffi(self) -> PluginBox {
        PluginObj_TO::from_value(AsyncAdapter(std::sync::Arc::new(self.0)), TD_Opaque)
    }
}

/// The `instantiate` entry of the root module for plugin type `P`.
pub extern "C" fn instantiate<P: Exportable>(ctx: InitContext<'_>) -> RResult<PluginBox, Fault> {
    let base_dir = std::path::Path::new(ctx.base_dir.as_str());
    let host = ctx.host.into_option().map_or_else(crate::host::Host::unavailable, |ops| crate::host::Host::from_ffi(ops.clone()));
    let made = guard(|| P::init(Config::new(ctx.config_json.as_str(), base_dir, ctx.instance.as_str()).with_host(host)));
    match made {
        ROk(Ok(plugin)) => ROk(plugin.into_ffi()),
        ROk(Err(message)) => RErr(Fault { kind: FaultKind::Error, message: RString::from(message) }),
        RErr(fault) => RErr(fault),
    }
}

/// The descriptor of plugin type `P` with the crate's name and version.
pub fn descriptor<P: Exportable>(name: &'static str, version: &'static str) -> Descriptor {
    Descriptor {
        name: RStr::from_str(name),
        version: RStr::from_str(version),
        api_version: RStr::from_str(crate::ffi::ABI_VERSION),
        phases: P::PHASES,
        blocking: P::BLOCKING,
        body: P::BODY,
        asynchronous: P::ASYNC,
    }
}

/// Exports a [`Plugin`] (or, with `async`, an [`AsyncPlugin`]) type as the
/// library's covet plugin. Use once per cdylib:
///
/// ```ignore
/// covet_plugin_api::export_plugin!(MyPlugin);
/// covet_plugin_api::export_plugin!(async MyAsyncPlugin);
/// ```
///
/// The plugin's name and version are the crate's (`CARGO_PKG_NAME`,
/// `CARGO_PKG_VERSION`); the ABI version is the plugin-api it was built against.
#[macro_export]
macro_rules! export_plugin {
    (async $plugin:ty) => {
        $crate::__export_plugin_as!($crate::__export::AsyncExport<$plugin>);
    };
    ($plugin:ty) => {
        $crate::__export_plugin_as!($crate::__export::SyncExport<$plugin>);
    };
}

/// The body of [`export_plugin!`] for an [`Exportable`] wrapper type.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_as {
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
