//! The native runtime: loads a plugin `cdylib` with abi_stable, checks its
//! ABI, makes instances, and calls their phases through the FFI views.
//!
//! Libraries are never unloaded (Rust cdylibs are not safe to `dlclose`).
//! A phase call returns `Ready` (a synchronous plugin: [`Outcome::Ready`],
//! no allocation) or `Pending` with an FFI future, which becomes
//! [`Outcome::Pending`]: the pipeline awaits it with the task's waker, and
//! dropping it (the client went away) drops the plugin's future in the
//! plugin library. A plugin that declares `blocking` is called
//! through `block_in_place` so the reactor thread hands its other work away;
//! on a current-thread runtime (the io_uring backend's per-core runtimes),
//! where `block_in_place` would panic, it is called in place — which the
//! io_uring backend avoids by running requests on the main runtime while a
//! blocking instance is live ([`blocking_plugins_live`]).

pub mod body;
pub(crate) mod span;

use std::path::{Path, PathBuf};

use abi_stable::{
    library::{LibraryError, lib_header_from_path},
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr},
};
use covet_plugin_api::{
    BodyMode, Phases,
    ffi::{
        ABI_VERSION, Descriptor, Fault as FfiFault, FaultKind, FfiFlow, InitContext, PhaseResult, PluginBox, PluginMod_Ref,
        RequestOps_TO, ResponseOps_TO,
    },
};

use super::{Decision, Executor, Fault, Outcome, PluginInfo};
use crate::{
    error::HostError,
    exchange::{ConvertCache, Exchange, HostResponse},
};

/// A loaded plugin library: its root module and what it says about itself.
#[derive(Clone)]
pub struct NativeLibrary {
    module: PluginMod_Ref,
    descriptor: Descriptor,
    path: PathBuf,
}

impl NativeLibrary {
    /// Opens the library at `path` and checks that its ABI matches this host.
    pub fn load(plugin: &str, path: &Path) -> Result<NativeLibrary, HostError> {
        let refuse = |reason: String| HostError::PluginLoad { plugin: plugin.into(), path: path.into(), reason };
        let header = lib_header_from_path(path).map_err(|e| refuse(describe_load_error(e)))?;
        let module = header.init_root_module::<PluginMod_Ref>().map_err(|e| refuse(describe_load_error(e)))?;
        let descriptor = (module.descriptor())();
        Ok(NativeLibrary { module, descriptor, path: path.into() })
    }

    /// What the plugin declared: name, versions, phases.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The artifact the library was loaded for.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same library, reported as loaded for the artifact at `path`.
    pub fn with_path(&self, path: &Path) -> NativeLibrary {
        NativeLibrary { path: path.into(), ..self.clone() }
    }

    /// Makes a new instance from its JSON config (runs the plugin's `init`);
    /// relative paths in the config resolve against `base_dir`.
    pub fn instantiate(&self, name: &str, config_json: &str, base_dir: &Path) -> Result<NativeExecutor, HostError> {
        self.instantiate_with(name, config_json, base_dir, None)
    }

