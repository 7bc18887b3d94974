//! Periodic background work of a covet plugin: the host side of the
//! `covet:plugin/background@0.2.0` export (`plugin-api/wit/0.2.0/`).
//!
//! When a component exports the interface and its manifest entry has
//! `background: { every: … }`, the executor runs one task in its
//! instance's [`TaskSet`]: sleep `every`, call `tick`, repeat. A tick runs
//! like a phase call without a request — on an instance taken from the
//! executor's [`Core`] (fresh with `init` done, or an idle one when reused),
//! under the plugin's time, fuel and memory limits, with its grants — so
//! ticks never overlap, and a failed tick (an error it returned, a trap, the
//! time limit) is logged with the plugin's name and the next one still runs.
//! The task is aborted when the instance is retired (`shutdown`: a swap, a
//! reload that rebuilds the plugin, the host stopping).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use covet_services::tasks::TaskSet;
use wasmtime::component::{Component, InstancePre};

use super::{
    executor::{Core, Live},
    sandbox::Ctx,
};
use crate::runtime::Fault;

wasmtime::component::bindgen!({
    world: "covet:plugin/background-worker",
    path: "../plugin-api/wit/0.2.0",
    exports: { default: async },
});

/// The name of the export.
pub const BACKGROUND_EXPORT: &str = "covet:plugin/background@0.2.0";

/// How to find `tick` in an instance of one component.
#[derive(Clone)]
pub struct TickPre(BackgroundWorkerIndices);

impl TickPre {
    /// `Some` when `component` exports the background interface (an
    /// error when the export does not have the WIT's types).
    pub fn of(component: &Component, pre: &InstancePre<Ctx>) -> Result<Option<TickPre>, String> {
        let engine = pre.engine();
        let exported = component.component_type().exports(engine).any(|(name, _)| name == BACKGROUND_EXPORT);
        if !exported {
            return Ok(None);
        }
        let indices = BackgroundWorkerIndices::new(pre).map_err(|e| format!("its {BACKGROUND_EXPORT} export does not match the WIT: {e:#}"))?;
        Ok(Some(TickPre(indices)))
    }
}

/// Starts the plugin's ticks in `tasks`: the first `every` from now.
pub fn start(core: Arc<Core>, every: Duration, tasks: &TaskSet) -> Result<(), String> {
    let ticks = async move {
        loop {
            tokio::time::sleep(every).await;
            report(&core, tick_once(&core).await);
        }
    };
    tasks.spawn(ticks).map_err(|e| format!("cannot start its background ticks: {e}"))
}

/// Logs how a tick went.
fn report(core: &Core, outcome: Result<Result<(), String>, Fault>) {
    let plugin = &core.info.name;
    match outcome {
        Ok(Ok(())) => tracing::trace!(plugin = %plugin, "background tick done"),
        Ok(Err(error)) => tracing::warn!(plugin = %plugin, "background tick failed: {error}"),
        Err(fault) => tracing::error!(plugin = %plugin, "background tick failed: {}", fault.message()),
    }
}

/// One tick under the plugin's time limit; the instance goes back to the
/// idle ones (when reused) unless the call faulted.
async fn tick_once(core: &Core) -> Result<Result<(), String>, Fault> {
    let deadline = Instant::now() + core.sandbox.limits().timeout;
    let mut slot = None;
    let result = match tokio::time::timeout_at(deadline.into(), attempt(core, &mut slot, deadline)).await {
        Ok(result) => result,
        Err(_) => Err(core.timed_out()),
    };
    if let (Ok(_), Some(live)) = (&result, slot) {
        core.check_in(live);
    }
    result
}

async fn attempt(core: &Core, slot: &mut Option<Live>, deadline: Instant) -> Result<Result<(), String>, Fault> {
    let live = slot.insert(core.check_out(deadline).await?);
    // Found in the component the instance was made from (a snapshot has its own indices).
    let tick = live.prepared.tick.clone().ok_or_else(|| Fault::Error(format!("the component does not export {BACKGROUND_EXPORT}")))?;
    let worker = tick.0.load(&mut live.store, &live.instance).map_err(|e| Fault::Error(format!("{BACKGROUND_EXPORT}: {e:#}")))?;
    let called = worker.covet_plugin_background().call_tick(&mut live.store).await;
    called.map_err(|e| core.classify(e, &live.store, "background tick trapped"))
}
