//! A redis-server of the test's own, on a unix socket in a temp dir (no TCP
//! port to collide on), killed on drop. redis-server and redis-cli come from
//! Debian's redis-server package, which scripts/test.sh installs.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A running redis-server.
pub struct RedisServer {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one and waits for its socket.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (scripts/test.sh installs it: apt-get install -y redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "redis-server did not create {}", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        RedisServer { child, socket, _dir: dir }
    }

    /// The URL a manifest's `services.state.url` takes.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// `GET key` through redis-cli (empty when absent).
    pub fn get(&self, key: &str) -> String {
        let socket = self.socket.display().to_string();
        let out = Command::new("redis-cli").args(["-s", &socket, "GET", key]).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn freeze(&self) {
        let status = Command::new("kill").args(["-STOP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -STOP failed");
    }

    /// Kills the server now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
