//! The children as one host: starting them, replacing one that dies, and
//! applying an admin change to all of them.
//!
//! **Changes are atomic from the operator's view.** A swap, plugin reload
//! or manifest reload is applied first to one child (the *canary*). If the
//! canary refuses it, its answer is the answer and nothing changed
//! anywhere. If it accepts, the change joins the *replay log* and goes to
//! every other child; the admin call answers only when all have applied it.
//! A child that cannot (it died, or refused what the canary accepted) is
//! killed: its replacement replays the log before it binds a listener, so
//! no request that starts after the answer runs an older build.
//!
//! **A child that dies** (a segfault in a Python C extension, say) is
//! replaced; the others keep serving, native routes included. Its
//! replacement starts under the same lock as changes, so it cannot miss one.
//! A child that keeps dying within [`STABLE`] of its start is replaced after
//! a growing delay (up to [`MAX_BACKOFF`]).

use std::{
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use tokio::sync::{Mutex, mpsc};

use super::{
    forward::{Answer, Forwarder, Op},
    process::{Exit, Launch, Process},
};
use crate::error::HostError;

/// A child that lives at least this long counts as started well.
pub const STABLE: Duration = Duration::from_secs(10);
/// The longest wait before replacing a child that keeps dying.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a ready child may take to bind its listeners.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// The children and what they share.
pub struct Fleet {
    launch: Launch,
    inner: Mutex<Inner>,
    admins: RwLock<Vec<Option<SocketAddr>>>,
    forwarder: Forwarder,
    exits: mpsc::UnboundedSender<Exit>,
    stopping: AtomicBool,
    /// Children replaced after they died.
    pub restarts: AtomicU64,
    /// Replayed changes a replacement child refused.
    pub replay_failures: AtomicU64,
}

struct Inner {
    children: Vec<Option<Child>>,
    log: Vec<Op>,
}

struct Child {
    process: Process,
    started: Instant,
    backoff: Duration,
}

impl Fleet {
    /// A fleet for `launch`; children's ends are reported on `exits`.
    pub fn new(launch: Launch, exits: mpsc::UnboundedSender<Exit>) -> Fleet {
        let forwarder = Forwarder::new(launch.token.clone());
        let children = (0..launch.count).map(|_| None).collect();
        Fleet {
            admins: RwLock::new(vec![None; launch.count]),
            inner: Mutex::new(Inner { children, log: Vec::new() }),
            launch,
            forwarder,
            exits,
            stopping: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            replay_failures: AtomicU64::new(0),
        }
    }

    /// How many children the fleet runs.
    pub fn count(&self) -> usize {
        self.launch.count
    }

    /// Starts every child and waits until all serve. On failure the
    /// children already started are stopped (dropped, so killed).
    pub async fn start(&self) -> Result<(), HostError> {
        let mut inner = self.inner.lock().await;
        let started = join_all((0..self.launch.count).map(|i| Process::start(&self.launch, i, self.exits.clone()))).await;
        let mut processes = started.into_iter().collect::<Result<Vec<_>, _>>()?;
        for process in &mut processes {
            process.serve(SERVE_TIMEOUT).await?;
        }
        for process in processes {
            self.install(&mut inner, process, Duration::ZERO);
        }
        Ok(())
    }

    fn install(&self, inner: &mut Inner, process: Process, backoff: Duration) {
        let index = process.index;
        self.admins.write().unwrap_or_else(|p| p.into_inner())[index] = Some(process.admin);
        inner.children[index] = Some(Child { process, started: Instant::now(), backoff });
    }

    /// The admin address of the first live child (the canary).
    pub fn first_admin(&self) -> Option<SocketAddr> {
        self.admins.read().unwrap_or_else(|p| p.into_inner()).iter().flatten().next().copied()
    }

    /// Every live child's admin address.
    pub fn admins(&self) -> Vec<SocketAddr> {
        self.admins.read().unwrap_or_else(|p| p.into_inner()).iter().flatten().copied().collect()
    }

    /// The forwarding client.
    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }

    /// Applies a change to every child (see the module docs); the canary's answer.
    pub async fn apply(&self, op: Op) -> Answer {
        let mut inner = self.inner.lock().await;
        let live: Vec<(usize, SocketAddr)> = inner.children.iter().flatten().map(|c| (c.process.index, c.process.admin)).collect();
        // The canary is the first child that answers; one that cannot be
        // reached (it just died) is replaced, and replays what it missed.
        let mut canary = None;
        for &(index, admin) in &live {
            let answer = self.forwarder.send(admin, &op).await;
            if !answer.unreached {
                canary = Some((index, answer));
                break;
            }
            tracing::warn!(process = index, "a host process did not answer a change; replacing it");
            self.kill(&inner, index);
        }
        let Some((canary, answer)) = canary else {
            return Answer::unavailable("no host process is running (one is being replaced); try again", op.grpc);
        };
        if !answer.succeeded() {
            return answer;
        }
        inner.log.push(op.clone());
        let rest = live.iter().filter(|(i, _)| *i > canary);
        let sent = join_all(rest.map(|&(i, admin)| {
            let op = &op;
            async move { (i, self.forwarder.send(admin, op).await) }
        }));
        for (index, other) in sent.await {
            if !other.succeeded() {
                tracing::error!(process = index, status = %other.status, body = %String::from_utf8_lossy(&other.body), "a process refused a change the others applied; replacing it");
                self.kill(&inner, index);
            }
        }
        answer
    }

    /// Kills child `index`; its end is reported and it is replaced.
    fn kill(&self, inner: &Inner, index: usize) {
        if let Some(child) = inner.children[index].as_ref() {
            child.process.signal(libc::SIGKILL);
        }
    }

    /// A child ended: unless the host is stopping, it is replaced.
    pub async fn exited(self: &Arc<Self>, exit: Exit) {
        if self.stopping.load(Relaxed) {
            return;
        }
        let backoff = {
            let mut inner = self.inner.lock().await;
            let slot = &mut inner.children[exit.index];
            if slot.as_ref().is_none_or(|c| c.process.pid != exit.pid) {
                return; // a child that never served, or one already replaced
            }
            let child = slot.take().expect("checked");
            self.admins.write().unwrap_or_else(|p| p.into_inner())[exit.index] = None;
            next_backoff(child.started.elapsed(), child.backoff)
        };
        self.restarts.fetch_add(1, Relaxed);
        tracing::error!(process = exit.index, pid = exit.pid, status = %exit.status, ?backoff, "a host process died; replacing it (the others keep serving)");
        let fleet = Arc::clone(self);
        tokio::spawn(async move { fleet.replace(exit.index, backoff).await });
    }

    async fn replace(self: Arc<Self>, index: usize, mut backoff: Duration) {
        loop {
            tokio::time::sleep(backoff).await;
            if self.stopping.load(Relaxed) {
                return;
            }
            let mut inner = self.inner.lock().await;
            match self.start_replacement(&inner.log, index).await {
                Ok(process) => {
                    tracing::info!(process = index, pid = process.pid, replayed = inner.log.len(), "replacement process serving");
                    self.install(&mut inner, process, backoff);
                    return;
                }
                Err(e) => {
                    drop(inner);
                    backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
                    tracing::error!(process = index, ?backoff, "replacement failed: {e}; retrying");
                }
            }
        }
    }

    async fn start_replacement(&self, log: &[Op], index: usize) -> Result<Process, HostError> {
        let mut process = Process::start(&self.launch, index, self.exits.clone()).await?;
        for op in log {
            let answer = self.forwarder.send(process.admin, op).await;
            if !answer.succeeded() {
                self.replay_failures.fetch_add(1, Relaxed);
                let body = String::from_utf8_lossy(&answer.body);
                tracing::error!(process = index, op = %op.path, status = %answer.status, %body, "a replayed change was refused; this process may run another build than the others");
            }
        }
        process.serve(SERVE_TIMEOUT).await?;
        Ok(process)
    }

    /// Stops every child: SIGTERM (each drains as a single host does), then
    /// SIGKILL after `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Relaxed);
        let mut inner = self.inner.lock().await;
        let mut children: Vec<Child> = inner.children.iter_mut().filter_map(Option::take).collect();
        for child in &children {
            child.process.signal(libc::SIGTERM);
        }
        let waits = children.iter_mut().map(|c| c.process.exited(grace));
        let ended = join_all(waits).await;
        for (child, ended) in children.iter().zip(ended) {
            if !ended {
                tracing::warn!(process = child.process.index, "did not stop within the shutdown timeout; killing it");
                child.process.signal(libc::SIGKILL);
            }
        }
    }

    /// The replay log's length (changes applied since start-up).
    pub async fn changes(&self) -> usize {
        self.inner.lock().await.log.len()
    }
}

/// The wait before replacing a child that lived `lived`, after `previous`.
fn next_backoff(lived: Duration, previous: Duration) -> Duration {
    if lived >= STABLE {
        return Duration::ZERO;
    }
    (previous * 2).clamp(Duration::from_millis(250), MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_lived_is_replaced_at_once_and_a_crash_loop_backs_off() {
        assert_eq!(next_backoff(STABLE, Duration::from_secs(8)), Duration::ZERO);
        let first = next_backoff(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(first, Duration::from_millis(250));
        assert_eq!(next_backoff(Duration::from_secs(1), first), Duration::from_millis(500));
        assert_eq!(next_backoff(Duration::ZERO, MAX_BACKOFF), MAX_BACKOFF);
    }
}
