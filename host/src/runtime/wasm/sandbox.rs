//! A plugin's sandbox: the [`Store`] every call runs in, made from the
//! manifest's limits and capabilities.
//!
//! - **Memory**: [`StoreLimits`] caps each linear memory; a refused growth is
//!   remembered so a trap that follows is reported as "out of memory".
//! - **Time**: the store's epoch deadline is one tick ahead; at every tick
//!   the callback yields to tokio, or fails the call once it is past its
//!   [`Deadline`] ([`Timeout`]). The deadline is shared, so whoever drives a
//!   call that outlives its request (a wasi:http response body, streamed)
//!   can move it while the call runs.
//! - **Fuel**: the plugin's `fuel` per call, or unlimited.
//! - **Capabilities**: only the granted environment variables and
//!   preopened directories exist in the WASI context; outbound HTTP goes
//!   through the host's HTTP service ([`super::outbound`]), which refuses
//!   hosts not granted; shared state ([`super::state`]) is limited to the
//!   granted namespaces; stdout and stderr go to the host log when granted,
//!   and nowhere otherwise. Tracing ([`super::trace`]) acts only on the
//!   span of the call in progress.

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline, component::ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use covet_services::state::StateHandle;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{outbound::Hooks, services::WasmServices, stdio::LogStream};
use crate::{
    exchange::{Exchange, HostResponse},
    manifest::{DirGrant, WasmLimits, WasmSettings},
};

/// The data of a plugin's store: WASI state, limits, and the request and
/// response lent to the guest for the current call.
pub struct Ctx {
    /// Made at the guest's first WASI call ([`WasiView::ctx`]): a call that
    /// makes none (a filter that reads only the request) does not pay for
    /// it. Made with the store when directories are granted, since opening
    /// them can fail.
    wasi: Option<WasiCtx>,
    /// What the WASI context grants.
    grants: Arc<WasiGrants>,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: Hooks,
    state: StateHandle,
    limiter: Limiter,
    deadline: Deadline,
    /// The request, while a phase call runs.
    pub exchange: Option<Exchange>,
    /// The outgoing response, while `on-response` runs.
    pub response: Option<HostResponse>,
}

impl Ctx {
    /// Whether a memory growth was refused since the store was armed.
    pub fn memory_exhausted(&self) -> bool {
        self.limiter.refused
    }

    /// Whether the guest holds a host resource (a stream, a request, a
    /// file): an instance whose memory refers to one cannot be snapshotted.
    pub fn holds_resources(&self) -> bool {
        !self.table.is_empty()
    }

    /// When the running call must end (shared: moving it moves the limit).
    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    /// The plugin's shared state (its granted namespaces).
    pub fn state(&self) -> &StateHandle {
        &self.state
    }

    /// The span of the plugin call in progress: a clone of `Exchange::span`
    /// (`None` while tracing is off, between calls and in background ticks).
    /// Tracing ([`super::trace`]) acts on it, and outbound requests
    /// ([`super::outbound`]) are its children.
    pub fn span(&self) -> Option<&covet_telemetry::Span> {
        self.outbound.span.as_ref()
    }

    /// Sets the span of the call about to run (`None` once it ended).
    pub fn set_span(&mut self, span: Option<covet_telemetry::Span>) {
        self.outbound.span = span;
    }
}

/// The instant a store's call must end by, shared between the store's
/// epoch callback and the task driving the call.
#[derive(Clone)]
pub struct Deadline(Arc<AtomicU64>);

impl Deadline {
    fn new(at: Instant) -> Deadline {
        let deadline = Deadline(Arc::new(AtomicU64::new(0)));
        deadline.set(at);
        deadline
    }

    /// The call must end by `at`.
    pub fn set(&self, at: Instant) {
        let nanos = at.saturating_duration_since(base()).as_nanos();
        self.0.store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// No limit for now (the call waits on the client, not the other way round).
    pub fn lift(&self) {
        self.0.store(u64::MAX, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let now = u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX);
        now >= self.0.load(Ordering::Relaxed)
    }
}

/// The origin deadlines are counted from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let grants = &self.grants;
        let ctx = self.wasi.get_or_insert_with(|| grants.builder().build());
        WasiCtxView { ctx, table: &mut self.table }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

/// The error a call fails with when it runs past its deadline.
#[derive(Debug)]
pub struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the call ran past its time limit")
    }
}

