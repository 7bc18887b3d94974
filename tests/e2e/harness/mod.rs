//! Test harness: start the real `covet` binary on a manifest written to a
//! temp dir, read the bound address from its `listening on http://…` line,
//! talk HTTP/1.1 or h2c to it, and stop it with SIGTERM.
//!
//! Artifacts (the binary and plugin `.so` files) are found next to the test
//! executable's target dir, so any `CARGO_TARGET_DIR` works; build them first
//! with `cargo build --workspace` (scripts/test.sh does).

pub mod certs;
mod client;
mod host;
mod manifest;
mod origin;
pub mod otlp;
mod raw;
mod redis;
mod upstream;
pub mod upstreams;
pub mod secure;

pub use client::{Client, Reply};
pub use host::{Exited, Host, HostBuilder};
pub use manifest::{Manifest, Route};
pub use origin::{Answer, Origin, Seen, http_date, http_date_in};
pub use raw::{Closed, RawConn, RawResponse, get_request};
pub use redis::RedisServer;
pub use upstream::serve_http1;
pub use upstreams::{Filler, TestUpstream};

use std::path::PathBuf;

/// `target/<profile>`: the directory holding the covet binary and plugin libraries.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-<hash>
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").to_path_buf()
}

/// The path of a plugin library by crate name, e.g. `covet-static-response`.
pub fn plugin(crate_name: &str) -> PathBuf {
    let path = artifacts_dir().join(format!("lib{}.so", crate_name.replace('-', "_")));
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)", path.display());
    path
}

/// The covet binary: `$COVET_BIN` when set (scripts/python-versions.sh runs
/// the Python tests with a covet built against another CPython), else the
/// workspace build's.
pub fn covet_bin() -> PathBuf {
    let path = std::env::var_os("COVET_BIN").map(PathBuf::from).unwrap_or_else(|| artifacts_dir().join("covet"));
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// The workspace root (for fixtures such as `tests/fixtures/keys`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// How many of process `pid`'s file descriptors are io_uring instances
/// (`anon_inode:[io_uring]`): proof that a host really runs on io_uring.
pub fn io_uring_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the host's fd table")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|link| link.to_string_lossy() == "anon_inode:[io_uring]")
        .count()
}
