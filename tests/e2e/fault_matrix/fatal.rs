//! Faults that still kill the host, shown so the docs can say what the
//! operator sees: a crash in native code running inside the process (here a
//! Python C call dereferencing NULL, the same SIGSEGV a native plugin's bad
//! pointer raises) and an abort (`os.abort()`, as `std::process::abort` or a
//! panic inside a panic in a native plugin). No catching is possible: the
//! process dies by the signal, every connection drops, and the last lines
//! on stderr are whatever the runtime prints (Python's fault handler, if
//! on, or nothing). A supervisor must restart the host.

use std::os::unix::process::ExitStatusExt;

use covet_e2e::{Host, plugin};

use super::{NATIVE_BODY, NativeLoad};
use crate::common::PATIENCE;

const APP: &str = r#"
import ctypes, os
from covet import Covet

app = Covet()

@app.get("/py/segv")
def segv():
    return ctypes.string_at(0)

@app.get("/py/abort")
def abort():
    os.abort()
"#;

fn manifest() -> String {
    let native = plugin("covet-static-response");
    format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\n\
         log: {{ access: false }}\n\
         plugins:\n\
         \x20 native:\n    kind: native\n    path: {}\n    config: {{ body: {NATIVE_BODY} }}\n\
         \x20 py:\n    kind: python\n    app: app.py:app\n\
         routes:\n\
         \x20 - path: /native\n    handler: native\n\
         \x20 - path: /py/{{*rest}}\n    handler: py\n",
        native.display(),
    )
}

/// Requests `path` with native clients running: the request gets no
/// response, the host exits by `signal`, and the native clients see errors.
/// Returns the host's stderr.
async fn kills_the_host(path: &str, signal: i32, faulthandler: bool) -> String {
    let mut builder = Host::builder(manifest()).file("app.py", APP).env_remove("PYTHONFAULTHANDLER");
    if faulthandler {
        builder = builder.env("PYTHONFAULTHANDLER", "1");
    }
    let mut host = builder.start();
    host.wait_ready().await;
    let load = NativeLoad::start(&host).await;
    let reply = tokio::time::timeout(PATIENCE, host.http1().get(path)).await.expect("the request ends");
    assert!(reply.is_err(), "no response comes from a dead host: {reply:?}");
    let status = host.wait_for_exit(PATIENCE);
    assert_eq!(status.signal(), Some(signal), "the host died by the signal: {status:?}");
    assert!(host.http1().get("/native").await.is_err(), "nothing serves the native route any more");
    load.stop().await;
    let logs = host.logs();
    let after_ready = &logs[logs.rfind("all plugins initialised; ready").expect("the ready line")..];
    println!(
        "fault matrix | {path} | no response, host exited by signal {signal} | stderr after ready:\n{after_ready}"
    );
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfault_in_native_code_kills_the_host_silently() {
    let logs = kills_the_host("/py/segv", libc_signal::SIGSEGV, false).await;
    let after_ready = &logs[logs.rfind("all plugins initialised; ready").expect("the ready line")..];
    assert_eq!(after_ready.lines().count(), 1, "nothing is logged after ready:\n{after_ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_kills_the_host_and_pythons_fault_handler_names_the_line() {
    let logs = kills_the_host("/py/abort", libc_signal::SIGABRT, true).await;
    assert!(logs.contains("Fatal Python error: Aborted"), "{logs}");
    assert!(logs.contains("app.py\", line 13 in abort"), "the handler's line: {logs}");
}

/// Python's fault handler (`PYTHONFAULTHANDLER=1`, `-X faulthandler` or a
/// plugin calling `faulthandler.enable()` when imported) installs handlers
/// for SIGSEGV/SIGILL/SIGFPE/SIGBUS over wasmtime's, which catches them for
/// WASM traps: the first trap killed the host (by SIGILL) instead of being
/// a 500. The host now puts wasmtime's handlers back on top after starting
/// Python and after each Python plugin's load
/// (host/src/runtime/python/signals.rs): a trap is a 500 either way, and the
/// host keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_trap_is_a_500_with_pythons_fault_handler_on() {
    let probe = crate::wasm::component("covet_wasm_probe");
    let manifest = format!(
        "listen: [{{ addr: 127.0.0.1:0 }}]\n\
         plugins:\n\
         \x20 bad:\n    kind: wasm\n    path: {}\n    config: {{ fault: trap }}\n\
         \x20 py:\n    kind: python\n    app: app.py:app\n\
         routes:\n\
         \x20 - path: /bad\n    handler: bad\n\
         \x20 - path: /py/{{*rest}}\n    handler: py\n",
        probe.display(),
    );
    // The environment turns it on at start-up; the second app turns it on itself.
    let enabling_app = format!("import faulthandler, sys\nfaulthandler.enable(file=sys.__stderr__)\n{APP}");
    for (env, app) in [(false, APP.to_owned()), (true, APP.to_owned()), (false, enabling_app)] {
        let mut builder = Host::builder(manifest.as_str()).file("app.py", app.as_str()).env_remove("PYTHONFAULTHANDLER");
        if env {
            builder = builder.env("PYTHONFAULTHANDLER", "1");
        }
        let host = builder.start();
        host.wait_ready().await;
        for _ in 0..3 {
            let reply = host.http1().get("/bad").await;
            let reply = reply.unwrap_or_else(|e| panic!("the host answers a trap (env {env}): {e}; logs:\n{}", host.logs()));
            assert_eq!(reply.status, 500, "a trap is a 500 (env {env}): {}", reply.text());
        }
        println!("fault matrix | wasm trap with the fault handler on (env {env}) | 500, host serving");
    }
}

/// Linux signal numbers (x86-64 and aarch64 agree on these).
mod libc_signal {
    pub const SIGABRT: i32 = 6;
    pub const SIGSEGV: i32 = 11;
}
