//! The epoll backend (`io: epoll`, the default): thread per core, as the
//! io_uring backend. Each worker thread runs a current-thread tokio runtime
//! with its own listener socket per address (SO_REUSEPORT,
//! [`super::reuseport`]), accepts there and serves each connection as a task
//! of that runtime: an accept storm is spread over every core by the kernel,
//! a connection never migrates between threads, and no work-stealing queue
//! is shared.
//!
//! The control plane (plugin init, reloads, signals, the admin API, HTTP/3)
//! stays on the main multi-threaded runtime. While a `blocking` native
//! plugin is live, requests' service futures run there (through
//! `block_in_place`), as on io_uring ([`conn::ConnContext::offload`]); a
//! worker thread never blocks on a plugin call.

use std::{net::TcpListener as StdListener, sync::Arc};

use tokio::{net::TcpListener, sync::Semaphore};

use super::conn::{self, ConnContext};
use crate::error::HostError;

/// Starts one worker thread per listener set. The threads serve until the
/// process exits; after the shutdown signal they accept nothing new and only
/// finish their connections (the caller's drain waits for those).
/// `contexts` holds one connection context per listen address, in the order
/// of each thread's listeners.
pub fn start(per_thread: Vec<Vec<StdListener>>, mut contexts: Vec<ConnContext>, connections: Arc<Semaphore>) -> Result<(), HostError> {
    let offload = tokio::runtime::Handle::current();
    contexts.iter_mut().for_each(|ctx| ctx.offload = Some(offload.clone()));
    for (i, listeners) in per_thread.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (ctx, connections) = (contexts.clone(), connections.clone());
        std::thread::Builder::new()
            .name(format!("covet-epoll-{i}"))
            .spawn(move || serve_thread(&runtime, i == 0, listeners, ctx, connections))?;
    }
    Ok(())
}

fn serve_thread(runtime: &tokio::runtime::Runtime, first: bool, listeners: Vec<StdListener>, contexts: Vec<ConnContext>, connections: Arc<Semaphore>) {
    runtime.block_on(async move {
        if first {
            // Python's event loop runs here once Python starts (runtime::python::aloop).
            drop(tokio::spawn(crate::runtime::python::host_event_loop()));
        }
        let home = tokio::runtime::Handle::current();
        for (listener, mut ctx) in listeners.into_iter().zip(contexts) {
            ctx.home = Some(home.clone());
            match TcpListener::from_std(listener) {
                Ok(listener) => drop(tokio::spawn(accept_loop(listener, ctx, connections.clone()))),
                Err(e) => tracing::error!("a worker cannot register its listener with epoll: {e}; the other workers serve"),
            }
        }
        std::future::pending::<()>().await
    });
}

/// Serves one listener of this thread ([`super::accept_loop`]).
async fn accept_loop(listener: TcpListener, ctx: ConnContext, connections: Arc<Semaphore>) {
    let mut stop = ctx.shutdown.clone();
    let serve = |stream, peer, permit| drop(tokio::spawn(conn::serve_tcp(stream, peer, ctx.clone(), permit)));
    super::accept_loop(|| listener.accept(), &mut stop, &connections, serve).await;
}