    /// [`NativeLibrary::instantiate`] with the instance's host services
    /// (`config.host()` in the plugin); their tasks end at the instance's shutdown.
    pub fn instantiate_with(
        &self,
        name: &str,
        config_json: &str,
        base_dir: &Path,
        services: Option<covet_services::PluginServices>,
    ) -> Result<NativeExecutor, HostError> {
        let tasks = services.as_ref().map(|s| s.tasks.clone());
        let host = services.map(crate::runtime::services::NativeHost::into_ffi);
        let base_dir = base_dir.to_string_lossy();
        let ctx = InitContext {
            config_json: RStr::from_str(config_json),
            base_dir: RStr::from_str(&base_dir),
            instance: RStr::from_str(name),
            host: host.as_ref().into(),
        };
        let made = (self.module.instantiate())(ctx);
        let instance = made.into_result().map_err(|fault| HostError::PluginInit {
            plugin: name.into(),
            reason: describe_fault(&fault),
        })?;
        let (info, blocking) = (self.info(name), self.descriptor.blocking);
        if blocking {
            BLOCKING_LIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let streams_body = self.descriptor.body == BodyMode::Stream;
        let calls = instance.phases().intersection(self.descriptor.phases);
        Ok(NativeExecutor { instance, info, calls, blocking, streams_body, responses: ConvertCache::default(), tasks })
    }

    fn info(&self, name: &str) -> PluginInfo {
        let d = &self.descriptor;
        PluginInfo {
            name: name.into(),
            kind: "native",
            plugin_name: d.name.to_string(),
            version: d.version.to_string(),
            api_version: d.api_version.to_string(),
            phases: d.phases,
        }
    }
}

fn describe_fault(fault: &FfiFault) -> String {
    match fault.kind {
        FaultKind::Panic => format!("init panicked: {}", fault.message),
        FaultKind::Error => fault.message.to_string(),
    }
}

/// Turns abi_stable's load errors into sentences an operator can act on.
fn describe_load_error(err: LibraryError) -> String {
    match err {
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => format!(
            "incompatible plugin ABI: the plugin was built against covet-plugin-api {actual_version}, \
             but this host speaks covet-plugin-api {expected_version} (ABI {ABI_VERSION}); \
             rebuild the plugin against covet-plugin-api {}.{}",
            expected_version.major, expected_version.minor
        ),
        LibraryError::AbiInstability(details) => format!(
            "incompatible plugin ABI: the plugin's covet-plugin-api types differ from this host's \
             (covet-plugin-api {ABI_VERSION}); rebuild the plugin. Details: {details}"
        ),
        LibraryError::OpenError { err, .. } => format!("cannot open the library: {err}"),
        LibraryError::GetSymbolError { .. } => {
            "not a covet plugin: the library exports no covet root module (use covet_plugin_api::export_plugin!)"
                .into()
        }
        other => other.to_string(),
    }
}

/// Live instances of `blocking` native plugins (the io_uring backend hands
/// requests to the main runtime while there are any: see docs/io.md).
static BLOCKING_LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether any `blocking` native plugin instance is live.
pub fn blocking_plugins_live() -> bool {
    BLOCKING_LIVE.load(std::sync::atomic::Ordering::Relaxed) > 0
}

impl Drop for NativeExecutor {
    fn drop(&mut self) {
        if let Some(tasks) = &self.tasks {
            tasks.shutdown();
        }
        if self.blocking {
            BLOCKING_LIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Whether `block_in_place` may be used here (it panics elsewhere).
fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// One live native plugin instance.
pub struct NativeExecutor {
    instance: PluginBox,
    info: PluginInfo,
    /// The phases the instance asked to be called in (`PluginObj::phases`).
    calls: Phases,
    blocking: bool,
    streams_body: bool,
    responses: ConvertCache,
    /// The instance's host-service tasks, aborted at its shutdown.
    tasks: Option<covet_services::tasks::TaskSet>,
}

fn fault(fault: FfiFault) -> Fault {
    match fault.kind {
        FaultKind::Panic => Fault::Panic(fault.message.into_string()),
        FaultKind::Error => Fault::Error(fault.message.into_string()),
    }
}

fn result<T>(result: RResult<T, FfiFault>) -> Result<T, Fault> {
    match result {
        ROk(v) => Ok(v),
        RErr(f) => Err(fault(f)),
    }
}

impl NativeExecutor {
    /// Makes the call (off the reactor for a `blocking` plugin) and maps its
    /// result with `done`, now or when the plugin's future finishes.
    fn call<'a, T: 'a, U>(
        &self,
        f: impl FnOnce() -> PhaseResult<'a, T>,
        done: impl FnOnce(T) -> Result<U, Fault> + Send + 'a,
    ) -> Outcome<'a, U> {
        let called = if self.blocking && on_multi_thread_runtime() { tokio::task::block_in_place(f) } else { f() };
        match called {
            PhaseResult::Ready(r) => Outcome::Ready(result(r).and_then(done)),
            PhaseResult::Pending(future) => Outcome::Pending(Box::pin(async move { result(future.await).and_then(done) })),
        }
    }
}

impl Executor for NativeExecutor {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn streams_body(&self) -> bool {
        self.streams_body
    }

    fn calls(&self) -> Phases {
        self.calls
    }

    fn on_request<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, Decision> {
        self.call(
            || self.instance.on_request(RequestOps_TO::from_ptr(ex, TD_Opaque)),
            |flow| match flow {
                FfiFlow::Continue => Ok(Decision::Continue),
                FfiFlow::Respond(resp) => HostResponse::from_plugin(resp).map(Decision::respond).map_err(Fault::Error),
                FfiFlow::RespondAndContinue(resp) => {
                    HostResponse::from_plugin(resp).map(|r| Decision::RespondAndContinue(Box::new(r))).map_err(Fault::Error)
                }
            },
        )
    }

    fn handle<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, HostResponse> {
        let cache = &self.responses;
        self.call(
            || self.instance.handle(RequestOps_TO::from_ptr(ex, TD_Opaque)),
            move |r| HostResponse::from_plugin_cached(r, cache).map_err(Fault::Error),
        )
    }

    fn on_response<'a>(&'a self, ex: &'a mut Exchange, resp: &'a mut HostResponse) -> Outcome<'a, ()> {
        let req = RequestOps_TO::from_ptr(ex, TD_Opaque);
        let res = ResponseOps_TO::from_ptr(resp, TD_Opaque);
        self.call(|| self.instance.on_response(req, res), Ok)
    }

    fn shutdown(&self) {
        if let Some(tasks) = &self.tasks {
            tasks.shutdown();
        }
        let done = if self.blocking && on_multi_thread_runtime() {
            tokio::task::block_in_place(|| self.instance.shutdown())
        } else {
            self.instance.shutdown()
        };
        if let Err(fault) = result(done) {
            tracing::error!(plugin = %self.info.name, "plugin shutdown failed: {}", fault.message());
        }
    }
}
