//! The child's side of process mode: what a host started by the supervisor
//! reads from its environment, and the start-up handshake it speaks on its
//! stdin and stdout.
//!
//! A child loads its plugins and starts its admin API (on `127.0.0.1:0`,
//! with a token only the supervisor knows) before it binds any data
//! listener, prints [`READY`], and waits for the supervisor's `serve` line.
//! In between, the supervisor replays the swaps and reloads the other
//! children applied since start-up (a respawned child must not serve an
//! older build than its siblings). Then the child binds its SO_REUSEPORT
//! sockets on the ports the supervisor reserved, prints [`SERVING`] and
//! serves. When its stdin closes (the supervisor is gone), it shuts down.

use std::{net::SocketAddr, path::PathBuf};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{error::HostError, manifest::ListenSpec};

/// `INDEX/COUNT`: set on a child by the supervisor.
pub const PROCESS_ENV: &str = "COVET_PROCESS";
/// The listen addresses the supervisor reserved, comma-separated, in manifest order.
pub const LISTEN_ENV: &str = "COVET_PROCESS_LISTEN";
/// The Unix socket of the supervisor's shared state, when it keeps it.
pub const STATE_ENV: &str = "COVET_PROCESS_STATE";

/// The line a child prints when its plugins are live (and it is not yet serving).
pub const READY: &str = "covet-process ready";
/// The line a child prints once its listeners are bound.
pub const SERVING: &str = "covet-process serving";
/// The line the supervisor writes to tell a ready child to serve.
pub const SERVE: &str = "serve";

/// A host started by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRole {
    /// Its index, 0 to `count - 1`.
    pub index: usize,
    /// How many children the supervisor runs.
    pub count: usize,
    /// The addresses to bind, in manifest order (ports already chosen).
    pub listen: Vec<SocketAddr>,
}

impl ChildRole {
    /// The role this process was started with; `None` outside process mode.
    pub fn from_env() -> Result<Option<ChildRole>, HostError> {
        let Some(process) = std::env::var_os(PROCESS_ENV) else { return Ok(None) };
        let listen = std::env::var(LISTEN_ENV).unwrap_or_default();
        ChildRole::parse(&process.to_string_lossy(), &listen).map(Some).map_err(HostError::Admin)
    }

    fn parse(process: &str, listen: &str) -> Result<ChildRole, String> {
        let bad = || format!("{PROCESS_ENV}=\"{process}\" is not INDEX/COUNT (it is set by the supervisor; unset it to run a single host)");
        let (index, count) = process.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (index.parse().map_err(|_| bad())?, count.parse().map_err(|_| bad())?);
        if index >= count {
            return Err(bad());
        }
        let listen = listen
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|_| format!("{LISTEN_ENV}: \"{a}\" is not IP:PORT")))
            .collect::<Result<_, _>>()?;
        Ok(ChildRole { index, count, listen })
    }

    /// The manifest's listeners on the reserved ports. HTTP/3 is served by
    /// child 0 only: a QUIC connection's datagrams must all reach the
    /// process that holds its state, which SO_REUSEPORT's hash does not
    /// promise once a client's address changes.
    pub fn listeners(&self, specs: &[ListenSpec]) -> Result<Vec<ListenSpec>, HostError> {
        if self.listen.len() != specs.len() {
            let message = format!("{LISTEN_ENV} has {} addresses for {} listeners", self.listen.len(), specs.len());
            return Err(HostError::Admin(message));
        }
        let spec = |(spec, addr): (&ListenSpec, &SocketAddr)| ListenSpec { addr: *addr, http3: spec.http3 && self.index == 0, ..spec.clone() };
        Ok(specs.iter().zip(&self.listen).map(spec).collect())
    }

    /// The shared state's socket, when the supervisor keeps the state.
    pub fn state_socket() -> Option<PathBuf> {
        std::env::var_os(STATE_ENV).map(PathBuf::from)
    }
}

/// Prints `line` on stdout at once (the supervisor reads it).
pub fn announce(line: &str) -> Result<(), HostError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// What the supervisor said on stdin.
#[derive(Debug, PartialEq, Eq)]
pub enum Order {
    /// Bind the listeners and serve.
    Serve,
    /// stdin closed: the supervisor is gone; shut down.
    Gone,
}

/// The supervisor's orders, read from stdin.
pub struct Orders {
    lines: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
}

impl Orders {
    /// Reads orders from this process's stdin.
    pub fn stdin() -> Orders {
        Orders { lines: BufReader::new(tokio::io::stdin()).lines() }
    }

    /// The next order; unknown lines are logged and skipped.
    pub async fn next(&mut self) -> Order {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) if line.trim() == SERVE => return Order::Serve,
                Ok(Some(line)) => tracing::warn!(line, "unknown order from the supervisor; ignored"),
                Ok(None) | Err(_) => return Order::Gone,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_reads_index_count_and_the_reserved_ports() {
        let role = ChildRole::parse("1/3", "127.0.0.1:8080,[::1]:8443").unwrap();
        assert_eq!((role.index, role.count), (1, 3));
        assert_eq!(role.listen, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap(), "[::1]:8443".parse().unwrap()]);
    }

    #[test]
    fn a_malformed_role_is_refused_with_what_it_should_be() {
        for (process, listen) in [("3/3", ""), ("x/2", ""), ("2", ""), ("0/2", "localhost:80")] {
            let error = ChildRole::parse(process, listen).unwrap_err();
            assert!(error.contains("INDEX/COUNT") || error.contains("IP:PORT"), "{process} {listen}: {error}");
        }
    }

    #[test]
    fn only_the_first_child_serves_http3() {
        let location = crate::manifest::Loc { line: 1, column: 1 };
        let spec = ListenSpec { addr: "127.0.0.1:0".parse().unwrap(), location, tls: None, http3: true };
        let first = ChildRole::parse("0/2", "127.0.0.1:9000").unwrap().listeners(std::slice::from_ref(&spec)).unwrap();
        let second = ChildRole::parse("1/2", "127.0.0.1:9000").unwrap().listeners(std::slice::from_ref(&spec)).unwrap();
        assert_eq!(first[0].addr.port(), 9000);
        assert!(first[0].http3 && !second[0].http3);
        let too_few = ChildRole::parse("0/2", "").unwrap().listeners(&[spec]);
        assert!(too_few.is_err());
    }
}
