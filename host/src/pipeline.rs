//! The pipeline: one request through a route's chain.
//!
//! ```text
//! on_request(f1) → on_request(f2) → … → handle(h) → … → on_response(f2) → on_response(f1)
//!        └── Respond(r) short-circuits: the handler is skipped and the filters
//!            that already passed run on_response on r, in reverse order.
//! ```
//! A plugin fault (panic or trap, error, invalid response) becomes a 500 with
//! the structured body (a timeout a 504), is counted on the plugin, and
//! logged with its name.

use std::{sync::Arc, time::Instant};

use crate::{
    exchange::{Exchange, HostResponse},
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

    /// Whether every plugin of the chain reads the request body as a stream.
    pub fn streams_body(&self) -> bool {
        self.handler.executor.streams_body() && self.filters.iter().all(|f| f.executor.streams_body())
    }
}

/// Runs the chain on its live instances.
pub async fn run(live: &Live, ex: &mut Exchange, timings: &mut Timings) -> HostResponse {
    let (passed, early) = request_phase(&live.filters, ex, timings).await;
    let mut resp = match early {
        Some(resp) => resp,
        None => handle_phase(&live.handler, ex, timings).await,
    };
    for filter in live.filters[..passed].iter().rev() {
        response_phase(filter, ex, &mut resp, timings).await;
    }
    resp
}

async fn request_phase(filters: &[Arc<Instance>], ex: &mut Exchange, timings: &mut Timings) -> (usize, Option<HostResponse>) {
    for (i, filter) in filters.iter().enumerate() {
        if !filter.executor.info().phases.contains(Phases::ON_REQUEST) {
            continue;
        }
        let started = Instant::now();
        let outcome = crate::resolve!(filter.executor.on_request(ex));
        record(timings, filter, started);
        match outcome {
            Ok(Decision::Continue) => {}
            Ok(Decision::Respond(resp)) => return (i, Some(resp)),
            Err(fault) => return (i, Some(fault_response(filter, "on_request", &fault, ex))),
        }
    }
    (filters.len(), None)
}

async fn handle_phase(handler: &Instance, ex: &mut Exchange, timings: &mut Timings) -> HostResponse {
    let started = Instant::now();
    let outcome = crate::resolve!(handler.executor.handle(ex));
    record(timings, handler, started);
    outcome.unwrap_or_else(|fault| fault_response(handler, "handle", &fault, ex))
}

async fn response_phase(filter: &Instance, ex: &mut Exchange, resp: &mut HostResponse, timings: &mut Timings) {
    if !filter.executor.info().phases.contains(Phases::ON_RESPONSE) {
        return;
    }
    let started = Instant::now();
    let outcome = crate::resolve!(filter.executor.on_response(ex, resp));
    record(timings, filter, started);
    if let Err(fault) = outcome {
        *resp = fault_response(filter, "on_response", &fault, ex);
    }
}

/// Counts the call and its latency; with the access log on, adds its time
/// to the request's timings.
fn record(timings: &mut Timings, instance: &Instance, started: Instant) {
    let elapsed = started.elapsed();
    PluginStats::bump(&instance.stats.calls);
    instance.stats.latency.observe(elapsed);
    let Some(timings) = timings else { return };
    let micros = elapsed.as_micros() as u64;
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
