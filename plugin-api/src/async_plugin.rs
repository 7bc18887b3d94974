//! [`AsyncPlugin`]: the phases as `async fn`s, for a plugin that waits
//! (a timer, a host service, a body read chunk by chunk). Exported with
//! `export_plugin!(async MyPlugin)`.

use std::future::Future;

use crate::{BodyMode, Config, Flow, Phases, Request, Response, ResponseMut};

/// A native covet plugin whose phases may wait. Write the phases as
/// `async fn` (the futures must be `Send`: the host may poll them on any
/// of its threads):
///
/// ```
/// use covet_plugin_api::{export_plugin, AsyncPlugin, Config, Phases, Request, Response};
///
/// struct Hello;
///
/// impl AsyncPlugin for Hello {
///     const PHASES: Phases = Phases::HANDLE;
///     fn init(_: Config<'_>) -> Result<Self, String> {
///         Ok(Hello)
///     }
///     async fn handle(&self, req: &mut Request<'_>) -> Response {
///         let body = req.take_body().collect(1 << 20).await.unwrap_or_default();
///         Response::text(200, format!("{} bytes", body.len()))
///     }
/// }
///
/// export_plugin!(async Hello);
/// ```
///
/// The host polls a phase's future with its own waker (it crosses the FFI
/// boundary); nothing here needs a runtime of the plugin's own. Every poll
/// runs under `catch_unwind`: a panic is a 500 for that request. When the
/// client goes away the future is dropped where it waits, so destructors
/// (guards, `Drop` impls) are the place for cleanup. Each call costs one
/// allocation (the boxed future) over a synchronous [`crate::Plugin`].
pub trait AsyncPlugin: Send + Sync + Sized + 'static {
    /// The phases this plugin implements (see [`crate::Plugin::PHASES`]).
    const PHASES: Phases;

    /// How the plugin reads the request body (see [`crate::Plugin::BODY`]).
    const BODY: BodyMode = BodyMode::Buffered;

    /// Builds an instance from the manifest's `config:` block (synchronous:
    /// it runs once, off the request path).
    fn init(config: Config<'_>) -> Result<Self, String>;

    /// The phases this instance needs called (see [`crate::Plugin::phases`]).
    /// Default: all of [`AsyncPlugin::PHASES`].
    fn phases(&self) -> Phases {
        Self::PHASES
    }

    /// Fast path of [`AsyncPlugin::on_request`]: decide now, without a
    /// future, when no wait is needed (`Some`); `None` runs `on_request`.
    /// The host then gets a ready result with no allocation, as from a
    /// synchronous [`crate::Plugin`]. Implement it when the common case
    /// never waits (a cached token, an in-process counter) and keep
    /// `on_request` for the case that does. Default: `None`.
    fn on_request_now(&self, req: &mut Request<'_>) -> Option<Flow> {
        let _ = req;
        None
    }

    /// Fast path of [`AsyncPlugin::handle`] (see [`AsyncPlugin::on_request_now`]). Default: `None`.
    fn handle_now(&self, req: &mut Request<'_>) -> Option<Response> {
        let _ = req;
        None
    }

    /// Fast path of [`AsyncPlugin::on_response`]: `true` when the edits are
    /// done and `on_response` need not run (see [`AsyncPlugin::on_request_now`]).
    /// Default: `false`.
    fn on_response_now(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) -> bool {
        let _ = (req, resp);
        false
    }

    /// Filter phase before the handler. Default: continue.
    fn on_request(&self, req: &mut Request<'_>) -> impl Future<Output = Flow> + Send {
        let _ = req;
        async { Flow::Continue }
    }

    /// Handler phase. Default: a 501 (never called unless `PHASES` has `HANDLE`).
    fn handle(&self, req: &mut Request<'_>) -> impl Future<Output = Response> + Send {
        let _ = req;
        async { Response::text(501, "this plugin has no handler") }
    }

    /// Filter phase after the handler, in reverse manifest order. Default: nothing.
    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) -> impl Future<Output = ()> + Send {
        let _ = (req, resp);
        async {}
    }

    /// Called once when the instance is retired and idle. Default: nothing.
    fn shutdown(&self) {}
}
