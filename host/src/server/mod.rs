//! The server: binds the listeners, accepts connections under the connection
//! limit, starts the admin API ([`crate::admin`]), initialises plugins
//! (readiness flips when they are all live), and shuts down gracefully on
//! SIGINT/SIGTERM within `limits.shutdown_timeout`.
//!
//! The HTTP listeners run on one of two backends (`io:` / `COVET_IO`), both
//! thread per core (`workers:`, one SO_REUSEPORT socket per worker and
//! address, [`reuseport`]): epoll ([`epoll`]: a current-thread tokio runtime
//! per worker) or io_uring ([`uring`]: a tokio-uring runtime per worker).
//! Both feed [`conn::serve`]. The control plane stays on the multi-threaded
//! runtime this function runs on.

pub mod body;
pub mod conn;
pub mod epoll;
pub mod reuseport;
pub mod h3;
pub mod tls;
pub mod uring;
pub mod watchdog;
pub mod tracked_io;
pub mod framing;
pub mod headscan;
pub mod h2frames;
pub mod tunnel;
pub mod park;

use std::{
    io::Write,
    sync::{Arc, atomic::Ordering},
};

use arc_swap::ArcSwap;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{Semaphore, watch},
};

use crate::{
    access_log::AccessLog,
    admin::AdminConfig,
    control::{ControlPlane, reload::{self, Plan}},
    error::HostError,
    manifest::{IoBackend, ListenSpec, Manifest},
    registry::Registry,
    request_id::RequestIds,
    runtime::artifact::LibraryCache,
    service::Shared,
    supervisor::child::{self, ChildRole, Order, Orders},
};

/// How the host runs, beyond what the manifest says.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Reload the manifest and artifacts when they change on disk ([`crate::watch`]).
    pub watch: bool,
}

/// Runs the host for `manifest` until a shutdown signal. Returns once every
/// connection has finished (or the shutdown deadline passed).
pub async fn run(manifest: Manifest, access_log: Option<AccessLog>, options: RunOptions) -> Result<(), HostError> {
    let admin = AdminConfig::resolve(&manifest.admin)?;
    crate::runtime::services::install(&manifest.services).map_err(|e| HostError::Io(std::io::Error::other(format!("host services: {e}"))))?;
    crate::runtime::services::reconcile_upstreams(&manifest.upstreams).map_err(|e| HostError::Io(std::io::Error::other(e)))?;
    let mut libraries = LibraryCache::default();
    let registry = Registry::default();
    let plan = reload::plan(&manifest, &mut libraries, &registry)?;
    let shared = Arc::new(shared_state(&manifest, &plan, registry, access_log));
    let control = Arc::new(ControlPlane::new(shared.clone(), manifest.clone(), libraries));
    crate::otel::set_metrics_source(crate::admin::otlp_source(control.clone()));
    let backend = uring::requested(manifest.io, std::env::var(uring::ENV).ok().as_deref())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = shared.limits.max_connections.min(Semaphore::MAX_PERMITS);
    let connections = Arc::new(Semaphore::new(permits));
    let builder = Arc::new(conn::builder(&shared.limits));
    let ctx = conn::ConnContext { shared: shared.clone(), builder, shutdown: stop_rx.clone(), tls: None, offload: None, home: None };
    let role = ChildRole::from_env()?;
    let listeners = Listeners { specs: &manifest.listen, backend, workers: manifest.workers, ctx, connections: &connections };
    if role.is_none() {
        listeners.serve().await?;
    }
    let admin = match admin {
        Some(config) => Some(crate::admin::start(config, control.clone(), stop_rx.clone()).await?),
        None => None,
    };
    let init = {
        let control = control.clone();
        tokio::spawn(async move { control.start(plan).await })
    };
    tokio::select! {
        joined = init => {
            joined.map_err(|e| HostError::Io(std::io::Error::other(e)))??;
            shared.ready.store(true, Ordering::Release);
            tracing::info!("all plugins initialised; ready");
        }
        _ = shutdown_signal() => tracing::info!("shutdown requested during start-up"),
    }
    if shared.ready.load(Ordering::Acquire) {
        match &role {
            Some(role) => serve_as_child(role, listeners).await?,
            None => {
                if options.watch {
                    tokio::spawn(crate::watch::run(control.clone(), stop_rx.clone()));
                }
                shutdown_signal().await;
            }
        }
    }
    drain(stop_tx, &connections, permits, &shared).await;
    crate::otel::shutdown().await;
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(())
}

fn shared_state(manifest: &Manifest, plan: &Plan, registry: Registry, access_log: Option<AccessLog>) -> Shared {
    Shared {
        routes: ArcSwap::new(plan.table().clone()),
        registry,
        limits: manifest.limits.clone(),
        access_log,
        ready: Default::default(),
        ids: RequestIds::default(),
        metrics: Default::default(),
    }
}

/// A host started by the supervisor ([`crate::supervisor`]): says it is
/// ready, serves when told to, and runs until a signal or until the
/// supervisor is gone (its stdin closes).
async fn serve_as_child(role: &ChildRole, listeners: Listeners<'_>) -> Result<(), HostError> {
    let mut orders = Orders::stdin();
    child::announce(child::READY)?;
    tokio::select! {
        order = orders.next() => if order == Order::Gone {
            tracing::warn!("the supervisor is gone before this process served; shutting down");
            return Ok(());
        },
        _ = shutdown_signal() => return Ok(()),
    }
    let specs = role.listeners(listeners.specs)?;
    let workers = listeners.workers.or(std::num::NonZeroUsize::new(1));
    Listeners { specs: &specs, workers, ..listeners }.serve().await?;
    child::announce(child::SERVING)?;
    tracing::info!(process = role.index, processes = role.count, "serving as a child of the supervisor");
    tokio::select! {
        _ = orders.next() => tracing::warn!("the supervisor is gone; shutting down"),
        _ = shutdown_signal() => {}
    }
    Ok(())
}

