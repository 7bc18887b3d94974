//! The pipeline: one request through a route's chain.
//!
//! ```text
//! on_request(f1) → on_request(f2) → … → handle(h) → … → on_response(f2) → on_response(f1)
//!        └── Respond(r) short-circuits: the handler is skipped and the filters
//!            that already passed run on_response on r, in reverse order.
//! ```
//! `RespondAndContinue(r)` answers like `Respond(r)`; when the request has
//! no body, the rest of the chain (the later filters, the handler, then the
//! issuing filter's `on_response`) also runs in the background on a
//! bodiless copy of the request ([`crate::background`]).
//!
//! A plugin fault (panic or trap, error, invalid response) becomes a 500 with
//! the structured body (a timeout a 504), is counted on the plugin, and
//! logged with its name.
//!
//! With tracing on, the request's server span is passed in and each phase
//! call gets a child span (`"{plugin} {phase}"`, attributes
//! `covet.plugin.{name,kind,phase,version}`, status Error with the fault
//! text on a fault): it is in `ex.span` while the call runs, and current
//! ([`covet_telemetry::current`]) while its future is polled, so outbound
//! calls the plugin makes are its children. With tracing off the only cost
//! is one `Option` check per call.

use std::sync::Arc;

use covet_telemetry::Span;

use crate::{
    exchange::{Exchange, HostResponse},
    otel::plugin_span::{begin, end},
    problem,
    registry::{Instance, PluginStats, Slot},
    runtime::{Decision, Fault},
};
use covet_plugin_api::Phases;

/// A route's chain: filter slots in manifest order and the handler slot.
pub struct Chain {
    /// Filters.
    pub filters: Vec<Arc<Slot>>,
    /// Handler.
    pub handler: Arc<Slot>,
}

/// Time spent in one plugin for one request (for the access log).
pub struct Timing {
    /// Manifest name.
    pub plugin: Arc<str>,
    /// Microseconds across all its phases.
    pub micros: u64,
}

/// Per-request plugin timings, only collected when the access log is on.
pub type Timings = Option<Vec<Timing>>;

/// The live instances of a chain, held for one request: a swap during the
/// request (even while a phase is pending) leaves it on these instances.
#[derive(Clone)]
pub struct Live {
    filters: Vec<Arc<Instance>>,
    handler: Arc<Instance>,
}

impl Live {
    /// Loads the chain's instances; `None` when one is not live yet.
    pub fn load(chain: &Chain) -> Option<Live> {
        let filters = chain.filters.iter().map(|s| s.load()).collect::<Option<_>>()?;
        Some(Live { filters, handler: chain.handler.load()? })
    }

    /// The part of the chain a background run needs when filter `issuer`
    /// answered with `RespondAndContinue`: the same live instances (so a
    /// swap meanwhile leaves the run on them).
    pub(crate) fn rest(&self, issuer: usize) -> crate::background::Rest {
        crate::background::Rest {
            issuer: self.filters[issuer].clone(),
            later: self.filters[issuer + 1..].to_vec(),
            handler: self.handler.clone(),
        }
    }

    /// Whether every plugin of the chain reads the request body as a stream.
    pub fn streams_body(&self) -> bool {
        self.handler.executor.streams_body() && self.filters.iter().all(|f| f.executor.streams_body())
    }
}

/// Calls one phase: untraced when `$server` is `None`; else inside a child
/// span of the server span, kept in `ex.span` and current during the call.
macro_rules! call {
    ($server:expr, $instance:expr, $phase:literal, $ex:ident, $call:expr) => {
        match $server {
            None => crate::resolve!($call),
            Some(server) => {
                let span = begin(server, $instance, $phase, $ex);
                // Current while the call runs and, when it is pending, while its future is polled.
                let outcome = match covet_telemetry::current::sync_scope_ref(&span, || $call) {
                    crate::runtime::Outcome::Ready(result) => result,
                    crate::runtime::Outcome::Pending(future) => covet_telemetry::current::scope_ref(&span, future).await,
                };
                end(&span, outcome.as_ref().err(), $ex);
                outcome
            }
        }
    };
}

/// Runs the chain on its live instances; `server` is the request's server
/// span when tracing is on.
pub async fn run(live: &Live, ex: &mut Exchange, timings: &mut Timings, server: Option<&Span>) -> HostResponse {
    let mut clock = crate::clock::now_ns();
    let (passed, early) = request_phase(&live.filters, ex, timings, server, &mut clock).await;
    let mut resp = match early {
        None => handle_phase(&live.handler, ex, timings, server, &mut clock).await.0,
        Some(Early::Respond(resp) | Early::Fault(resp)) => resp,
        Some(Early::Background(resp)) => {
            crate::background::start(live, passed, ex);
            clock = crate::clock::now_ns();
            resp
        }
    };
    for filter in live.filters[..passed].iter().rev().filter(|f| f.calls.contains(Phases::ON_RESPONSE)) {
        response_phase(filter, ex, &mut resp, timings, server, &mut clock).await;
    }
    crate::metrics::cache::count(&ex.route, &ex.metadata);
    resp
}

/// Why the request phase stopped before the handler.
pub(crate) enum Early {
    /// A filter answered (`Respond`).
    Respond(HostResponse),
    /// A filter answered and asked for the rest of the chain in the background (`RespondAndContinue`).
    Background(HostResponse),
    /// A filter faulted; the response is the fault's.
    Fault(HostResponse),
}