impl std::error::Error for Timeout {}

/// [`StoreLimits`], remembering whether it refused a growth.
struct Limiter {
    limits: StoreLimits,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// What a plugin may use, resolved once at load; makes its stores.
pub struct Sandbox {
    limits: WasmLimits,
    dirs: Vec<DirGrant>,
    services: WasmServices,
    grants: Arc<WasiGrants>,
}

/// The WASI grants that cannot fail to apply: environment and stdio.
struct WasiGrants {
    plugin: Arc<str>,
    env: Vec<(String, String)>,
    stdio: bool,
}

impl WasiGrants {
    fn builder(&self) -> WasiCtxBuilder {
        let mut builder = WasiCtxBuilder::new();
        builder.envs(&self.env);
        if self.stdio {
            builder.stdout(LogStream::stdout(&self.plugin)).stderr(LogStream::stderr(&self.plugin));
        }
        builder
    }
}

impl Sandbox {
    /// The sandbox of plugin `plugin`, using `services`; granted environment
    /// variables are read from the host's environment now (absent ones stay absent).
    pub fn new(plugin: &str, settings: &WasmSettings, services: WasmServices) -> Sandbox {
        let caps = &settings.capabilities;
        let env = caps.env.iter().filter_map(|name| Some((name.clone(), std::env::var(name).ok()?))).collect();
        let grants = Arc::new(WasiGrants { plugin: Arc::from(plugin), env, stdio: caps.stdio });
        Sandbox { limits: settings.limits.clone(), dirs: caps.dirs.clone(), services, grants }
    }

    /// The plugin's limits.
    pub fn limits(&self) -> &WasmLimits {
        &self.limits
    }

    /// A new store for one instance; call [`Sandbox::arm`] before each call.
    pub fn store(&self, engine: &Engine) -> Result<Store<Ctx>, String> {
        let ctx = Ctx {
            wasi: self.wasi()?,
            grants: self.grants.clone(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound: Hooks::new(self.services.http.clone()),
            state: self.services.state.clone(),
            limiter: Limiter { limits: StoreLimitsBuilder::new().memory_size(self.limits.memory as usize).build(), refused: false },
            deadline: Deadline::new(Instant::now() + self.limits.timeout),
            exchange: None,
            response: None,
        };
        let mut store = Store::new(engine, ctx);
        store.limiter(|ctx| &mut ctx.limiter);
        store.epoch_deadline_callback(|ctx| match ctx.data().deadline.passed() {
            true => Err(wasmtime::Error::new(Timeout)),
            false => Ok(UpdateDeadline::Yield(1)),
        });
        self.arm(&mut store, Instant::now() + self.limits.timeout);
        Ok(store)
    }

    /// Resets the time and fuel budgets of `store` for a call that must end by `deadline`.
    pub fn arm(&self, store: &mut Store<Ctx>, deadline: Instant) {
        store.data().deadline.set(deadline);
        store.data_mut().limiter.refused = false;
        store.set_epoch_deadline(1);
        // Fuel metering is always compiled in; a store starts with none.
        let _ = store.set_fuel(self.limits.fuel.unwrap_or(u64::MAX));
    }

    /// The WASI context now when directories are granted (opening one can
    /// fail), else `None`: it is made at the first WASI call.
    fn wasi(&self) -> Result<Option<WasiCtx>, String> {
        if self.dirs.is_empty() {
            return Ok(None);
        }
        let mut builder = self.grants.builder();
        for dir in &self.dirs {
            let perms = if dir.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            builder
                .preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| format!("cannot open {} for the plugin: {e}", dir.host.display()))?;
        }
        Ok(Some(builder.build()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_moves_and_lifts_for_every_holder() {
        let deadline = Deadline::new(Instant::now() - std::time::Duration::from_millis(1));
        let shared = deadline.clone();
        assert!(deadline.passed());
        shared.set(Instant::now() + std::time::Duration::from_secs(60));
        assert!(!deadline.passed(), "moved through the clone");
        shared.lift();
        assert!(!deadline.passed());
        shared.set(Instant::now());
        assert!(deadline.passed());
    }
}
