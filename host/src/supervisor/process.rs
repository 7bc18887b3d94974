//! One child host process, seen from the supervisor: how it is started,
//! the handshake on its stdout ([`super::child`]), and its end.
//!
//! A child's stdout carries its admin address and the handshake lines; the
//! supervisor forwards everything else (a Python `print`, say) to its own
//! stdout. Its stderr (the logs) is the supervisor's.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{ChildStdin, ChildStdout, Command},
    sync::{mpsc, oneshot},
};

use crate::error::HostError;

use super::child::{LISTEN_ENV, PROCESS_ENV, READY, SERVE, SERVING, STATE_ENV};

/// How every child is started.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The covet binary.
    pub exe: PathBuf,
    /// The manifest.
    pub manifest: PathBuf,
    /// How many children.
    pub count: usize,
    /// The reserved listen addresses, in manifest order.
    pub listen: Vec<SocketAddr>,
    /// The shared state's socket, when the supervisor keeps the state.
    pub state: Option<PathBuf>,
    /// The token of the children's admin APIs.
    pub token: String,
    /// How long a child may take to load its plugins.
    pub start_timeout: Duration,
}

/// Why a child could not be started: a [`HostError::Process`].
fn start_error(index: usize, what: String, code: Option<i32>) -> HostError {
    HostError::Process { message: format!("process {index} {what}"), code }
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Which child.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Its status, in words (`exit status: 0`, `signal: 11 (SIGSEGV)`).
    pub status: String,
    /// Its exit code, when it exited rather than being killed.
    pub code: Option<i32>,
}

/// A running child.
#[derive(Debug)]
pub struct Process {
    /// Which child (0 to count - 1).
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// Its admin API.
    pub admin: SocketAddr,
    stdin: ChildStdin,
    serving: Option<oneshot::Receiver<()>>,
    exited: Option<oneshot::Receiver<Exit>>,
}

impl Process {
    /// Starts child `index` and waits until its plugins are live. Its end
    /// is reported on `exits` (also when it ends during start-up).
    pub async fn start(launch: &Launch, index: usize, exits: mpsc::UnboundedSender<Exit>) -> Result<Process, HostError> {
        let mut command = command(launch, index);
        let mut child = command.spawn().map_err(|e| start_error(index, format!("cannot be started: {e}"), None))?;
        let pid = child.id().unwrap_or_default();
        let (stdin, stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
        let (lines, mut handshake) = mpsc::unbounded_channel();
        tokio::spawn(read_stdout(stdout, lines));
        let (exit_tx, mut exited) = oneshot::channel();
        tokio::spawn(async move {
            let status = child.wait().await;
            let (status, code) = match status {
                Ok(s) => (describe(s), s.code()),
                Err(e) => (format!("unknown: {e}"), None),
            };
            let exit = Exit { index, pid, status, code };
            let _ = exit_tx.send(exit.clone());
            let _ = exits.send(exit);
        });
        let ready = async {
            let mut admin = None;
            while let Some(line) = handshake.recv().await {
                match line {
                    Line::Admin(addr) => admin = Some(addr),
                    Line::Ready => return admin,
                    Line::Serving => {}
                }
            }
            None
        };
        let admin = tokio::select! {
            admin = tokio::time::timeout(launch.start_timeout, ready) => match admin {
                Ok(Some(admin)) => admin,
                Ok(None) => return Err(exited_error(index, &mut exited).await),
                Err(_) => {
                    terminate(pid, libc::SIGKILL);
                    return Err(start_error(index, format!("was not ready within {:?}", launch.start_timeout), None));
                }
            },
            exit = &mut exited => {
                let exit = exit.unwrap_or(Exit { index, pid, status: "unknown".into(), code: None });
                return Err(start_error(index, format!("exited while starting ({})", exit.status), exit.code));
            }
        };
        let (serving_tx, serving) = oneshot::channel();
        tokio::spawn(watch_serving(handshake, serving_tx));
        Ok(Process { index, pid, admin, stdin, serving: Some(serving), exited: Some(exited) })
    }

    /// Tells the child to bind its listeners; returns once it serves.
    pub async fn serve(&mut self, timeout: Duration) -> Result<(), HostError> {
        let index = self.index;
        let written = async {
            self.stdin.write_all(format!("{SERVE}\n").as_bytes()).await?;
            self.stdin.flush().await
        };
        if written.await.is_err() {
            let mut exited = self.exited.take().expect("serve is called once");
            return Err(exited_error(index, &mut exited).await);
        }
        let serving = self.serving.take().expect("serve is called once");
        match tokio::time::timeout(timeout, serving).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                let mut exited = self.exited.take().expect("serve is called once");
                Err(exited_error(index, &mut exited).await)
            }
            Err(_) => Err(start_error(index, format!("did not bind its listeners within {timeout:?}"), None)),
        }
    }

    /// Waits up to `timeout` for the child to end; whether it did.
    pub async fn exited(&mut self, timeout: Duration) -> bool {
        match self.exited.as_mut() {
            Some(exited) => tokio::time::timeout(timeout, exited).await.is_ok(),
            None => true,
        }
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: libc::c_int) {
        terminate(self.pid, signal);
    }
}

