//! Snapshot tests of manifest error messages: each
//! `tests/manifest/invalid/NAME.yaml` is checked by the real binary
//! (`covet check --plugins …`, run from the workspace root) and its stderr
//! must equal `NAME.err` exactly. `UPDATE_SNAPSHOTS=1` rewrites the `.err`
//! files instead of comparing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root; manifest paths in messages are relative to it.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ lives in the workspace")
}

/// `tests/manifest/invalid/*.yaml`, relative to the workspace root, sorted.
fn cases() -> Vec<PathBuf> {
    let dir = Path::new("tests/manifest/invalid");
    let entries = fs::read_dir(workspace_root().join(dir)).expect("the invalid cases folder");
    let mut cases: Vec<PathBuf> = entries
        .map(|entry| dir.join(entry.expect("a folder entry").file_name()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    cases.sort();
    cases
}

/// Runs `covet check` on one case; returns stderr, or why the run is wrong.
fn check(case: &Path) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_covet"))
        .args(["check", "--plugins"])
        .arg(case)
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("cannot run covet: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(2) => Ok(stderr),
        other => Err(format!(
            "exit code {other:?}, expected 2; stderr:\n{stderr}"
        )),
    }
}

/// Compares (or, when updating, rewrites) one case's snapshot.
fn compare(case: &Path, update: bool) -> Result<(), String> {
    let actual = check(case)?;
    let snapshot = workspace_root().join(case.with_extension("err"));
    if update {
        return fs::write(&snapshot, &actual).map_err(|e| format!("cannot write snapshot: {e}"));
    }
    let expected = fs::read_to_string(&snapshot).unwrap_or_default();
    match actual == expected {
        true => Ok(()),
        false => Err(format!(
            "stderr differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
            snapshot.display()
        )),
    }
}

#[test]
fn invalid_manifests_report_the_expected_errors() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(
        cases.len() >= 14,
        "expected at least 14 cases, found {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            compare(case, update)
                .err()
                .map(|e| format!("{}: {e}", case.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