/// What binding the listeners needs.
struct Listeners<'a> {
    specs: &'a [ListenSpec],
    backend: IoBackend,
    workers: Option<std::num::NonZeroUsize>,
    ctx: conn::ConnContext,
    connections: &'a Arc<Semaphore>,
}

impl Listeners<'_> {
    async fn serve(&self) -> Result<(), HostError> {
        serve_listeners(self.specs, self.backend, self.workers, self.ctx.clone(), self.connections).await
    }
}

/// Binds the listeners (one SO_REUSEPORT socket per worker and address) and
/// starts the workers on the backend that can serve.
async fn serve_listeners(
    specs: &[ListenSpec],
    requested: IoBackend,
    workers: Option<std::num::NonZeroUsize>,
    ctx: conn::ConnContext,
    connections: &Arc<Semaphore>,
) -> Result<(), HostError> {
    let backend = uring::choose(requested, uring::probe);
    let threads = reuseport::threads(workers);
    let addrs: Vec<_> = specs.iter().map(|spec| spec.addr).collect();
    let (per_thread, bound) = reuseport::bind(&addrs, threads, ctx.shared.limits.listen_backlog)?;
    if std::env::var_os(child::PROCESS_ENV).is_none() {
        announce(specs, &bound)?;
    }
    // TLS handshakes and HTTP/3 (on the main runtime) per listener.
    let contexts = specs
        .iter()
        .zip(&bound)
        .map(|(spec, addr)| tls::listener_context(spec, *addr, &ctx, connections))
        .collect::<Result<Vec<_>, _>>()?;
    match backend {
        IoBackend::Uring => uring::start(per_thread, contexts, connections.clone())?,
        IoBackend::Epoll => epoll::start(per_thread, contexts, connections.clone())?,
    }
    let name = if backend == IoBackend::Uring { "uring" } else { "epoll" };
    tracing::info!("io backend: {name} ({threads} threads)");
    Ok(())
}

/// Tests and scripts read the real ports from these lines.
fn announce(specs: &[ListenSpec], addrs: &[std::net::SocketAddr]) -> Result<(), HostError> {
    for (spec, addr) in specs.iter().zip(addrs) {
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        println!("listening on {scheme}://{addr}");
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// One worker's accept loop, both backends: accepts with `accept`, then
/// waits for a connection permit and hands the connection to `serve`, until
/// shutdown. Accept first, then the permit: with SO_REUSEPORT the kernel
/// queues each new connection on one thread's socket, and a thread holding
/// a freed permit must not wait on its own socket while the waiting
/// connection sits on another's. So each thread holds at most one accepted
/// connection beyond `max_connections`, unserved until a permit frees.
pub(crate) async fn accept_loop<S, F>(
    mut accept: impl FnMut() -> F,
    stop: &mut watch::Receiver<bool>,
    connections: &Arc<Semaphore>,
    mut serve: impl FnMut(S, std::net::SocketAddr, tokio::sync::OwnedSemaphorePermit),
) where
    F: Future<Output = std::io::Result<(S, std::net::SocketAddr)>>,
{
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            _ = stopped(stop) => return,
        };
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stopped(stop) => return,
        };
        serve(stream, peer, permit);
    }
}

/// After a failed `accept` (EMFILE, ENFILE, ENOBUFS…): log it and pause, so
/// a process out of file descriptors does not spin.
pub(crate) async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

/// Resolves once the host is shutting down.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; the host will only stop when killed");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
}

async fn drain(stop: watch::Sender<bool>, connections: &Arc<Semaphore>, permits: usize, shared: &Arc<Shared>) {
    let _ = stop.send(true);
    let deadline = shared.limits.shutdown_timeout;
    let started = std::time::Instant::now();
    let all = u32::try_from(permits).unwrap_or(u32::MAX);
    match tokio::time::timeout(deadline, connections.acquire_many(all)).await {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(?deadline, "shutdown deadline passed with requests still in flight; exiting"),
    }
    retire_within(shared, deadline.saturating_sub(started.elapsed()).max(SHUTDOWN_HOOKS_MIN)).await;
}

/// The least time plugins' shutdown hooks get, however long the drain took.
const SHUTDOWN_HOOKS_MIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Retires every plugin instance (their `shutdown` hooks run) on a blocking
/// thread, waiting at most `budget`: a hook stuck behind a plugin that never
/// returns (a Python coroutine that never awaits holds the event loop)
/// must not keep the host from exiting.
async fn retire_within(shared: &Arc<Shared>, budget: std::time::Duration) {
    let retiring = Arc::clone(shared);
    let hooks = tokio::task::spawn_blocking(move || {
        retiring.registry.retire_all();
        // The route table's cached instances go too (see `routes`).
        drop(retiring.refresh_routes());
    });
    if tokio::time::timeout(budget, hooks).await.is_err() {
        tracing::warn!(?budget, "plugin shutdown hooks did not finish within shutdown_timeout; exiting without them");
    }
}