fn command(launch: &Launch, index: usize) -> Command {
    let mut command = Command::new(&launch.exe);
    let listen: Vec<String> = launch.listen.iter().map(ToString::to_string).collect();
    command
        .arg("host")
        .arg("--plugins")
        .arg(&launch.manifest)
        .env(PROCESS_ENV, format!("{index}/{}", launch.count))
        .env(LISTEN_ENV, listen.join(","))
        .env(crate::admin::LISTEN_ENV, "127.0.0.1:0")
        .env(crate::admin::TOKEN_ENV, &launch.token)
        .env_remove("COVET_WATCH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A group of its own: a terminal's Ctrl-C reaches the supervisor
        // only, which stops the children in order (and does not mistake
        // their exits for crashes). If the supervisor is killed, each child
        // sees its stdin close and shuts down.
        .process_group(0)
        .kill_on_drop(true);
    match &launch.state {
        Some(path) => command.env(STATE_ENV, path),
        None => command.env_remove(STATE_ENV),
    };
    command
}

async fn exited_error(index: usize, exited: &mut oneshot::Receiver<Exit>) -> HostError {
    match tokio::time::timeout(Duration::from_secs(5), exited).await {
        Ok(Ok(exit)) => start_error(index, format!("exited while starting ({})", exit.status), exit.code),
        _ => start_error(index, "closed its stdout while starting".into(), None),
    }
}

/// A handshake line from a child's stdout.
enum Line {
    Admin(SocketAddr),
    Ready,
    Serving,
}

async fn read_stdout(stdout: ChildStdout, handshake: mpsc::UnboundedSender<Line>) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let parsed = match line.as_str() {
            READY => Some(Line::Ready),
            SERVING => Some(Line::Serving),
            l => match l.strip_prefix("admin listening on http://") {
                Some(addr) => addr.parse().ok().map(Line::Admin),
                // The children's own listener lines: the supervisor announces the listeners.
                None if l.starts_with("listening on ") => None,
                None => {
                    println!("{line}");
                    None
                }
            },
        };
        if let Some(parsed) = parsed {
            let _ = handshake.send(parsed);
        }
    }
}

async fn watch_serving(mut handshake: mpsc::UnboundedReceiver<Line>, serving: oneshot::Sender<()>) {
    while let Some(line) = handshake.recv().await {
        if let Line::Serving = line {
            let _ = serving.send(());
            return;
        }
    }
}

fn terminate(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    if pid > 0 {
        // SAFETY: kill(2) on a pid this process spawned; no memory is touched.
        unsafe { libc::kill(pid, signal) };
    }
}

/// An exit status in words, with the signal's name (`signal: 11 (SIGSEGV)`).
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status: {code}"),
        (None, Some(signal)) => format!("signal: {signal} ({})", signal_name(signal)),
        _ => status.to_string(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "other",
    }
}
