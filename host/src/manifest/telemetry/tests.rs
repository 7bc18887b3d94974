//! The `telemetry:` block and routes' `trace_sample_ratio`: defaults, every
//! key read, and the problems reported (their full text is snapshot-tested
//! in `tests/manifest/invalid/telemetry_*.yaml`).

use std::path::Path;
use std::time::Duration;

use covet_telemetry::export::Protocol;

use super::super::{Manifest, ManifestError};
use super::*;

const HEAD: &str = "listen:\n  - addr: 127.0.0.1:0\n";

fn parse(rest: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(Path::new("m.yaml"), &format!("{HEAD}{rest}"))
}

fn keys(rest: &str) -> Vec<String> {
    parse(rest).expect_err("invalid manifest").diagnostics.into_iter().map(|d| d.key).collect()
}

#[test]
fn without_the_block_tracing_and_export_are_off() {
    let telemetry = parse("").unwrap().telemetry;
    assert_eq!(telemetry, TelemetrySettings::default());
    assert_eq!(telemetry.service_name, "covet");
    assert!(telemetry.tracing.is_none() && telemetry.otlp.is_none() && telemetry.metrics_interval.is_none());
}

#[test]
fn an_empty_tracing_key_turns_tracing_on_with_the_defaults() {
    for text in ["telemetry:\n  tracing:\n", "telemetry: { tracing: {} }\n"] {
        let tracing = parse(text).unwrap().telemetry.tracing.expect("tracing on");
        assert_eq!(tracing.sampler, Sampler { ratio: 0.01, parent_based: true }, "{text}");
        assert_eq!(tracing.batch, BatchSettings::default(), "{text}");
    }
    assert!(parse("telemetry: {}\n").unwrap().telemetry.tracing.is_none());
}

#[test]
fn every_key_is_read() {
    let text = "telemetry:
  service_name: gateway
  otlp:
    endpoint: https://collector.example:4318
    protocol: http
    headers: { Authorization: \"Bearer x\", x-tenant: t1 }
    timeout: 2s
  tracing:
    sample_ratio: 1
    parent_based: false
    max_queue: 100
    max_batch: 10
    batch_delay: 200ms
  metrics: { interval: 30s }
";
    let t = parse(text).unwrap().telemetry;
    assert_eq!(t.service_name, "gateway");
    let otlp = t.otlp.unwrap();
    assert_eq!(otlp.endpoint, "https://collector.example:4318");
    assert_eq!(otlp.protocol, Protocol::Http);
    let headers = vec![("authorization".to_owned(), "Bearer x".to_owned()), ("x-tenant".to_owned(), "t1".to_owned())];
    assert_eq!(otlp.headers, headers);
    assert_eq!(otlp.timeout, Duration::from_secs(2));
    let tracing = t.tracing.unwrap();
    assert_eq!(tracing.sampler, Sampler { ratio: 1.0, parent_based: false });
    assert_eq!(tracing.batch, BatchSettings { max_queue: 100, max_batch: 10, delay: Duration::from_millis(200) });
    assert_eq!(t.metrics_interval, Some(Duration::from_secs(30)));
}

#[test]
fn otlp_defaults_to_grpc_with_a_five_second_timeout() {
    let otlp = parse("telemetry: { otlp: { endpoint: \"http://127.0.0.1:4317\" } }\n").unwrap().telemetry.otlp.unwrap();
    assert_eq!((otlp.protocol, otlp.timeout, otlp.headers.len()), (Protocol::Grpc, Duration::from_secs(5), 0));
    let metrics = parse("telemetry: { otlp: { endpoint: \"http://c:4317\" }, metrics: }\n").unwrap().telemetry;
    assert_eq!(metrics.metrics_interval, Some(Duration::from_secs(10)));
}

#[test]
fn bad_values_are_each_reported_at_their_key() {
    let text = "telemetry:
  service_name: \"\"
  otlp: { endpoint: \"collector:4317\", timeout: 0s, headers: { \"bad header\": x } }
  tracing: { sample_ratio: 1.5, max_queue: 0, batch_delay: 0s }
";
    assert_eq!(
        keys(text),
        [
            "telemetry.service_name",
            "telemetry.otlp.endpoint",
            "telemetry.otlp.timeout",
            "telemetry.otlp.headers[\"bad header\"]",
            "telemetry.tracing.sample_ratio",
            "telemetry.tracing.max_queue",
            "telemetry.tracing.batch_delay",
        ]
    );
}

#[test]
fn metrics_need_otlp_and_batches_fit_the_queue() {
    assert_eq!(keys("telemetry: { metrics: { interval: 5s } }\n"), ["telemetry.metrics"]);
    assert_eq!(keys("telemetry: { tracing: { max_queue: 10, max_batch: 20 } }\n"), ["telemetry.tracing.max_batch"]);
    assert_eq!(keys("telemetry: { otlp: { endpoint: \"ftp://c:21\" } }\n"), ["telemetry.otlp.endpoint"]);
}

#[test]
fn unknown_keys_are_refused() {
    let error = parse("telemetry: { tracing: { ratio: 0.5 } }\n").unwrap_err();
    assert_eq!(error.diagnostics[0].message, "unknown key \"ratio\"");
    let help = error.diagnostics[0].help.clone().unwrap_or_default();
    assert!(help.contains("sample_ratio"), "{help}");
}

const ROUTES: &str = "plugins:
  h: { kind: native, path: tests/manifest/valid/artifacts/libplaceholder.so }
routes:
  - { path: /checkout, handler: h, trace_sample_ratio: 1.0 }
  - { path: /other, handler: h }
";

#[test]
fn a_route_ratio_is_carried_and_needs_tracing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../m.yaml");
    let text = format!("{HEAD}telemetry: {{ tracing: {{ sample_ratio: 0 }} }}\n{ROUTES}");
    let manifest = Manifest::parse(&root, &text).unwrap();
    let ratios: Vec<_> = manifest.routes.iter().map(|r| r.trace_sample_ratio).collect();
    assert_eq!(ratios, [Some(1.0), None]);
    let error = Manifest::parse(&root, &format!("{HEAD}{ROUTES}")).unwrap_err();
    let keys: Vec<_> = error.diagnostics.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["routes[0].trace_sample_ratio"]);
    let text = format!("{HEAD}telemetry: {{ tracing: }}\n{}", ROUTES.replace("1.0", "-0.5"));
    let error = Manifest::parse(&root, &text).unwrap_err();
    assert_eq!(error.diagnostics[0].message, "sample ratio -0.5 is out of range");
}

#[test]
fn the_telemetry_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/manifest/valid/telemetry.yaml");
    let manifest = Manifest::load(&path).expect("valid manifest");
    let t = &manifest.telemetry;
    assert_eq!(t.service_name, "shop-gateway");
    assert_eq!(t.otlp.as_ref().map(|o| o.endpoint.as_str()), Some("http://127.0.0.1:4317"));
    assert_eq!(t.tracing.as_ref().map(|tr| tr.batch.max_batch), Some(256));
    assert_eq!(t.metrics_interval, Some(Duration::from_secs(15)));
    assert_eq!(manifest.routes[1].trace_sample_ratio, Some(1.0));
}
