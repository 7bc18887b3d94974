//! The [`Plugin`] trait: the phases of the contract as plain Rust methods with
//! no-op defaults. Implement the phases you declare in [`Plugin::PHASES`].

use crate::{BodyMode, Config, Flow, Phases, Request, Response, ResponseMut};

/// A native covet plugin. One value of this type is one live instance: the
/// host makes it with [`Plugin::init`], calls its phases from many threads at
/// once (hence `Send + Sync`), and calls [`Plugin::shutdown`] once after it is
/// swapped out and its last request has finished.
///
/// Every phase is synchronous and runs on the host's I/O threads (a plugin
/// that must wait for something implements [`crate::AsyncPlugin`] instead), so it must
/// not block: parse, check, compute, and return. A plugin that must block
/// (file or network I/O, a lock held by a slow thread) sets
/// [`Plugin::BLOCKING`] and the host calls it via `tokio::task::block_in_place`,
/// moving other connections off that thread while it works.
///
/// A panic in any method is caught inside the plugin library and reported to
/// the host, which answers that one request with a 500 and keeps serving.
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The phases this plugin implements; the host calls no other phase and
    /// refuses, at load, a manifest that uses the plugin in a role it lacks.
    const PHASES: Phases;

    /// Whether phase calls may block the calling thread (see the trait docs).
    const BLOCKING: bool = false;

    /// How the plugin reads the request body: buffered by the host (the
    /// default) or as a stream through [`Request::take_body`].
    const BODY: BodyMode = BodyMode::Buffered;

    /// Builds an instance from the manifest's `config:` block. Runs once, off
    /// the request path; an `Err` aborts the load (or the swap, leaving the old
    /// instance serving) and is shown to the operator as the reason.
    fn init(config: Config<'_>) -> Result<Self, String>;

    /// The phases this instance needs called, given its config: the host
    /// asks once, after [`Plugin::init`], and never calls a phase left out
    /// here (nor one outside [`Plugin::PHASES`]). A filter whose config
    /// gives it nothing to do in a phase (header rules for the request
    /// only, say) leaves that phase out and costs nothing there. Roles are
    /// still checked against [`Plugin::PHASES`]. Default: all of them.
    fn phases(&self) -> Phases {
        Self::PHASES
    }

    /// Filter phase, in manifest order, before the handler. Edit the request
    /// (headers, metadata) and return [`Flow::Continue`], or return
    /// [`Flow::Respond`] to answer without calling the handler.
    /// Default: continue.
    fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let _ = req;
        Flow::Continue
    }

    /// Handler phase: makes the response. Default: a 501 saying the plugin
    /// has no handler (the host never calls it unless `PHASES` has `HANDLE`).
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let _ = req;
        Response::text(501, "this plugin has no handler")
    }

    /// Filter phase after the handler (or after a short-circuit), in reverse
    /// manifest order. Edit status, headers or body in place. Default: nothing.
    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        let _ = (req, resp);
    }

    /// Called once when the instance is retired and no request uses it any
    /// more: stop background threads, flush. Default: nothing.
    fn shutdown(&self) {}
}
