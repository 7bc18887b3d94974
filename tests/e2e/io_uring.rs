//! The io_uring backend (`io: uring` / `COVET_IO=uring`): the host really
//! serves through io_uring when asked (its fds include an io_uring instance,
//! its log names the backend), `COVET_IO` overrides the manifest, and where
//! the kernel refuses io_uring (here: a seccomp filter on `io_uring_setup`,
//! installed in the child before it execs covet) the host says so in one
//! line and serves on epoll.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use covet_e2e::{Client, Host, Manifest, Route, covet_bin, io_uring_fds};

use crate::common::{PATIENCE, labelled};

fn echo() -> Manifest {
    Manifest::new().plugin("echo", "covet-test-plugin", labelled("echo")).route(Route::new("/echo").handler("echo"))
}

/// The manifest with a top-level `io:` key.
fn echo_on(io: &str) -> String {
    format!("{}\nio: {io}\n", String::from(echo()))
}

#[tokio::test]
async fn covet_io_uring_serves_http1_and_http2_through_io_uring() {
    let host = Host::builder(echo()).env("COVET_IO", "uring").start();
    host.wait_ready().await;
    let line = host.log_line(&["io backend: uring ("]).await;
    assert!(line.is_some_and(|l| l.contains("threads)")), "no backend line; logs:\n{}", host.logs());
    assert!(io_uring_fds(host.pid()) >= 1, "no anon_inode:[io_uring] among the host's fds");
    for client in [host.http1(), host.http2()] {
        let reply = client.get("/echo").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["label"], "echo");
    }
}

#[tokio::test]
async fn manifest_io_uring_is_used_and_covet_io_epoll_overrides_it() {
    let uring = Host::builder(echo_on("uring")).env_remove("COVET_IO").start();
    uring.wait_ready().await;
    assert!(uring.log_line(&["io backend: uring"]).await.is_some(), "logs:\n{}", uring.logs());
    assert_eq!(uring.http1().get("/echo").await.unwrap().status, 200);

    let epoll = Host::builder(echo_on("uring")).env("COVET_IO", "epoll").start();
    epoll.wait_ready().await;
    assert!(epoll.log_line(&["io backend: epoll"]).await.is_some(), "logs:\n{}", epoll.logs());
    assert_eq!(io_uring_fds(epoll.pid()), 0, "epoll was asked for, yet the host holds an io_uring");
    assert_eq!(epoll.http1().get("/echo").await.unwrap().status, 200);
}

#[test]
fn an_unknown_covet_io_value_is_refused_with_the_choices() {
    let exited = Host::builder(echo()).env("COVET_IO", "kqueue").run_to_exit(PATIENCE);
    assert_eq!(exited.status.code(), Some(1), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("COVET_IO=\"kqueue\""), "stderr:\n{}", exited.stderr);
    assert!(exited.stderr.contains("`epoll` or `uring`"), "stderr:\n{}", exited.stderr);
}

/// A seccomp filter that fails `io_uring_setup` with ENOSYS (as on a kernel
/// without io_uring) and allows every other system call.
fn deny_io_uring_setup() -> std::io::Result<()> {
    let (ld, jeq, ret) = ((libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16, (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, (libc::BPF_RET | libc::BPF_K) as u16);
    let stmt = |code, k| libc::sock_filter { code, jt: 0, jf: 0, k };
    let mut filter = [
        stmt(ld, 0), // seccomp_data.nr
        libc::sock_filter { code: jeq, jt: 0, jf: 1, k: libc::SYS_io_uring_setup as u32 },
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
    // SAFETY: plain prctl calls with a valid, live filter program.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const libc::sock_fprog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[tokio::test]
async fn refused_io_uring_falls_back_to_epoll_with_one_log_line_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("plugins.yaml");
    std::fs::write(&manifest, echo_on("uring")).unwrap();
    let mut cmd = Command::new(covet_bin());
    cmd.arg("host").arg("--plugins").arg(&manifest).current_dir(dir.path());
    cmd.env("COVET_ADMIN_LISTEN", "127.0.0.1:0").env_remove("COVET_IO");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the closure only makes two prctl calls (async-signal-safe).
    unsafe { cmd.pre_exec(deny_io_uring_setup) };
    let mut child = cmd.spawn().expect("spawn covet");
    // Read stderr as it comes, so a chatty host can never block on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = stdout.find_map(|l| l.ok()?.strip_prefix("listening on http://")?.parse().ok());
    let addr = addr.expect("the host prints its address");

    let client = Client::http1(addr);
    let started = Instant::now();
    let served = loop {
        match client.get("/echo").await {
            Ok(reply) if reply.status == 200 => break true,
            _ if started.elapsed() > PATIENCE => break false,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let pid = child.id();
    let fds = io_uring_fds(pid);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the host did not exit within {PATIENCE:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = logs.join().expect("stderr reader");

    assert!(served, "the host did not serve on the fallback; logs:\n{logs}");
    assert_eq!(fds, 0, "io_uring_setup was refused, yet the host holds an io_uring");
    let fallback: Vec<_> = logs.lines().filter(|l| l.contains("falling back to epoll")).collect();
    assert_eq!(fallback.len(), 1, "one fallback line; logs:\n{logs}");
    assert!(fallback[0].contains("io_uring is unavailable"), "{}", fallback[0]);
    assert!(logs.contains("io backend: epoll"), "logs:\n{logs}");
}
