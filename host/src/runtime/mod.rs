//! The executor trait: how the pipeline calls a plugin, whatever its kind.
//!
//! Each runtime ([`native`], [`wasm`], [`python`]) turns the four request phases into [`Outcome`]s. A native call
//! is synchronous and comes back [`Outcome::Ready`] with no allocation; a
//! runtime that must await (a WASM instance yielding at an epoch, a Python
//! event loop) returns [`Outcome::Pending`]. The pipeline never asks which
//! kind it is talking to.
//!
//! The Python and WASM runtimes are cargo features (`python`, `wasm`, both
//! default). Without one, its module is a stand-in of the same API that
//! refuses every plugin of that kind (the manifest check refuses them first,
//! with the line and column; see docs/fleet.md).

pub mod artifact;
pub mod native;
mod python_code;
#[cfg(feature = "python")]
pub mod python;
#[cfg(not(feature = "python"))]
#[path = "python/disabled.rs"]
pub mod python;
pub mod services;
#[cfg(feature = "wasm")]
pub mod wasm;
#[cfg(not(feature = "wasm"))]
#[path = "wasm/disabled.rs"]
pub mod wasm;

use std::{future::Future, pin::Pin};

use covet_plugin_api::Phases;

use crate::exchange::{Exchange, HostResponse};

/// A boxed, sendable future borrowed for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of one phase call: ready now, or a future to await.
pub enum Outcome<'a, T> {
    /// The call finished synchronously.
    Ready(Result<T, Fault>),
    /// The call continues asynchronously.
    Pending(BoxFuture<'a, Result<T, Fault>>),
}

/// Waits for an [`Outcome`]. A macro rather than an `async fn` so a ready
/// outcome costs no nested future (and no copy of one) on the request path.
#[macro_export]
macro_rules! resolve {
    ($outcome:expr) => {
        match $outcome {
            $crate::runtime::Outcome::Ready(result) => result,
            $crate::runtime::Outcome::Pending(future) => future.await,
        }
    };
}

/// Why a phase call failed. Every variant becomes a 5xx for that one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The plugin panicked (caught at the boundary).
    Panic(String),
    /// The plugin returned an error, or produced an invalid response.
    Error(String),
    /// The plugin ran past its time limit (`limits.timeout`).
    Timeout(String),
    /// The runtime is saturated (the Python pool's queue is full): 503.
    Overloaded(String),
}

impl Fault {
    /// The fault's message.
    pub fn message(&self) -> &str {
        match self {
            Fault::Panic(m) | Fault::Error(m) | Fault::Timeout(m) | Fault::Overloaded(m) => m,
        }
    }
}

/// What `on_request` decided.
///
/// The responses are boxed: answering early is the rarer outcome, and a
/// `Decision` of two words is returned in registers, where one holding a
/// response inline was copied (`memcpy`) on every filter call.
pub enum Decision {
    /// Go on.
    Continue,
    /// Answer now with this response.
    Respond(Box<HostResponse>),
    /// Answer now with this response, and run the rest of the chain in the
    /// background for a bodiless copy of the request (`Flow::RespondAndContinue`).
    RespondAndContinue(Box<HostResponse>),
}

impl Decision {
    /// Answer now with `resp`.
    pub fn respond(resp: HostResponse) -> Decision {
        Decision::Respond(Box::new(resp))
    }
}

/// What the host knows about a loaded plugin.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The manifest's name for this plugin instance.
    pub name: String,
    /// `native`, `wasm` or `python`.
    pub kind: &'static str,
    /// The plugin's own name (e.g. its crate name).
    pub plugin_name: String,
    /// The plugin's own version.
    pub version: String,
    /// The plugin-api version it was built against.
    pub api_version: String,
    /// The phases it implements.
    pub phases: Phases,
}

/// One live plugin instance, callable by the pipeline.
pub trait Executor: Send + Sync {
    /// Name, kind, versions and phases.
    fn info(&self) -> &PluginInfo;
    /// Filter phase before the handler.
    fn on_request<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, Decision>;
    /// Handler phase.
    fn handle<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, HostResponse>;
    /// Filter phase after the handler.
    fn on_response<'a>(&'a self, ex: &'a mut Exchange, resp: &'a mut HostResponse) -> Outcome<'a, ()>;
    /// Retires the instance; called once, after its last request.
    fn shutdown(&self);
    /// Whether the plugin reads the request body as a stream (a native
    /// plugin declaring `BodyMode::Stream`); a route streams its body only
    /// when every plugin of its chain does.
    fn streams_body(&self) -> bool {
        false
    }
    /// The phases the pipeline calls this instance in: its declared phases,
    /// less those its config leaves it nothing to do in (a native plugin's
    /// `Plugin::phases`). Asked once, when the instance is made.
    fn calls(&self) -> covet_plugin_api::Phases {
        self.info().phases
    }
}

/// Why a plugin of `kind` cannot run in this build, when its runtime's cargo
/// feature is off (`None` when it is compiled in, or `kind` is native).
pub fn missing_runtime(kind: &str) -> Option<String> {
    let left_out = (kind == "python" && !cfg!(feature = "python")) || (kind == "wasm" && !cfg!(feature = "wasm"));
    left_out.then(|| format!("this covet was built without the `{kind}` cargo feature, so it cannot run `kind: {kind}` plugins"))
}

/// How to get a covet that runs `kind` plugins (the help of [`missing_runtime`]).
pub fn missing_runtime_help(kind: &str) -> String {
    format!(
        "rebuild with the feature: `cargo build -p covet --features {kind}` (or default features), \
         or use the full image (`docker build --build-arg COVET_FEATURES=full`)"
    )
}

#[cfg(test)]
mod feature_tests {
    use super::missing_runtime;

    #[test]
    fn a_runtime_is_refused_exactly_when_its_feature_is_off() {
        assert_eq!(missing_runtime("python").is_some(), !cfg!(feature = "python"));
        assert_eq!(missing_runtime("wasm").is_some(), !cfg!(feature = "wasm"));
        assert_eq!(missing_runtime("native"), None);
    }
}
