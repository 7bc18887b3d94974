//! The deployment files (docs/fleet.md): the Kubernetes resources in
//! `deploy/kubernetes/` pass the Kubernetes JSON schemas (strict, offline:
//! `kubernetes-validate` with its bundled schemas, installed into `.venv` by
//! scripts/python-env.sh), the ConfigMap's manifest passes `covet check`
//! against this build's plugins, the Deployment's grace period covers the
//! manifest's `shutdown_timeout` plus the preStop pause, the Dockerfile is
//! multi-stage, non-root and lint-clean (hadolint, also from `.venv`), and a
//! ConfigMap update as the kubelet writes it (a `..data` symlink swap)
//! reaches a host running `--watch`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use covet_e2e::{Host, artifacts_dir, plugin, workspace_root};
use serde_json::Value;

/// The Kubernetes resources, by file (kustomization.yaml is kustomize's, not a resource).
const RESOURCES: [&str; 6] = ["configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml", "redis.yaml"];

fn kubernetes_dir() -> PathBuf {
    workspace_root().join("deploy/kubernetes")
}

/// A tool installed into the project venv by scripts/python-env.sh.
fn venv_tool(name: &str) -> PathBuf {
    let path = workspace_root().join(".venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run `bash scripts/python-env.sh` (scripts/test.sh does)", path.display());
    path
}

/// Runs `kubernetes-validate --strict` on `files`: (success, output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(venv_tool("kubernetes-validate")).arg("--strict").args(files).output().expect("run kubernetes-validate");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// One YAML document of `deploy/kubernetes/<file>`, as JSON.
fn resource(file: &str) -> Value {
    let text = std::fs::read_to_string(kubernetes_dir().join(file)).expect("read resource");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The covet manifest embedded in the ConfigMap.
fn configmap_manifest() -> String {
    let configmap = resource("configmap.yaml");
    configmap["data"]["plugins.yaml"].as_str().expect("data.plugins.yaml").to_owned()
}

/// `25s`, `500ms`, `2m` → a duration (the forms the deploy files use).
fn duration(text: &str) -> Duration {
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("duration {text:?}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        other => panic!("unit {other:?} in {text:?}"),
    }
}

#[test]
fn the_kubernetes_files_pass_the_schemas_strictly() {
    let files: Vec<PathBuf> = RESOURCES.iter().map(|f| kubernetes_dir().join(f)).collect();
    let (ok, output) = validate(&files);
    assert!(ok, "kubernetes-validate refused deploy/kubernetes:\n{output}");
    for kind in ["configmap/", "deployment/covet", "service/covet", "poddisruptionbudget/", "horizontalpodautoscaler/", "deployment/covet-redis", "service/covet-redis"] {
        assert!(output.contains(kind), "{kind} was not validated:\n{output}");
    }
}

#[test]
fn the_validator_refuses_a_misspelt_field_and_a_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(kubernetes_dir().join("deployment.yaml")).unwrap();
    let cases = [
        ("terminationGracePeriodSeconds: 40", "terminationGracePeriod: 40"),
        ("replicas: 3", "replicas: three"),
    ];
    for (from, to) in cases {
        assert!(text.contains(from), "deployment.yaml has no `{from}`");
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, output) = validate(&[broken]);
        assert!(!ok, "`{to}` passed the schema:\n{output}");
    }
}

#[test]
fn the_configmap_manifest_passes_covet_check() {
    // The image keeps the plugins in /opt/covet/plugins; here they are this build's.
    plugin("covet-cache");
    let dir = format!("{}/", artifacts_dir().display());
    let manifest = configmap_manifest().replace("/opt/covet/plugins/", &dir);
    let exited = Host::builder(manifest).check(Duration::from_secs(60));
    assert!(exited.status.success(), "covet check refused the ConfigMap's manifest:\n{}{}", exited.stdout, exited.stderr);
}

