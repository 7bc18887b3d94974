//! uvicorn from the project venv (`scripts/python-env.sh`), the reference
//! server of the ASGI differential tests.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use covet_e2e::workspace_root;

use crate::common::PATIENCE;

/// The project venv (FastAPI, Starlette, Django, uvicorn).
pub fn venv() -> PathBuf {
    let venv = workspace_root().join(".venv");
    assert!(venv.join("bin/python").exists(), "{} is missing: run `bash scripts/python-env.sh` (scripts/test.sh does)", venv.display());
    venv
}

/// uvicorn serving one app; killed on drop.
pub struct Uvicorn {
    child: Child,
    /// Its stderr, shown when it fails to start.
    log: tempfile::NamedTempFile,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Uvicorn {
    /// Serves `app` (`module:attr`) from `app_dir`, with `env` set, lifespan when the app supports it.
    pub fn start(app_dir: &Path, app: &str, env: &[(&str, &str)]) -> Uvicorn {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new(venv().join("bin/python"))
            .args(["-m", "uvicorn", "--app-dir"])
            .arg(app_dir)
            .args([app, "--host", "127.0.0.1", "--port", &port.to_string(), "--no-access-log", "--lifespan", "auto"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("spawn uvicorn");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + PATIENCE;
        let mut uvicorn = Uvicorn { child, log, addr };
        while TcpStream::connect(addr).is_err() {
            let exited = uvicorn.child.try_wait().expect("wait");
            assert!(exited.is_none() && Instant::now() < deadline, "uvicorn did not start listening on {addr} ({exited:?}): {}", uvicorn.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        // The free port was taken by another test's server in between: its
        // answers would be compared as uvicorn's.
        if let Some(status) = uvicorn.child.try_wait().expect("wait") {
            panic!("uvicorn exited ({status}) while {addr} answers: {}", uvicorn.stderr());
        }
        uvicorn
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (lifespan shutdown included).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "uvicorn did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Uvicorn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
