//! What an attack costs the host, read from `/proc/<pid>` (CPU time:
//! utime + stime; resident memory: VmRSS), and a well-behaved client that
//! keeps making requests while the attack runs, counting what it got.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use covet_e2e::{Client, Host};

/// The host's CPU time and resident memory at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident set size in bytes.
    pub rss: u64,
}

impl Usage {
    /// Reads the process's usage now.
    pub fn of(pid: u32) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
        // Fields after the command (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat[stat.rfind(')').expect("(comm)") + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after the command.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let cpu = Duration::from_millis(ticks * 1000 / per_sec);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS");
        Usage { cpu, rss: kib * 1024 }
    }
}

/// What an attack cost: CPU spent and how far RSS rose above the start.
#[derive(Debug)]
pub struct Cost {
    /// CPU time the host spent during the attack.
    pub cpu: Duration,
    /// RSS growth: the highest sample during the attack minus the start.
    pub rss_growth: u64,
    /// RSS at the start.
    pub rss_before: u64,
    /// The host's I/O backend: `uring` when it holds io_uring instances.
    pub backend: &'static str,
}

/// Samples the host's RSS while an attack runs, keeping the highest.
pub struct Meter {
    pid: u32,
    start: Usage,
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Meter {
    /// Starts sampling `host` every 20 ms.
    pub fn start(host: &Host) -> Meter {
        let pid = host.pid();
        let start = Usage::of(pid);
        let (peak, stop) = (Arc::new(AtomicUsize::new(start.rss as usize)), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Relaxed) {
                if let Ok(stat) = std::panic::catch_unwind(|| Usage::of(pid)) {
                    p.fetch_max(stat.rss as usize, Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Meter { pid, start, peak, stop, task }
    }

    /// Stops sampling; the cost since [`Meter::start`].
    pub async fn stop(self) -> Cost {
        self.stop.store(true, Relaxed);
        let _ = self.task.await;
        let end = Usage::of(self.pid);
        let peak = (self.peak.load(Relaxed) as u64).max(end.rss);
        let backend = if covet_e2e::io_uring_fds(self.pid) > 0 { "uring" } else { "epoll" };
        let (cpu, rss_growth) = (end.cpu.saturating_sub(self.start.cpu), peak.saturating_sub(self.start.rss));
        Cost { cpu, rss_growth, rss_before: self.start.rss, backend }
    }
}

/// A client making one request after another (HTTP/1.1 and HTTP/2 in
/// turn) until stopped, counting answers that were and were not 200.
pub struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Bystander {
    /// Starts requesting `path` from `host`.
    pub fn start(host: &Host, path: &'static str) -> Bystander {
        let clients = [Client::http1(host.addr()), Client::http2(host.addr())];
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let (mut served, mut failed) = (0, Vec::new());
            // Both clients at least once, however short the attack.
            while served + failed.len() == 0 || !stopped.load(Relaxed) {
                for client in &clients {
                    match tokio::time::timeout(crate::common::PATIENCE, client.get(path)).await {
                        Ok(Ok(reply)) if reply.status == 200 => served += 1,
                        Ok(Ok(reply)) => failed.push(format!("status {}", reply.status)),
                        Ok(Err(e)) => failed.push(e),
                        Err(_) => failed.push("no answer in time".to_owned()),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (served, failed)
        });
        Bystander { stop, task }
    }

    /// Stops; asserts no request failed and some were served. Returns how
    /// many were.
    pub async fn finish(self) -> usize {
        self.stop.store(true, Relaxed);
        let (served, failed) = self.task.await.expect("the bystander ran");
        assert!(failed.is_empty(), "a normal client was failed during the attack ({served} served): {failed:?}");
        assert!(served > 0, "a normal client got nothing served during the attack");
        served
    }
}

/// MiB, for printing.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
