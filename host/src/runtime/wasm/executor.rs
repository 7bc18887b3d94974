//! One live covet:plugin component: each phase call takes an instance
//! (fresh, or an idle one when the plugin opted into reuse), lends it the
//! request — and the response for `on-response` — calls the phase under the
//! plugin's time limit, and takes them back.
//!
//! The request is moved into the store for the call, not copied: host
//! functions read and edit it in place. It is moved back when the call
//! ends, also when the time limit cuts the call short.
//!
//! The executor's state lives in a shared [`Core`], so that the plugin's
//! background ticks ([`super::background`]), a task of the instance's
//! [`TaskSet`], take instances from the same place as requests.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use bytes::Bytes;
use covet_services::tasks::TaskSet;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use wasmtime::{
    Store, Trap,
    component::{ComponentExportIndex, InstancePre, Instance, Linker, Resource, TypedFunc},
};

use super::{
    GUEST_EXPORT,
    background::{self, TickPre},
    bindings::{Flow, PluginPre, RequestHandle, Response, ResponseHandle},
    new_store,
    sandbox::{Ctx, Sandbox, Timeout},
};
use crate::{
    exchange::{Exchange, HostResponse},
    manifest::InstanceMode,
    metadata::Metadata,
    runtime::{Decision, Executor, Fault, Outcome, PluginInfo},
};

/// Idle instances a reused plugin keeps at most.
const MAX_IDLE: usize = 32;

/// A covet:plugin component, ready to serve calls.
pub struct WasmExecutor {
    core: Arc<Core>,
    /// The background ticks, when the manifest asked for them; aborted at shutdown.
    tasks: Option<TaskSet>,
}

/// What calls of the plugin (phase calls and background ticks) share.
pub struct Core {
    /// Who the plugin is.
    pub info: PluginInfo,
    /// What fresh instances are made from: the loaded component, replaced
    /// by its snapshot after `init` once that is taken ([`super::snapshot`]).
    prepared: ArcSwap<Prepared>,
    /// The plugin's sandbox.
    pub sandbox: Sandbox,
    config: String,
    /// Idle instances, when the manifest opted into reuse.
    idle: Option<Mutex<Vec<Live>>>,
}

/// A component instances are made from, and where its functions are.
pub struct Prepared {
    pre: PluginPre<Ctx>,
    exports: GuestExports,
    /// How to call `tick`, when the component exports `covet:plugin/background@0.2.0`.
    pub tick: Option<TickPre>,
    /// Whether `pre` is a snapshot taken after `init`: its instances start
    /// initialised and `init` is not called again.
    initialised: bool,
}

impl Prepared {
    fn new(pre: PluginPre<Ctx>, initialised: bool) -> Result<Prepared, String> {
        let exports = GuestExports::of(pre.instance_pre())?;
        let tick = TickPre::of(pre.instance_pre().component(), pre.instance_pre())?;
        Ok(Prepared { pre, exports, tick, initialised })
    }
}

/// An instance and its store.
pub struct Live {
    /// The store.
    pub store: Store<Ctx>,
    /// The instance (its guest exports, and others, e.g. `background`).
    pub instance: Instance,
    /// The component it was made from (a snapshot's functions are found
    /// in the snapshot).
    pub prepared: Arc<Prepared>,
    /// Its phase functions, looked up and type-checked at their first call:
    /// a reused instance does not do it again on every request.
    phases: PhaseFuncs,
}

type RequestFunc<R> = TypedFunc<(Resource<RequestHandle>,), (R,)>;

/// The phase functions of one instance, each once called.
#[derive(Default)]
struct PhaseFuncs {
    on_request: Option<RequestFunc<Flow>>,
    handle: Option<RequestFunc<Response>>,
    on_response: Option<TypedFunc<(Resource<RequestHandle>, Resource<ResponseHandle>), ()>>,
}

/// Where the guest's functions are in the component, found once per
/// executor. A call looks up (and type-checks) only what it runs — `init`
/// in a new instance, then its phase — rather than all five exports of
/// every new instance (3.4k of the ~88k instructions a fresh no-op filter
/// cost, `bench/wasm-cost.sh`). The types were checked against the WIT when
/// the component was loaded (`PluginPre::new`).
struct GuestExports {
    init: ComponentExportIndex,
    on_request: ComponentExportIndex,
    handle: ComponentExportIndex,
    on_response: ComponentExportIndex,
}

