//! The listener sockets of both I/O backends: one per worker thread and
//! address, all bound with `SO_REUSEPORT` to the same address, so the kernel
//! spreads new connections over the threads (an accept storm lands on every
//! core, and a connection never leaves the thread that accepted it). With
//! port 0 the first socket picks the port and the rest bind to it.

use std::{
    io,
    net::{SocketAddr, TcpListener as StdListener},
    num::NonZeroUsize,
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::HostError;

/// How many worker threads: `configured` (`workers:`), else one per core
/// this process may run on (`available_parallelism` honours `taskset` and
/// cgroup CPU sets).
pub fn threads(configured: Option<NonZeroUsize>) -> usize {
    configured.map_or_else(|| std::thread::available_parallelism().map_or(1, usize::from), usize::from)
}

/// Binds `threads` SO_REUSEPORT sockets to each address, each listening
/// with `backlog`. Returns, per thread, one listener per address, and the
/// bound addresses.
pub fn bind(addrs: &[SocketAddr], threads: usize, backlog: u32) -> Result<(Vec<Vec<StdListener>>, Vec<SocketAddr>), HostError> {
    let threads = threads.max(1);
    let mut per_thread: Vec<Vec<StdListener>> = (0..threads).map(|_| Vec::with_capacity(addrs.len())).collect();
    let mut bound = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let first = listener(addr, backlog).map_err(|source| HostError::Bind { addr, source })?;
        let real = first.local_addr()?;
        per_thread[0].push(first);
        for listeners in per_thread.iter_mut().skip(1) {
            listeners.push(listener(real, backlog).map_err(|source| HostError::Bind { addr: real, source })?);
        }
        bound.push(real);
    }
    Ok((per_thread, bound))
}

fn listener(addr: SocketAddr, backlog: u32) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_sockets_share_one_picked_port() {
        let (per_thread, bound) = bind(&["127.0.0.1:0".parse().unwrap()], 3, 128).unwrap();
        assert_eq!(per_thread.len(), 3);
        assert_ne!(bound[0].port(), 0);
        for listeners in &per_thread {
            assert_eq!(listeners[0].local_addr().unwrap(), bound[0]);
        }
    }

    #[test]
    fn the_configured_worker_count_wins() {
        assert_eq!(threads(NonZeroUsize::new(3)), 3);
        assert!(threads(None) >= 1);
    }
}
