//! The command line beyond `host`: `schema`, `check` on the shipped example,
//! and a manifest with several listeners.

use std::process::Command;

use covet_e2e::{Host, covet_bin, plugin, workspace_root};

#[test]
fn schema_prints_a_strict_json_schema_of_the_manifest() {
    let out = Command::new(covet_bin()).arg("schema").output().expect("run covet schema");
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    for key in ["listen", "limits", "log", "plugins", "routes"] {
        assert!(schema["properties"][key].is_object(), "{key} missing from the schema");
    }
    assert_eq!(schema["additionalProperties"], false, "unknown top-level keys must be refused");
    assert_eq!(schema["required"], serde_json::json!(["listen"]));
}

#[test]
fn the_example_manifest_passes_check() {
    // The demo's layout: examples/plugins.yaml, examples/artifacts/, and the
    // Python plugins it names as ../python-plugins/ and the venv ../.venv
    // (FastAPI, for the ASGI example).
    let root = tempfile::tempdir().unwrap();
    for linked in ["python-plugins", ".venv"] {
        std::os::unix::fs::symlink(workspace_root().join(linked), root.path().join(linked)).unwrap();
    }
    let dir = root.path().join("examples");
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(workspace_root().join("examples/plugins.yaml"), dir.join("plugins.yaml")).unwrap();
    for name in ["covet-static-response", "covet-headers", "covet-rate-limit", "covet-auth-jwt"] {
        let lib = plugin(name);
        std::os::unix::fs::symlink(&lib, artifacts.join(lib.file_name().unwrap())).unwrap();
    }
    std::os::unix::fs::symlink(crate::wasm::component("ab_tagger"), artifacts.join("ab_tagger.wasm")).unwrap();
    let out = Command::new(covet_bin())
        .args(["check", "--plugins", "plugins.yaml"])
        .current_dir(&dir)
        .env("DEMO_JWT_SECRET", "change-me-demo-secret-0123456789")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (10 plugins, 6 routes, 1 listeners)"), "stdout:\n{stdout}");
}

#[test]
fn the_gateway_example_passes_check() {
    // scripts/gateway-demo.sh's layout: examples/gateway.yaml, the plugins in
    // examples/artifacts/, the listener's certificate (made by the demo with
    // openssl; here by rcgen) in examples/artifacts/gateway/. The JWKS URL is
    // not fetched at check (require_keys_at_start is off), only its grant checked.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("examples");
    let keys = dir.join("artifacts/gateway");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::copy(workspace_root().join("examples/gateway.yaml"), dir.join("gateway.yaml")).unwrap();
    for name in ["covet-proxy", "covet-auth-jwt", "covet-rate-limit"] {
        let lib = plugin(name);
        std::os::unix::fs::symlink(&lib, dir.join("artifacts").join(lib.file_name().unwrap())).unwrap();
    }
    let leaf = covet_e2e::certs::Ca::new("gateway demo CA").server(&["localhost", "127.0.0.1"]);
    std::fs::write(keys.join("cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(keys.join("key.pem"), &leaf.key_pem).unwrap();
    let out = Command::new(covet_bin()).args(["check", "--plugins", "gateway.yaml"]).current_dir(&dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (4 plugins, 4 routes, 1 listeners)"), "stdout:\n{stdout}");
}

#[tokio::test]
async fn every_listener_serves_the_same_routes() {
    let yaml = format!(
        "listen:\n  - addr: 127.0.0.1:0\n  - addr: 127.0.0.1:0\nplugins:\n  hi: {{ kind: native, path: {:?}, config: {{ body: hi }} }}\nroutes:\n  - {{ path: /, handler: hi }}\n",
        plugin("covet-static-response").display().to_string()
    );
    let host = Host::builder(yaml).listeners(2).start();
    host.wait_ready().await;
    assert_eq!(host.addrs.len(), 2);
    assert_ne!(host.addrs[0], host.addrs[1]);
    for addr in &host.addrs {
        let reply = covet_e2e::Client::http1(*addr).get("/").await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "hi"), "listener {addr}");
    }
}