impl GuestExports {
    fn of(pre: &InstancePre<Ctx>) -> Result<GuestExports, String> {
        let component = pre.component();
        let missing = |name: &str| format!("the component does not export {GUEST_EXPORT}{name}");
        let guest = component.get_export_index(None, GUEST_EXPORT).ok_or_else(|| missing(""))?;
        let find = |name: &str| component.get_export_index(Some(&guest), name).ok_or_else(|| missing(&format!("#{name}")));
        Ok(GuestExports { init: find("init")?, on_request: find("on-request")?, handle: find("handle")?, on_response: find("on-response")? })
    }
}

impl Live {
    /// Takes back what was lent to the store.
    fn restore(&mut self, ex: &mut Exchange, resp: Option<&mut HostResponse>) {
        let data = self.store.data_mut();
        data.set_span(None);
        if let Some(lent) = data.exchange.take() {
            *ex = lent;
        }
        if let (Some(resp), Some(lent)) = (resp, data.response.take()) {
            *resp = lent;
        }
    }
}

/// Which phase a call runs.
#[derive(Clone, Copy)]
enum Phase {
    OnRequest,
    Handle,
    OnResponse,
}

/// What a phase returned.
enum Returned {
    Flow(Flow),
    Response(Response),
    Done,
}

impl WasmExecutor {
    /// An executor for one manifest entry.
    pub fn new(info: PluginInfo, pre: PluginPre<Ctx>, sandbox: Sandbox, config: String, mode: InstanceMode) -> Result<WasmExecutor, String> {
        let idle = (mode == InstanceMode::Reused).then(|| Mutex::new(Vec::new()));
        let prepared = ArcSwap::from_pointee(Prepared::new(pre, false)?);
        let core = Core { info, prepared, sandbox, config, idle };
        Ok(WasmExecutor { core: Arc::new(core), tasks: None })
    }

    /// Makes one instance and runs `init` on the config (at load and swap).
    pub async fn check_init(&self) -> Result<(), String> {
        self.core.check_init().await
    }

    /// The state calls share (for a snapshot taken in the background).
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// Whether the component exports `covet:plugin/background@0.2.0`.
    pub fn has_background(&self) -> bool {
        self.core.prepared.load().tick.is_some()
    }

    /// Calls `tick` every `every` in a task of `tasks` (the instance's,
    /// aborted at its shutdown).
    pub fn start_background(&mut self, every: Duration, tasks: TaskSet) -> Result<(), String> {
        background::start(self.core.clone(), every, &tasks)?;
        self.tasks = Some(tasks);
        Ok(())
    }
}

impl Core {
    /// A snapshot of the plugin after `init` ([`super::snapshot`]); the
    /// error says why there is none.
    pub async fn snapshot(&self, bytes: &[u8], linker: &Linker<Ctx>) -> Result<PluginPre<Ctx>, String> {
        let engine = self.prepared.load().pre.engine().clone();
        super::snapshot::take(bytes, &engine, linker, &self.sandbox, &self.config, &self.info.name).await
    }

    /// Makes fresh instances from `snapshot` (of this plugin, config and
    /// sandbox, after `init`) from now on: they no longer run `init`. Calls
    /// in progress finish on the instances they have.
    pub fn start_initialised(&self, snapshot: PluginPre<Ctx>) -> Result<(), String> {
        self.prepared.store(Arc::new(Prepared::new(snapshot, true)?));
        Ok(())
    }

    /// Makes one instance and runs `init` on the config (at load and swap):
    /// the error is what the plugin said. The instance is not kept: it ran
    /// on the loader's runtime, not the one that serves requests.
    pub async fn check_init(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.sandbox.limits().timeout;
        let live = tokio::time::timeout_at(deadline.into(), self.instantiate(deadline)).await;
        live.map_err(|_| self.timed_out().message().to_owned())?.map_err(|f| f.message().to_owned())?;
        Ok(())
    }

    /// An instance with `init` done: an idle one, or a new one.
    pub async fn check_out(&self, deadline: Instant) -> Result<Live, Fault> {
        let reused = self.idle.as_ref().and_then(|idle| idle.lock().unwrap_or_else(|e| e.into_inner()).pop());
        match reused {
            Some(mut live) => {
                self.sandbox.arm(&mut live.store, deadline);
                Ok(live)
            }
            None => self.instantiate(deadline).await,
        }
    }