#[test]
fn the_deployment_drains_within_its_grace_period_and_probes_covet() {
    let deployment = resource("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let manifest: Value = serde_saphyr::from_str(&configmap_manifest()).expect("the ConfigMap's manifest");
    let shutdown = duration(manifest["limits"]["shutdown_timeout"].as_str().expect("limits.shutdown_timeout"));
    let container = &pod["containers"][0];
    let pre_stop = &container["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(pre_stop[0], "sleep", "preStop: {pre_stop}");
    let pause = Duration::from_secs(pre_stop[1].as_str().expect("sleep seconds").parse().expect("a number"));
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds"));
    assert!(grace > shutdown + pause, "grace {grace:?} <= shutdown_timeout {shutdown:?} + preStop {pause:?}");

    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/_covet/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/_covet/health");
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(args.contains(&"--watch") && args.contains(&"/etc/covet/plugins.yaml"), "args {args:?}");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let mount = container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/etc/covet").expect("/etc/covet mount");
    assert!(mount.get("subPath").is_none(), "a subPath mount never sees a ConfigMap update");
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).expect("the manifest volume");
    assert_eq!(volume["configMap"]["name"], resource("configmap.yaml")["metadata"]["name"]);
    assert!(container["resources"]["requests"]["cpu"].is_string(), "the HPA's CPU target needs requests.cpu");
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()) {
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    instructions
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_lint_clean() {
    let instructions = dockerfile();
    let stages: Vec<usize> = (0..instructions.len()).filter(|&i| instructions[i].starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "not multi-stage: {stages:?}");
    let last = &instructions[*stages.last().unwrap()..];
    let user = last.iter().rev().find_map(|i| i.strip_prefix("USER ")).expect("the final stage sets USER");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "the image runs as {user}");
    assert!(last.iter().any(|i| i == "STOPSIGNAL SIGTERM"), "STOPSIGNAL SIGTERM (covet drains on it)");
    assert!(last.iter().any(|i| i.starts_with("HEALTHCHECK") && i.contains("/_covet/health")), "HEALTHCHECK on /_covet/health");
    assert!(!last.iter().any(|i| i.contains("cargo ")), "the runtime stage builds nothing");
    let builder = &instructions[stages[0]..stages[1]];
    for stage in [builder, last] {
        assert!(stage.iter().any(|i| i.starts_with("ARG COVET_FEATURES")), "every stage reads the COVET_FEATURES build-arg");
    }
    let build = builder.iter().find(|i| i.contains("cargo build") && i.contains("-p covet ")).expect("the covet build");
    assert!(build.contains("--no-default-features") && build.contains("--locked"), "{build}");
    for copied in last.iter().filter_map(|i| i.strip_prefix("COPY ")).filter(|c| !c.starts_with("--from")) {
        let source = copied.split_whitespace().next().unwrap();
        assert!(workspace_root().join(source).exists(), "COPY {source}: no such file");
    }
    let out = Command::new(venv_tool("hadolint")).arg(workspace_root().join("Dockerfile")).output().expect("run hadolint");
    assert!(out.status.success(), "hadolint:\n{}", String::from_utf8_lossy(&out.stdout));
}

/// A manifest answering `GET /version` with `body`.
fn versioned(body: &str) -> String {
    let hello = plugin("covet-static-response");
    format!(
        "listen:\n  - addr: 127.0.0.1:0\nplugins:\n  v:\n    kind: native\n    path: {}\n    config: {{ body: {body:?} }}\n\
         routes:\n  - path: /version\n    handler: v\n",
        hello.display()
    )
}

/// Writes `contents` the way the kubelet updates a ConfigMap volume: a new
/// timestamped directory, a `..data_tmp` symlink to it renamed over `..data`.
fn kubelet_write(dir: &Path, version: &str, contents: &str) {
    let data = format!("..{version}");
    std::fs::create_dir(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("plugins.yaml"), contents).unwrap();
    std::os::unix::fs::symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
}

/// Waits until the host's log has `needle` (panics after 15 s).
async fn until_logged(host: &Host, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !host.logs().contains(needle) {
        assert!(Instant::now() < deadline, "the host never logged {needle:?}; logs:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `/version` until it answers `want` (panics after 15 s).
async fn until_version(host: &Host, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(reply) = host.http1().get("/version").await {
            last = reply.text();
            if last == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("GET /version answered {last:?}, never {want:?}; logs:\n{}", host.logs());
}

#[tokio::test]
async fn a_configmap_update_reaches_a_host_watching_it() {
    let host = Host::builder(versioned("v1")).env("COVET_WATCH", "1").start();
    host.wait_ready().await;
    until_version(&host, "v1").await;
    // The ConfigMap volume's layout: plugins.yaml -> ..data/plugins.yaml, ..data -> ..<version>.
    let dir = host.dir();
    kubelet_write(dir, "2026_12_05_v1", &versioned("v1"));
    std::os::unix::fs::symlink("..data/plugins.yaml", dir.join("plugins.yaml.new")).unwrap();
    std::fs::rename(dir.join("plugins.yaml.new"), dir.join("plugins.yaml")).unwrap();
    // That rename names the manifest: one reload (of the same content); wait for it.
    until_logged(&host, "manifest changed; reloaded").await;
    until_version(&host, "v1").await;
    // An update, as `kubectl apply` of the ConfigMap makes the kubelet write it.
    kubelet_write(dir, "2026_12_05_v2", &versioned("v2"));
    until_version(&host, "v2").await;
    kubelet_write(dir, "2026_12_05_v3", &versioned("v3"));
    until_version(&host, "v3").await;
}
