//! Loading whole manifests: the valid example, defaults, and that semantic
//! problems are collected rather than stopping at the first. The error texts
//! themselves are snapshot-tested in `host/tests/manifest_ui.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The workspace's `tests/manifest` folder.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/manifest")
}

/// Parses `text` as if it were a manifest in `tests/manifest/invalid/`, so
/// `artifacts/libplaceholder.so` exists.
fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(&fixtures().join("invalid/inline.yaml"), text)
}

const PLUGINS: &str = "\
plugins:
  jwt: { kind: native, path: artifacts/libplaceholder.so }
  users:
    kind: native
    path: artifacts/libplaceholder.so
    config:
      greeting: hello
      flags: [y, n]
";

fn with_plugins(rest: &str) -> String {
    format!("listen:\n  - addr: 127.0.0.1:0\n{PLUGINS}{rest}")
}

#[test]
fn the_minimal_example_loads() {
    let manifest = Manifest::load(&fixtures().join("valid/minimal.yaml")).expect("valid manifest");
    assert_eq!(manifest.listen.len(), 1);
    assert_eq!(manifest.listen[0].addr.port(), 0);
    assert_eq!(manifest.plugins.len(), 1);
    assert!(manifest.plugins[0].path.is_absolute());
    assert_eq!(manifest.routes[0].path, "/hello");
}

#[test]
fn omitted_sections_take_their_defaults() {
    let manifest = parse(&with_plugins("")).expect("valid manifest");
    assert_eq!(manifest.limits, Limits::default());
    assert_eq!(manifest.log, LogSettings::default());
    assert!(manifest.routes.is_empty());
}

#[test]
fn limits_read_sizes_and_durations() {
    let text = with_plugins("limits:\n  max_body: 512KiB\n  idle_timeout: 2m\n  max_headers: 20\n");
    let limits = parse(&text).expect("valid manifest").limits;
    assert_eq!(limits.max_body, 512 * 1024);
    assert_eq!(limits.idle_timeout, Duration::from_secs(120));
    assert_eq!(limits.max_headers, 20);
    assert_eq!(limits.max_header_bytes, 16 * 1024);
}

#[test]
fn plugins_keep_order_config_and_key_location() {
    let manifest = parse(&with_plugins("")).expect("valid manifest");
    let names: Vec<&str> = manifest.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["jwt", "users"]);
    let users = manifest.plugin("users").expect("users is defined");
    assert_eq!(users.location, Loc { line: 5, column: 3 });
    assert_eq!(
        users.config,
        serde_json::json!({ "greeting": "hello", "flags": ["y", "n"] })
    );
    assert_eq!(
        manifest.plugin("jwt").map(|p| &p.config),
        Some(&serde_json::Value::Null)
    );
}

#[test]
fn routes_carry_methods_and_name_locations() {
    let text = with_plugins(
        "routes:\n  - path: /api/{id}\n    methods: [GET, POST]\n    filters: [jwt]\n    handler: users\n",
    );
    let route = parse(&text).expect("valid manifest").routes.remove(0);
    assert_eq!(route.methods, [http::Method::GET, http::Method::POST]);
    assert_eq!(
        route.location,
        Loc {
            line: 12,
            column: 11
        }
    );
    assert_eq!(
        route.filters[0],
        Named {
            name: "jwt".to_owned(),
            location: Loc {
                line: 14,
                column: 15
            }
        }
    );
    assert_eq!(
        route.handler.location,
        Loc {
            line: 15,
            column: 14
        }
    );
}

#[test]
fn semantic_problems_are_all_collected_in_document_order() {
    let text = with_plugins(
        "routes:\n  - path: /a\n    filters: [jwt, jwt]\n    handler: userz\n  - path: nope\n    handler: users\n",
    );
    let error = parse(&text).expect_err("invalid manifest");
    let keys: Vec<&str> = error.diagnostics.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "routes[0].filters[1]",
            "routes[0].handler",
            "routes[1].path"
        ]
    );
}

#[test]
fn a_route_without_methods_conflicts_in_every_tree_but_is_reported_once() {
    let text = with_plugins(
        "routes:\n  - path: /u/{id}\n    methods: [GET]\n    handler: users\n  - path: /u/{name}\n    handler: users\n",
    );
    let error = parse(&text).expect_err("conflict");
    assert_eq!(error.diagnostics.len(), 1, "{error}");
    let help = error.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(
        help.contains("routes[0] at line 12, column 11 for GET;"),
        "{help}"
    );
}

#[test]
fn an_unreadable_manifest_is_one_diagnostic_without_location() {
    let error = Manifest::load(Path::new("no/such/manifest.yaml")).expect_err("missing file");
    assert_eq!(error.diagnostics.len(), 1);
    assert!(
        error.diagnostics[0]
            .message
            .starts_with("cannot read the manifest")
    );
    assert!(
        error
            .to_string()
            .ends_with("error: manifest no/such/manifest.yaml has 1 error")
    );
}

#[test]
fn io_backend_and_h2_keepalive_interval_are_read() {
    let defaults = parse(&with_plugins("")).expect("valid manifest");
    assert_eq!(defaults.io, IoBackend::Epoll);
    assert_eq!(defaults.limits.h2_keepalive_interval, Duration::from_secs(20));
    let text = with_plugins("io: uring\nlimits:\n  h2_keepalive_interval: 5s\n");
    let manifest = parse(&text).expect("valid manifest");
    assert_eq!(manifest.io, IoBackend::Uring);
    assert_eq!(manifest.limits.h2_keepalive_interval, Duration::from_secs(5));
}

#[test]
fn an_unknown_io_backend_names_its_location_and_the_choices() {
    let err = parse(&with_plugins("io: kqueue\n")).unwrap_err().to_string();
    assert!(err.contains("kqueue") && err.contains("epoll") && err.contains("uring"), "{err}");
    assert!(err.contains(":11:"), "line 11 (after 10 lines of listen and plugins): {err}");
}
