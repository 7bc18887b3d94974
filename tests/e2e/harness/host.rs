//! Starting and stopping the real `covet host` process.

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
    logs: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

/// Options for starting a host.
pub struct HostBuilder {
    manifest: String,
    listeners: usize,
    env: Vec<(String, String)>,
}

impl HostBuilder {
    /// Sets an environment variable for the host process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How many `listening on` lines to wait for (default 1).
    pub fn listeners(mut self, n: usize) -> Self {
        self.listeners = n;
        self
    }

    /// Starts the host and waits for its listeners.
    pub fn start(self) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let manifest = dir.path().join("plugins.yaml");
        std::fs::write(&manifest, &self.manifest).expect("write manifest");
        let mut cmd = Command::new(covet_bin());
        cmd.arg("host").arg("--plugins").arg(&manifest).current_dir(dir.path());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).env("COVET_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn covet");
        let logs = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("stderr"), logs.clone());
        let addrs = read_addrs(&mut child, self.listeners, &logs);
        Host { child, addrs, logs, dir }
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut logs = into.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    });
}

fn read_addrs(child: &mut Child, n: usize, logs: &Arc<Mutex<String>>) -> Vec<SocketAddr> {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut addrs = Vec::new();
    while addrs.len() < n {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    addrs.push(addr.parse().expect("address"));
                }
            }
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                panic!("covet exited before listening; stderr:\n{}", logs.lock().unwrap());
            }
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    addrs
}

impl Host {
    /// A builder for a host serving `manifest` (YAML text; relative paths are
    /// relative to a fresh temp dir, so use absolute artifact paths).
    pub fn builder(manifest: impl Into<String>) -> HostBuilder {
        HostBuilder { manifest: manifest.into(), listeners: 1, env: Vec::new() }
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