/// Runs `on_request` of `filters` in order; returns how many passed
/// (the index of the one that stopped) and why it stopped, if one did.
/// `clock`: when the first call starts (see [`record`]).
pub(crate) async fn request_phase(
    filters: &[Arc<Instance>],
    ex: &mut Exchange,
    timings: &mut Timings,
    server: Option<&Span>,
    clock: &mut u64,
) -> (usize, Option<Early>) {
    let buffered = ex.body_stream.is_none();
    for (i, filter) in filters.iter().enumerate() {
        if !filter.calls.contains(Phases::ON_REQUEST) {
            continue;
        }
        let outcome = call!(server, filter, "on_request", ex, filter.executor.on_request(ex));
        record(timings, filter, clock);
        match outcome {
            Ok(Decision::Continue) if buffered && ex.body_stream.is_some() => {
                if let Err(fault) = Box::pin(refill(ex)).await {
                    return (i, Some(Early::Fault(fault_response(filter, "on_request", &fault, ex))));
                }
                // The refill is the host's time, not the next plugin's.
                *clock = crate::clock::now_ns();
            }
            Ok(Decision::Continue) => {}
            Ok(Decision::Respond(resp)) => return (i, Some(Early::Respond(*resp))),
            Ok(Decision::RespondAndContinue(resp)) => return (i, Some(Early::Background(*resp))),
            Err(fault) => return (i, Some(Early::Fault(fault_response(filter, "on_request", &fault, ex)))),
        }
    }
    (filters.len(), None)
}

/// On a buffered route (some plugin reads the body whole: `req.body()`,
/// every WASM and Python plugin), a filter that replaced the body with a
/// stream (`Request::set_body`, e.g. `compress` decompressing it) would
/// leave the later plugins an empty body: the host reads the stream back
/// into the buffered body. A stream that breaks off is the filter's fault.
async fn refill(ex: &mut Exchange) -> Result<(), Fault> {
    use http_body_util::BodyExt;
    let Some(stream) = ex.body_stream.take() else { return Ok(()) };
    let (body, _) = stream.into_parts();
    match body.collect().await {
        Ok(collected) => {
            ex.body = collected.to_bytes();
            Ok(())
        }
        Err(e) => Err(Fault::Error(format!("the request body it set broke off: {e}"))),
    }
}

/// Calls the handler; the response, and whether it is a fault's.
pub(crate) async fn handle_phase(
    handler: &Instance,
    ex: &mut Exchange,
    timings: &mut Timings,
    server: Option<&Span>,
    clock: &mut u64,
) -> (HostResponse, bool) {
    let outcome = call!(server, handler, "handle", ex, handler.executor.handle(ex));
    record(timings, handler, clock);
    match outcome {
        Ok(resp) => (resp, false),
        Err(fault) => (fault_response(handler, "handle", &fault, ex), true),
    }
}

/// Calls `on_response` of `filter` (when it has one); whether it faulted
/// (then `resp` is the fault's).
pub(crate) async fn response_phase(
    filter: &Instance,
    ex: &mut Exchange,
    resp: &mut HostResponse,
    timings: &mut Timings,
    server: Option<&Span>,
    clock: &mut u64,
) -> bool {
    if !filter.calls.contains(Phases::ON_RESPONSE) {
        return false;
    }
    let outcome = call!(server, filter, "on_response", ex, filter.executor.on_response(ex, resp));
    record(timings, filter, clock);
    match outcome {
        Ok(()) => false,
        Err(fault) => {
            *resp = fault_response(filter, "on_response", &fault, ex);
            true
        }
    }
}

/// Counts the call and its latency; with the access log on, adds its time
/// to the request's timings. One clock read per call: the call's time runs
/// from `clock` (the end of the previous call, or the chain's start) to now,
/// and now becomes the next call's start. Between two calls the host only
/// steps the chain (a refill or background start resets the clock), so
/// this is the call's own time within a few nanoseconds, at half the
/// clock reads. The clock is [`crate::clock`]'s: nanoseconds, one
/// subtraction per call.
fn record(timings: &mut Timings, instance: &Instance, clock: &mut u64) {
    let now = crate::clock::now_ns();
    let elapsed = now.saturating_sub(*clock);
    *clock = now;
    PluginStats::bump(&instance.stats.calls);
    instance.stats.latency.observe_ns(elapsed);
    let Some(timings) = timings else { return };
    let micros = elapsed / 1_000;
    match timings.iter_mut().find(|t| Arc::ptr_eq(&t.plugin, &instance.name)) {
        Some(t) => t.micros += micros,
        None => timings.push(Timing { plugin: instance.name.clone(), micros }),
    }
}

fn fault_response(instance: &Instance, phase: &str, fault: &Fault, ex: &Exchange) -> HostResponse {
    let name = &instance.executor.info().name;
    match fault {
        Fault::Panic(msg) => {
            PluginStats::bump(&instance.stats.panics);
            tracing::error!(plugin = %name, phase, request_id = ex.id(), "plugin panicked: {msg}");
        }
        Fault::Error(msg) => {
            PluginStats::bump(&instance.stats.errors);
            tracing::error!(plugin = %name, phase, request_id = ex.id(), "plugin failed: {msg}");
        }
        Fault::Timeout(msg) => {
            PluginStats::bump(&instance.stats.errors);
            tracing::error!(plugin = %name, phase, request_id = ex.id(), "plugin timed out: {msg}");
        }
        Fault::Overloaded(msg) => {
            tracing::warn!(plugin = %name, phase, request_id = ex.id(), "plugin overloaded: {msg}");
        }
    }
    problem::plugin_fault(name, phase, fault, ex.id())
}