    /// Keeps `live` for a later call when instances are reused.
    pub fn check_in(&self, live: Live) {
        if let Some(idle) = &self.idle {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(live);
            }
        }
    }

    async fn instantiate(&self, deadline: Instant) -> Result<Live, Fault> {
        let prepared = self.prepared.load_full();
        let mut store = new_store(&self.sandbox, prepared.pre.engine())?;
        self.sandbox.arm(&mut store, deadline);
        let instance = match prepared.pre.instance_pre().instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => return Err(self.classify(e, &store, "instantiation failed")),
        };
        if prepared.initialised {
            return Ok(Live { store, instance, prepared, phases: PhaseFuncs::default() });
        }
        let init = self.call_init(&mut store, &instance, &prepared.exports).await;
        match init {
            Ok(Ok(())) => Ok(Live { store, instance, prepared, phases: PhaseFuncs::default() }),
            Ok(Err(refusal)) => Err(Fault::Error(format!("init refused its config: {refusal}"))),
            Err(e) => Err(self.classify(e, &store, "init failed")),
        }
    }

    /// Runs `phase` under the time limit; `ex` (and `resp`) are back in
    /// place when it returns, whatever happened.
    async fn run(&self, ex: &mut Exchange, mut resp: Option<&mut HostResponse>, phase: Phase) -> Result<Returned, Fault> {
        let deadline = Instant::now() + self.sandbox.limits().timeout;
        let mut slot = None;
        let attempt = self.attempt(&mut slot, ex, resp.as_deref_mut(), phase, deadline);
        let result = match tokio::time::timeout_at(deadline.into(), attempt).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        };
        if let Some(mut live) = slot {
            live.restore(ex, resp);
            if result.is_ok() {
                self.check_in(live);
            }
        }
        result
    }

    async fn attempt(
        &self,
        slot: &mut Option<Live>,
        ex: &mut Exchange,
        resp: Option<&mut HostResponse>,
        phase: Phase,
        deadline: Instant,
    ) -> Result<Returned, Fault> {
        let live = slot.insert(self.check_out(deadline).await?);
        let data = live.store.data_mut();
        data.set_span(ex.span.clone());
        data.exchange = Some(lend(ex));
        if let Some(resp) = resp {
            data.response = Some(std::mem::replace(resp, HostResponse::new(StatusCode::OK)));
        }
        let called = self.call_phase(live, phase).await;
        called.map_err(|e| self.classify(e, &live.store, "trapped"))
    }

    /// Runs the guest's `init` on the plugin's config in `instance`.
    async fn call_init(&self, store: &mut Store<Ctx>, instance: &Instance, exports: &GuestExports) -> wasmtime::Result<Result<(), String>> {
        let init = instance.get_typed_func::<(&str, &str), (Result<(), String>,)>(&mut *store, &exports.init)?;
        let (result,) = init.call_async(store, (&self.config, &self.info.name)).await?;
        Ok(result)
    }

    /// Runs `phase` in `live` on the request (and response) lent to its store.
    async fn call_phase(&self, live: &mut Live, phase: Phase) -> wasmtime::Result<Returned> {
        let req = || Resource::<RequestHandle>::new_borrow(0);
        let Live { store, instance, prepared, phases } = live;
        let exports = &prepared.exports;
        match phase {
            Phase::OnRequest => {
                let f = cached(&mut phases.on_request, || instance.get_typed_func(&mut *store, &exports.on_request))?;
                f.call_async(store, (req(),)).await.map(|(flow,)| Returned::Flow(flow))
            }
            Phase::Handle => {
                let f = cached(&mut phases.handle, || instance.get_typed_func(&mut *store, &exports.handle))?;
                f.call_async(store, (req(),)).await.map(|(resp,)| Returned::Response(resp))
            }
            Phase::OnResponse => {
                let f = cached(&mut phases.on_response, || instance.get_typed_func(&mut *store, &exports.on_response))?;
                f.call_async(store, (req(), Resource::new_borrow(0))).await.map(|()| Returned::Done)
            }
        }
    }

    /// The fault of a call cut short by the time limit.
    pub fn timed_out(&self) -> Fault {
        Fault::Timeout(format!("ran past its time limit of {}", ms(self.sandbox.limits().timeout)))
    }

    /// Names what went wrong in a failed call.
    pub fn classify(&self, err: wasmtime::Error, store: &Store<Ctx>, what: &str) -> Fault {
        classify(err, store.data(), self.sandbox.limits(), what)
    }
}

