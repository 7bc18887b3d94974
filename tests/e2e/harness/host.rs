//! Starting and stopping the real `covet host` process.
//!
//! Every host gets `COVET_ADMIN_LISTEN=127.0.0.1:0` (so parallel hosts never
//! collide on the admin API's default port) and no `COVET_ADMIN_TOKEN` from
//! the test's own environment, unless the test sets or removes them; the
//! admin address is read from the `admin listening on http://…` line.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{Client, covet_bin};

/// A running host process.
pub struct Host {
    child: Child,
    /// Every address it printed, in listener order.
    pub addrs: Vec<SocketAddr>,
    admin: Arc<Mutex<Option<SocketAddr>>>,
    logs: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

/// Options for starting a host.
pub struct HostBuilder {
    manifest: String,
    listeners: usize,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    cwd: Option<PathBuf>,
}

/// How a host process that ran to its end finished.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

impl HostBuilder {
    /// Sets an environment variable for the host process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the host without environment variable `key` (e.g.
    /// `COVET_ADMIN_LISTEN`, to use the manifest's `admin.listen`).
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env_removed.push(key.into());
        self
    }

    /// How many `listening on` lines to wait for (default 1).
    pub fn listeners(mut self, n: usize) -> Self {
        self.listeners = n;
        self
    }

    /// Writes a file next to the manifest before the host starts (for
    /// configs with paths relative to the manifest's directory).
    pub fn file(mut self, name: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Runs the host in `dir` instead of the manifest's directory (to show
    /// that relative paths resolve against the manifest, not the cwd).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Starts the host and waits for its listeners.
    pub fn start(self) -> Host {
        let (dir, mut cmd) = self.command("host");
        let mut child = cmd.spawn().expect("spawn covet");
        let logs = Arc::new(Mutex::new(String::new()));
        let _ = collect(child.stderr.take().expect("stderr"), logs.clone());
        let admin = Arc::new(Mutex::new(None));
        let addrs = read_addrs(&mut child, self.listeners, &logs, admin.clone());
        Host { child, addrs, admin, logs, dir }
    }

    /// Runs the host without talking to it and waits for it to exit on its
    /// own (panics after `limit`): for hosts that must refuse to start.
    pub fn run_to_exit(self, limit: Duration) -> Exited {
        self.run("host", limit)
    }

    /// Runs `covet check --plugins <manifest>` and waits for it (panics after `limit`).
    pub fn check(self, limit: Duration) -> Exited {
        self.run("check", limit)
    }

    fn run(self, subcommand: &str, limit: Duration) -> Exited {
        let (_dir, mut cmd) = self.command(subcommand);
        let mut child = cmd.spawn().expect("spawn covet");
        let (stdout, stderr) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        let readers = [
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        let status = wait_with_limit(&mut child, limit);
        readers.into_iter().for_each(|r| r.join().expect("reader"));
        let take = |s: Arc<Mutex<String>>| s.lock().unwrap().clone();
        Exited { status, stdout: take(stdout), stderr: take(stderr) }
    }

    fn command(&self, subcommand: &str) -> (tempfile::TempDir, Command) {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("plugins.yaml");
        std::fs::write(&manifest, &self.manifest).expect("write manifest");
        for (name, contents) in &self.files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        let mut cmd = Command::new(covet_bin());
        cmd.arg(subcommand).arg("--plugins").arg(&manifest).current_dir(self.cwd.as_deref().unwrap_or(dir.path()));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).env("COVET_LOG", "info");
        cmd.env("COVET_ADMIN_LISTEN", "127.0.0.1:0").env_remove("COVET_ADMIN_TOKEN");
        for key in &self.env_removed {
            cmd.env_remove(key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        (dir, cmd)
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut logs = into.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    })
}

/// Reads the `listening on` lines of the first `n` listeners; a thread then
/// reads on and records the `admin listening on` line in `admin`.
fn read_addrs(child: &mut Child, n: usize, logs: &Arc<Mutex<String>>, admin: Arc<Mutex<Option<SocketAddr>>>) -> Vec<SocketAddr> {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addrs = Vec::new();
    while addrs.len() < n {
        match lines.next() {
            Some(Ok(line)) => {
                // Plain and TLS listeners; `listening on h3://` (UDP, same port as its https line) is not counted.
                let addr = line.strip_prefix("listening on http://").or_else(|| line.strip_prefix("listening on https://"));
                if let Some(addr) = addr {
                    addrs.push(addr.parse().expect("address"));
                }
            }
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                panic!("covet exited before listening; stderr:\n{}", logs.lock().unwrap());
            }
        }
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("admin listening on http://") {
                *admin.lock().unwrap() = Some(addr.parse().expect("admin address"));
            }
        }
    });
    addrs
}

impl Host {
    /// A builder for a host serving `manifest` (YAML text; relative paths are
    /// relative to a fresh temp dir, so use absolute artifact paths).
    pub fn builder(manifest: impl Into<String>) -> HostBuilder {
        HostBuilder { manifest: manifest.into(), listeners: 1, env: Vec::new(), env_removed: Vec::new(), files: Vec::new(), cwd: None }
    }

    /// Starts a host on `manifest` and waits until it is ready.
    pub async fn start(manifest: impl Into<String>) -> Host {
        let host = Host::builder(manifest).start();
        host.wait_ready().await;
        host
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The admin API's address, from its `admin listening on` line (waits up
    /// to 10 s for it; panics if the host never printed one).
    pub fn admin_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(addr) = *self.admin.lock().unwrap() {
                return addr;
            }
            assert!(Instant::now() < deadline, "the host printed no `admin listening on` line; logs:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// An HTTP/1.1 client for the first listener.
    pub fn http1(&self) -> Client {
        Client::http1(self.addr())
    }

    /// An h2c (prior knowledge) client for the first listener.
    pub fn http2(&self) -> Client {
        Client::http2(self.addr())
    }

    /// The temp dir the manifest lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Everything the host wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Polls `/_covet/ready` until it answers 200 (panics after 10 s).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = self.http1();
        while Instant::now() < deadline {
            if client.get("/_covet/ready").await.map(|r| r.status == 200).unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("host never became ready; logs:\n{}", self.logs());
    }

    /// The host's process id (for `/proc/PID/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit (panics after `limit`).
    pub fn stop(mut self, limit: Duration) -> ExitStatus {
        self.terminate();
        wait_with_limit(&mut self.child, limit)
    }

    /// Waits for the process to exit without signalling it (panics after
    /// `limit`); e.g. after [`Host::terminate`] while requests are in flight.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_with_limit(&mut self.child, limit)
    }

    /// The first log line containing every one of `needles`, waiting up to
    /// 5 s for it to be written (log lines arrive through a pipe).
    pub async fn log_line(&self, needles: &[&str]) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if let Some(line) = logs.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(line.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn wait_with_limit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("covet did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
