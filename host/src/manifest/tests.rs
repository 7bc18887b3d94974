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
fn slow_client_limits_have_defaults_and_are_read() {
    let defaults = parse(&with_plugins("")).expect("valid manifest").limits;
    assert_eq!(defaults.body_read_timeout, Duration::from_secs(30));
    assert_eq!(defaults.body_min_rate, 500);
    assert_eq!(defaults.send_timeout, Duration::from_secs(60));
    let text = with_plugins("limits:\n  body_read_timeout: 5s\n  body_min_rate: 1KiB\n  send_timeout: 0s\n");
    let limits = parse(&text).expect("valid manifest").limits;
    assert_eq!(limits.body_read_timeout, Duration::from_secs(5));
    assert_eq!(limits.body_min_rate, 1024);
    assert_eq!(limits.send_timeout, Duration::ZERO, "0s turns the send timeout off");
}

#[test]
fn background_max_defaults_to_64_and_is_a_count() {
    assert_eq!(parse(&with_plugins("")).expect("valid manifest").limits.background_max, 64);
    let manifest = parse(&with_plugins("limits:\n  background_max: 0\n")).expect("0 turns background runs off");
    assert_eq!(manifest.limits.background_max, 0);
    let err = parse(&with_plugins("limits:\n  background_max: -1\n")).unwrap_err().to_string();
    assert!(err.contains("limits.background_max") && err.contains(":12:"), "{err}");
    let err = parse(&with_plugins("limits:\n  background_max: lots\n")).unwrap_err().to_string();
    assert!(err.contains("limits.background_max"), "{err}");
}

#[test]
fn an_unknown_io_backend_names_its_location_and_the_choices() {
    let err = parse(&with_plugins("io: kqueue\n")).unwrap_err().to_string();
    assert!(err.contains("kqueue") && err.contains("epoll") && err.contains("uring"), "{err}");
    assert!(err.contains(":11:"), "line 11 (after 10 lines of listen and plugins): {err}");
}

#[test]
fn an_upstreams_block_builds_its_configs() {
    use covet_services::upstream::{Balance, HashKey, Protocol};
    let text = with_plugins(
        "\
upstreams:
  users:
    endpoints: [\"127.0.0.1:9001\", { addr: \"Users.Internal:8080\", weight: 3 }, \"[::1]:9003\"]
    protocol: http2
    balance: { policy: maglev, key: \"header:X-User\", bounded_load: 1.5 }
    sticky: { cookie: covet-sticky, ttl: 1h }
    health:
      active: { path: /healthz, interval: 2s, timeout: 500ms, healthy: 1, unhealthy: 2, statuses: [\"200-299\", 418] }
      passive: { consecutive_5xx: 0, base_ejection: 5s, max_ejection_percent: 100 }
      panic_threshold: 25%
    retries: { attempts: 1, on: [reset, 503], non_idempotent: true, per_try_timeout: 1s, budget: 12.5%, replay_buffer: 1KiB }
    timeout: 10s
    circuit: { max_requests: 8, max_pending: 2, retry_after: 3s }
  orders:
    endpoints: [\"127.0.0.1:9100\"]
    balance: least_request
",
    )
    .replace("  users:\n    kind: native", "  users:\n    capabilities: { upstreams: [users, orders] }\n    kind: native");
    let manifest = parse(&text).expect("valid manifest");
    let names: Vec<&str> = manifest.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["users", "orders"]);
    let users = &manifest.upstreams[0];
    let endpoints: Vec<(&str, u16, u32)> = users.endpoints.iter().map(|e| (e.host.as_str(), e.port, e.weight)).collect();
    assert_eq!(endpoints, [("127.0.0.1", 9001, 1), ("users.internal", 8080, 3), ("::1", 9003, 1)]);
    assert_eq!(users.protocol, Protocol::Http2);
    assert_eq!(users.balance, Balance::Maglev { key: HashKey::Header("x-user".into()), bounded_load: Some(1.5) });
    let sticky = users.sticky.as_ref().expect("sticky");
    assert_eq!((sticky.cookie.as_str(), sticky.ttl), ("covet-sticky", Some(Duration::from_secs(3600))));
    let active = users.active_health.as_ref().expect("active checks");
    assert_eq!((active.interval, active.timeout), (Duration::from_secs(2), Duration::from_millis(500)));
    assert_eq!((active.healthy_threshold, active.unhealthy_threshold), (1, 2));
    assert_eq!(active.expected_statuses, [(200, 299), (418, 418)]);
    let outlier = users.outlier.as_ref().expect("passive");
    assert_eq!((outlier.consecutive_5xx, outlier.consecutive_gateway_errors), (0, 3));
    assert_eq!((outlier.base_ejection, outlier.max_ejection_percent), (Duration::from_secs(5), 100));
    assert_eq!(users.panic_threshold_percent, 25);
    let r = &users.retries;
    assert_eq!((r.max_retries, r.on_connect_failure, r.on_reset, r.on_statuses.as_slice()), (1, false, true, &[503][..]));
    assert!(r.non_idempotent);
    assert_eq!((r.per_try_timeout, r.budget_percent, r.replay_buffer), (Some(Duration::from_secs(1)), 12.5, 1024));
    assert_eq!(users.timeout, Duration::from_secs(10));
    assert_eq!((users.circuit.max_requests, users.circuit.max_pending), (8, 2));
    assert_eq!(manifest.upstreams[1].balance, Balance::LeastRequest);
    assert_eq!(manifest.upstreams[1].retries.on_statuses, [502, 503, 504], "defaults where not written");
    assert_eq!(manifest.plugin("users").expect("users").grants.upstreams, ["users", "orders"]);
}

#[test]
fn a_grant_of_an_undefined_upstream_names_the_defined_ones() {
    let text = with_plugins("upstreams:\n  users:\n    endpoints: [\"127.0.0.1:9001\"]\n")
        .replace("  users:\n    kind: native", "  users:\n    capabilities: { upstreams: [userz] }\n    kind: native");
    let error = parse(&text).unwrap_err();
    let d = &error.diagnostics[0];
    assert_eq!(d.key, "plugins.users.capabilities.upstreams[0]");
    assert_eq!(d.message, "unknown upstream \"userz\"");
    assert_eq!(d.help.as_deref(), Some("did you mean \"users\"? the upstreams defined are \"users\""));
}
