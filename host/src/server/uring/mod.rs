//! The io_uring backend (`io: uring`): one tokio-uring runtime per core, each
//! on its own thread with its own listener socket per address (SO_REUSEPORT:
//! the kernel spreads new connections over them), driving hyper through
//! [`stream::UringStream`], wrapped in [`bound::ThreadBound`] so hyper can
//! serve it with HTTP/1.1 upgrades while it never leaves its thread.
//!
//! The control plane (plugin init, reloads, signals, the admin API) stays on
//! the main multi-threaded tokio runtime; connection tasks here share its
//! connection semaphore and shutdown signal, so the limit and the graceful
//! drain in [`super::run`] cover both backends.
//!
//! Whether io_uring can be used is decided once, at start: [`probe`] builds
//! the same runtime a worker builds; where that fails (kernel without
//! io_uring, `kernel.io_uring_disabled`, a seccomp filter) the host logs one
//! line and serves on epoll ([`choose`]).

pub mod bound;
pub mod stream;

use std::{
    io,
    net::TcpListener as StdListener,
    sync::Arc,
};

use tokio::sync::Semaphore;

use super::conn::{self, ConnContext};
use crate::{error::HostError, manifest::IoBackend};

/// Submission-queue entries per ring (completion queue: twice that).
const RING_ENTRIES: u32 = 1024;

/// The environment variable that overrides the manifest's `io:`.
pub const ENV: &str = "COVET_IO";

/// The backend asked for: `COVET_IO` (when set) over the manifest's `io:`.
pub fn requested(manifest: IoBackend, env: Option<&str>) -> Result<IoBackend, HostError> {
    match env.map(str::trim) {
        None | Some("") => Ok(manifest),
        Some("epoll") => Ok(IoBackend::Epoll),
        Some("uring") => Ok(IoBackend::Uring),
        Some(other) => Err(HostError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV}={other:?} is not a backend; set it to `epoll` or `uring`, or unset it"),
        ))),
    }
}

/// The backend that serves, given the one asked for and the result of
/// probing io_uring (only run when `uring` is asked for). A failed probe is
/// logged in one line and means epoll.
pub fn choose(requested: IoBackend, probe: impl FnOnce() -> io::Result<()>) -> IoBackend {
    if requested == IoBackend::Epoll {
        return IoBackend::Epoll;
    }
    match probe() {
        Ok(()) => IoBackend::Uring,
        Err(e) => {
            tracing::warn!("io_uring is unavailable ({}); falling back to epoll", explain(&e));
            IoBackend::Epoll
        }
    }
}

fn explain(e: &io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel lacks io_uring or a seccomp filter blocks it",
        Some(libc::EPERM) => "refused: see the kernel.io_uring_disabled sysctl or the sandbox's policy",
        Some(libc::ENOMEM) => "not enough locked memory: raise RLIMIT_MEMLOCK",
        _ => "io_uring_setup failed",
    };
    format!("{e}: {hint}")
}

/// Builds (and drops) one io_uring runtime, exactly as a worker would, on a
/// thread of its own (a runtime cannot be dropped inside the main runtime).
pub fn probe() -> io::Result<()> {
    std::thread::Builder::new()
        .name("covet-uring-probe".into())
        .spawn(|| tokio_uring::Runtime::new(&ring()).map(drop))?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the io_uring probe panicked")))
}

/// The ring every runtime thread (and the probe) sets up.
fn ring() -> tokio_uring::Builder {
    let mut builder = tokio_uring::builder();
    builder.entries(RING_ENTRIES);
    builder
}

/// Starts one runtime thread per listener set. The threads serve until the
/// process exits; after the shutdown signal they accept nothing new and
/// only finish their connections (the caller's drain waits for those).
/// `contexts` holds one connection context per listen address, in the
/// order of each thread's listeners (a TLS listener's carries its handshake
/// side).
pub fn start(per_thread: Vec<Vec<StdListener>>, mut contexts: Vec<ConnContext>, connections: Arc<Semaphore>) -> Result<(), HostError> {
    let offload = tokio::runtime::Handle::current();
    contexts.iter_mut().for_each(|ctx| ctx.offload = Some(offload.clone()));
    for (i, listeners) in per_thread.into_iter().enumerate() {
        let (ctx, connections) = (contexts.clone(), connections.clone());
        std::thread::Builder::new()
            .name(format!("covet-uring-{i}"))
            .spawn(move || serve_thread(i == 0, listeners, ctx, connections))?;
    }
    Ok(())
}

fn serve_thread(first: bool, listeners: Vec<StdListener>, contexts: Vec<ConnContext>, connections: Arc<Semaphore>) {
    let runtime = match tokio_uring::Runtime::new(&ring()) {
        Ok(rt) => rt,
        Err(e) => {
            // The probe succeeded a moment ago; this thread's share of the
            // listeners is dropped and the other threads serve.
            tracing::error!("cannot start an io_uring runtime thread: {}", explain(&e));
            return;
        }
    };
    runtime.block_on(async move {
        // This thread's runtime: tunnels of its connections are spawned here
        // (tokio-uring's ops need its thread's ring, set for all of block_on).
        let home = tokio::runtime::Handle::current();
        if first {
            // Python's event loop runs here once Python starts (runtime::python::aloop).
            drop(tokio_uring::spawn(crate::runtime::python::host_event_loop()));
        }
        for (listener, mut ctx) in listeners.into_iter().zip(contexts) {
            ctx.home = Some(home.clone());
            let listener = tokio_uring::net::TcpListener::from_std(listener);
            tokio_uring::spawn(accept_loop(listener, ctx, connections.clone()));
        }
        // Keep polling the connections until the process exits.
        std::future::pending::<()>().await
    });
}

/// Serves one listener of this thread ([`super::accept_loop`]): each
/// connection as an io_uring stream bound to this thread.
async fn accept_loop(listener: tokio_uring::net::TcpListener, ctx: ConnContext, connections: Arc<Semaphore>) {
    let mut stop = ctx.shutdown.clone();
    let serve = |stream: tokio_uring::net::TcpStream, peer, permit| {
        let _ = stream.set_nodelay(true);
        let stream = bound::ThreadBound::new(stream::UringStream::new(stream));
        match ctx.tls.clone() {
            Some(tls) => drop(tokio_uring::spawn(Box::pin(super::tls::serve(tls, stream, peer, ctx.clone(), permit, conn::serve)))),
            None => drop(tokio_uring::spawn(conn::serve(stream, peer, ctx.clone(), permit, None))),
        }
    };
    super::accept_loop(|| listener.accept(), &mut stop, &connections, serve).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_manifest() {
        assert_eq!(requested(IoBackend::Epoll, Some("uring")).unwrap(), IoBackend::Uring);
        assert_eq!(requested(IoBackend::Uring, Some("epoll")).unwrap(), IoBackend::Epoll);
        assert_eq!(requested(IoBackend::Uring, None).unwrap(), IoBackend::Uring);
        assert_eq!(requested(IoBackend::Uring, Some("")).unwrap(), IoBackend::Uring);
        let err = requested(IoBackend::Epoll, Some("kqueue")).unwrap_err().to_string();
        assert!(err.contains("COVET_IO") && err.contains("`epoll` or `uring`"), "{err}");
    }

    #[test]
    fn a_refused_probe_falls_back_to_epoll() {
        let refused = || Err(io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(choose(IoBackend::Uring, refused), IoBackend::Epoll);
        assert_eq!(choose(IoBackend::Uring, || Ok(())), IoBackend::Uring);
        assert_eq!(choose(IoBackend::Epoll, || panic!("epoll must not probe")), IoBackend::Epoll);
    }
}