/// Names what went wrong in a failed call of a store's instance.
pub fn classify(err: wasmtime::Error, ctx: &Ctx, limits: &crate::manifest::WasmLimits, what: &str) -> Fault {
    let trap = err.downcast_ref::<Trap>().copied();
    if err.downcast_ref::<Timeout>().is_some() || trap == Some(Trap::Interrupt) {
        return Fault::Timeout(format!("ran past its time limit of {}", ms(limits.timeout)));
    }
    if trap == Some(Trap::OutOfFuel) {
        return Fault::Panic(format!("ran out of fuel ({} per call)", limits.fuel.unwrap_or(u64::MAX)));
    }
    tracing::debug!("WASM call failed: {err:?}");
    if ctx.memory_exhausted() {
        return Fault::Panic(format!("ran out of memory (limit {} bytes): {}", limits.memory, one_line(&err, trap)));
    }
    match trap {
        Some(_) => Fault::Panic(format!("{what}: {}", one_line(&err, trap))),
        None => Fault::Error(format!("{what}: {}", one_line(&err, trap))),
    }
}

/// The error as one log-friendly line: the trap, or the error's causes
/// (the wasm backtrace is logged at debug level).
fn one_line(err: &wasmtime::Error, trap: Option<Trap>) -> String {
    match trap {
        Some(trap) => format!("wasm trap: {trap}"),
        None => format!("{err:#}").lines().next().unwrap_or_default().to_owned(),
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// `slot`'s function, looked up by `find` the first time.
fn cached<F: Copy>(slot: &mut Option<F>, find: impl FnOnce() -> wasmtime::Result<F>) -> wasmtime::Result<F> {
    match *slot {
        Some(f) => Ok(f),
        None => Ok(*slot.insert(find()?)),
    }
}

/// Moves the request out of `ex`, leaving a cheap stand-in.
fn lend(ex: &mut Exchange) -> Exchange {
    let stand_in = Exchange {
        method: Method::GET,
        uri: Uri::default(),
        version: ex.version,
        headers: HeaderMap::new(),
        client: ex.client.clone(),
        route: ex.route.clone(),
        params: Vec::new(),
        body: Bytes::new(),
        body_stream: None,
        metadata: Metadata::default(),
        request_id: HeaderValue::from_static(""),
        span: None,
    };
    std::mem::replace(ex, stand_in)
}

impl Executor for WasmExecutor {
    fn info(&self) -> &PluginInfo {
        &self.core.info
    }

    fn on_request<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, Decision> {
        Outcome::Pending(Box::pin(async move {
            match self.core.run(ex, None, Phase::OnRequest).await? {
                Returned::Flow(Flow::Continue) => Ok(Decision::Continue),
                Returned::Flow(Flow::Respond(resp)) => resp.into_host().map(Decision::respond).map_err(Fault::Error),
                _ => Err(Fault::Error("on-request returned no flow".into())),
            }
        }))
    }

    fn handle<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, HostResponse> {
        Outcome::Pending(Box::pin(async move {
            match self.core.run(ex, None, Phase::Handle).await? {
                Returned::Response(resp) => resp.into_host().map_err(Fault::Error),
                _ => Err(Fault::Error("handle returned no response".into())),
            }
        }))
    }

    fn on_response<'a>(&'a self, ex: &'a mut Exchange, resp: &'a mut HostResponse) -> Outcome<'a, ()> {
        Outcome::Pending(Box::pin(async move { self.core.run(ex, Some(resp), Phase::OnResponse).await.map(drop) }))
    }

    fn shutdown(&self) {
        if let Some(tasks) = &self.tasks {
            tasks.shutdown();
        }
        if let Some(idle) = &self.core.idle {
            idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

impl Drop for WasmExecutor {
    /// An executor dropped without a shutdown (a load that failed later on)
    /// stops ticking too.
    fn drop(&mut self) {
        if let Some(tasks) = &self.tasks {
            tasks.shutdown();
        }
    }
}
