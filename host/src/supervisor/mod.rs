//! Process mode (`processes: N`, N > 1): one supervisor, N child hosts.
//!
//! One embedded CPython runs Python on one core (one GIL), so Python
//! routes scale with processes, as under Granian or uvicorn. The
//! supervisor loads no plugin; it:
//!
//! - reserves each listen address (a bound, non-listening `SO_REUSEPORT`
//!   socket, so port 0 is chosen once) and starts N copies of this binary
//!   on the same manifest ([`process`]); each child binds its own
//!   `SO_REUSEPORT` listeners on those ports, and the kernel spreads new
//!   connections over all of them ([`child`] is the child's side);
//! - keeps the shared state when the manifest's is in memory, and serves it
//!   to the children over a Unix socket, so a rate limit of 100/s is 100/s
//!   for the host (`services.state.backend: redis` is used by the children
//!   directly);
//! - serves the one admin API and the one `/metrics` ([`admin`]), applying
//!   each change to every child before it answers ([`fleet`]);
//! - replaces a child that dies ([`fleet`]); the others keep serving.
//!
//! HTTP/3 is served by child 0 only (see [`child::ChildRole::listeners`]).
//! `--watch` is refused: it reloads one process's control plane.

pub mod admin;
pub mod child;
pub mod fleet;
pub mod forward;
pub mod merge;
pub mod process;

use std::{
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use crate::{
    admin::AdminConfig,
    error::HostError,
    manifest::{ListenSpec, Manifest, StateBackend},
};
use fleet::Fleet;
use process::Launch;

/// How long a child may take to load its plugins before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// What children get beyond `limits.shutdown_timeout` to exit after SIGTERM.
const STOP_SLACK: Duration = Duration::from_secs(5);

/// Whether this `covet host` should supervise (`processes:` above 1, and not
/// itself a child).
pub fn supervises(manifest: &Manifest) -> bool {
    manifest.processes.count() > 1 && std::env::var_os(child::PROCESS_ENV).is_none()
}

/// Runs the supervisor until SIGINT/SIGTERM, then stops the children.
pub async fn run(manifest: Manifest, watch: bool) -> Result<(), HostError> {
    if watch {
        let message = "--watch reloads one process; with `processes:` above 1 apply changes with `covet reload` / `covet plugin swap` (the admin API), or run with `processes: 1` while developing";
        return Err(HostError::Admin(message.into()));
    }
    let admin = AdminConfig::resolve(&manifest.admin)?;
    let count = manifest.processes.count();
    let (reserved, listen) = reserve(&manifest.listen)?;
    let dir = PrivateDir::create()?;
    let state = match manifest.services.state.backend {
        StateBackend::Memory => Some(serve_state(dir.path())?),
        StateBackend::Redis => None,
    };
    let launch = Launch {
        exe: std::env::current_exe()?,
        manifest: manifest.source.clone(),
        count,
        listen: listen.clone(),
        state,
        token: random_token()?,
        start_timeout: START_TIMEOUT,
    };
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let fleet = Arc::new(Fleet::new(launch, exits_tx));
    let grace = manifest.limits.shutdown_timeout + STOP_SLACK;
    let mut signals = Signals::new()?;
    tokio::select! {
        started = fleet.start() => started?,
        _ = signals.next() => {
            fleet.stop(grace).await;
            return Ok(());
        }
    }
    announce(&manifest.listen, &listen)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(config) = admin {
        admin::start(config, fleet.clone(), stop_rx).await?;
    }
    tracing::info!(processes = count, "supervisor: every host process serving");
    loop {
        tokio::select! {
            Some(exit) = exits.recv() => fleet.exited(exit).await,
            _ = signals.next() => break,
        }
    }
    let _ = stop_tx.send(true);
    fleet.stop(grace).await;
    drop(reserved);
    Ok(())
}

/// Binds each address once (`SO_REUSEPORT`, not listening: no connection
/// queues on it) so that port 0 becomes one port all children share.
fn reserve(specs: &[ListenSpec]) -> Result<(Vec<Socket>, Vec<SocketAddr>), HostError> {
    let mut sockets = Vec::with_capacity(specs.len());
    let mut addrs = Vec::with_capacity(specs.len());
    for spec in specs {
        let addr = spec.addr;
        let bind = |addr: SocketAddr| -> std::io::Result<Socket> {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.bind(&addr.into())?;
            Ok(socket)
        };
        let socket = bind(addr).map_err(|source| HostError::Bind { addr, source })?;
        let real = socket.local_addr()?.as_socket().ok_or_else(|| HostError::Admin(format!("{addr} is not an IP address")))?;
        sockets.push(socket);
        addrs.push(real);
    }
    Ok((sockets, addrs))
}

/// The listener lines a single host prints, once every child serves.
fn announce(specs: &[ListenSpec], addrs: &[SocketAddr]) -> Result<(), HostError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for (spec, addr) in specs.iter().zip(addrs) {
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        writeln!(out, "listening on {scheme}://{addr}")?;
        if spec.tls.is_some() && spec.http3 {
            writeln!(out, "listening on h3://{addr}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Starts the shared state server on `dir/state.sock`; returns its path.
fn serve_state(dir: &Path) -> Result<PathBuf, HostError> {
    let path = dir.join("state.sock");
    let listener = tokio::net::UnixListener::bind(&path)?;
    let backend: Arc<dyn covet_services::state::SharedState> = covet_services::state::MemoryState::new_with_sweeper();
    tokio::spawn(covet_services::state::serve_state(listener, backend));
    Ok(path)
}

/// A token for the children's admin APIs: 32 random bytes, hex.
fn random_token() -> Result<String, HostError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A directory only this user can enter, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> Result<PrivateDir, HostError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("covet-{}-{}", std::process::id(), &random_token()?[..8]));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SIGTERM and SIGINT.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, HostError> {
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received; stopping every host process"),
            _ = self.int.recv() => tracing::info!("SIGINT received; stopping every host process"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_0_becomes_one_port_that_children_can_also_bind() {
        let location = crate::manifest::Loc { line: 1, column: 1 };
        let spec = ListenSpec { addr: "127.0.0.1:0".parse().unwrap(), location, tls: None, http3: false };
        let (_sockets, addrs) = reserve(&[spec]).unwrap();
        assert_ne!(addrs[0].port(), 0);
        // What a child does: SO_REUSEPORT listeners on the reserved port.
        let (listeners, bound) = crate::server::reuseport::bind(&addrs, 2, 128).unwrap();
        assert_eq!(bound, addrs);
        // The reserving socket does not listen: connections reach the children.
        let client = std::net::TcpStream::connect(addrs[0]).unwrap();
        let accepted = (0..100).find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            listeners.iter().flatten().find_map(|l| l.accept().ok())
        });
        assert!(accepted.is_some(), "no child socket got the connection");
        drop(client);
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
