//! The server: binds the listeners, accepts connections under the connection
//! limit, starts the admin API ([`crate::admin`]), initialises plugins
//! (readiness flips when they are all live), and shuts down gracefully on
//! SIGINT/SIGTERM within `limits.shutdown_timeout`.
//!
//! The HTTP listeners run on one of two backends (`io:` / `COVET_IO`): epoll
//! (tokio's multi-threaded runtime, the one this function runs on) or
//! io_uring ([`uring`]: one runtime thread per core). Both feed [`conn::serve`].

pub mod body;
pub mod conn;
pub mod h3;
pub mod tls;
pub mod uring;
pub mod watchdog;
pub mod tracked_io;
pub mod framing;
pub mod headscan;
pub mod h2frames;
pub mod tunnel;

use std::{
    io::Write,
    sync::{Arc, atomic::Ordering},
};

use arc_swap::ArcSwap;
use tokio::{
    net::TcpListener,
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
    serve_listeners(&manifest.listen, backend, ctx, &connections).await?;
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
        if options.watch {
            tokio::spawn(crate::watch::run(control.clone(), stop_rx.clone()));
        }
        shutdown_signal().await;
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

/// Binds the listeners on the backend that can serve and starts accepting.
async fn serve_listeners(
    specs: &[ListenSpec],
    requested: IoBackend,
    ctx: conn::ConnContext,
    connections: &Arc<Semaphore>,
) -> Result<(), HostError> {
    if uring::choose(requested, uring::probe) == IoBackend::Uring {
        let threads = uring::threads();
        let addrs: Vec<_> = specs.iter().map(|spec| spec.addr).collect();
        let (per_thread, bound) = uring::bind(&addrs, threads)?;
        announce(specs, &bound)?;
        // TLS handshakes and HTTP/3 (on the main runtime) per listener.
        let contexts = specs
            .iter()
            .zip(&bound)
            .map(|(spec, addr)| tls::listener_context(spec, *addr, &ctx, connections))
            .collect::<Result<Vec<_>, _>>()?;
        uring::start(per_thread, contexts, connections.clone())?;
        tracing::info!("io backend: uring ({threads} threads)");
        return Ok(());
    }
    let listeners = bind_all(specs).await?;
    for (listener, spec) in listeners.into_iter().zip(specs) {
        let ctx = tls::listener_context(spec, listener.local_addr()?, &ctx, connections)?;
        tokio::spawn(accept_loop(listener, ctx, connections.clone()));
    }
    tracing::info!("io backend: epoll");
    Ok(())
}

async fn bind_all(specs: &[ListenSpec]) -> Result<Vec<TcpListener>, HostError> {
    let mut listeners = Vec::with_capacity(specs.len());
    for spec in specs {
        let listener = TcpListener::bind(spec.addr).await.map_err(|source| HostError::Bind { addr: spec.addr, source })?;
        listeners.push(listener);
    }
    let bound = listeners.iter().map(TcpListener::local_addr).collect::<Result<Vec<_>, _>>()?;
    announce(specs, &bound)?;
    Ok(listeners)
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

async fn accept_loop(listener: TcpListener, ctx: conn::ConnContext, connections: Arc<Semaphore>) {
    let mut stop = ctx.shutdown.clone();
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        tokio::spawn(conn::serve_tcp(stream, peer, ctx.clone(), permit));
    }
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
    let hooks = tokio::task::spawn_blocking(move || retiring.registry.retire_all());
    if tokio::time::timeout(budget, hooks).await.is_err() {
        tracing::warn!(?budget, "plugin shutdown hooks did not finish within shutdown_timeout; exiting without them");
    }
}
