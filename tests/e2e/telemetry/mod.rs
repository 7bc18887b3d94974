//! Tracing end to end (docs/telemetry.md): the real covet binary with a
//! `telemetry:` block, exporting to a real OTLP collector the test starts on
//! port 0 ([`Collector`], gRPC or HTTP), plugins of all three kinds and the
//! `proxy` plugin in front of real upstreams ([`TestUpstream`], which echoes
//! the headers it received, `traceparent` included).
//!
//! - [`chain`]: native → WASM → Python plugins → proxy: one server span, one
//!   span per plugin phase call (children of the server span, each kind's
//!   attributes and events), one client span per upstream attempt;
//! - [`propagation`]: the upstream's `traceparent` names the attempt span;
//!   retries are two attempt spans; an incoming `traceparent` continues the
//!   trace and `tracestate` reaches the upstream unchanged;
//! - [`sampling`]: ratio 0 exports nothing but still propagates (flag `00`)
//!   and logs ids; a sampled parent is followed; a route's ratio overrides;
//! - [`export`]: gRPC and HTTP both deliver; a collector that is down costs
//!   no request and the drop counter grows; `/metrics` over OTLP;
//! - [`access_log`]: every access line carries the ids the collector got;
//! - [`reload`]: a manifest reload turns tracing on, moves it to another
//!   collector and turns it off.
//!
//! "Nothing exported" is never shown by waiting: a sampled request sent
//! after the unsampled ones is the barrier (the exporter's queue is FIFO, so
//! once its spans arrived, anything queued before it has too).

mod access_log;
mod chain;
mod export;
mod propagation;
mod reload;
mod sampling;

use std::time::{Duration, Instant};

use covet_e2e::{Client, Host, Reply, TestUpstream, otlp::Collector, otlp::ExportedSpan, plugin};
use http::Method;
use serde_json::{Map, Value, json};

/// How long anything the host exports may take to reach the collector
/// (batches leave every `batch_delay`, 50 ms here).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A manifest written as JSON (which is YAML) with a `telemetry:` block.
#[derive(Clone)]
pub struct Traced {
    telemetry: Map<String, Value>,
    tracing: Map<String, Value>,
    plugins: Map<String, Value>,
    upstreams: Map<String, Value>,
    routes: Vec<Value>,
    log: Value,
    python: bool,
}

impl Traced {
    /// Tracing on (every new trace sampled, batches every 50 ms), the access
    /// log on, exporting to `collector` (`None`: no `otlp` block).
    pub fn new(collector: Option<&Collector>) -> Traced {
        let mut telemetry = Map::new();
        telemetry.insert("service_name".into(), json!("covet-e2e"));
        if let Some(collector) = collector {
            telemetry.insert("otlp".into(), otlp(&collector.endpoint(), collector.protocol()));
        }
        let tracing = json!({ "sample_ratio": 1.0, "batch_delay": "50ms" });
        Traced {
            telemetry,
            tracing: tracing.as_object().cloned().expect("an object"),
            plugins: Map::new(),
            upstreams: Map::new(),
            routes: Vec::new(),
            log: json!({ "access": true }),
            python: false,
        }
    }

    /// Exports to `endpoint` over `protocol` (`grpc` or `http`) instead.
    pub fn otlp_at(mut self, endpoint: &str, protocol: &str) -> Traced {
        self.telemetry.insert("otlp".into(), otlp(endpoint, protocol));
        self
    }

    /// Sets one `telemetry.tracing` key (`sample_ratio`, `parent_based`, …).
    pub fn tracing(mut self, key: &str, value: Value) -> Traced {
        self.tracing.insert(key.into(), value);
        self
    }

    /// Sets one `telemetry` key (`metrics`, `service_name`).
    pub fn telemetry(mut self, key: &str, value: Value) -> Traced {
        self.telemetry.insert(key.into(), value);
        self
    }

    /// Sets one `telemetry.otlp` key (`timeout`, `headers`).
    pub fn otlp_key(mut self, key: &str, value: Value) -> Traced {
        self.telemetry.get_mut("otlp").and_then(Value::as_object_mut).expect("an otlp block").insert(key.into(), value);
        self
    }

    /// The access log in `format` (`pretty` or `json`).
    pub fn log_format(mut self, format: &str) -> Traced {
        self.log = json!({ "access": true, "format": format });
        self
    }

    /// A native plugin from crate `crate_name`.
    pub fn native(mut self, name: &str, crate_name: &str, config: Value) -> Traced {
        self.plugins.insert(name.into(), json!({ "kind": "native", "path": plugin(crate_name), "config": config }));
        self
    }

    /// A native plugin with more keys (`capabilities`).
    pub fn native_with(mut self, name: &str, crate_name: &str, config: Value, keys: Value) -> Traced {
        let mut entry = json!({ "kind": "native", "path": plugin(crate_name), "config": config });
        merge(&mut entry, keys);
        self.plugins.insert(name.into(), entry);
        self
    }

    /// A WASM component from `wasm-plugins/` (see `wasm::component`).
    pub fn wasm(mut self, name: &str, file: &str, config: Value) -> Traced {
        let mut entry = json!({ "kind": "wasm", "path": crate::wasm::component(file) });
        if !config.is_null() {
            entry["config"] = config;
        }
        self.plugins.insert(name.into(), entry);
        self
    }

    /// A Python filter module (absolute path).
    pub fn python_filter(mut self, name: &str, file: &str, config: Value) -> Traced {
        self.plugins.insert(name.into(), json!({ "kind": "python", "filter": file, "config": config }));
        self.python = true;
        self
    }

    /// The `proxy` plugin named `proxy`, forwarding to upstream `name`
    /// (over `endpoints`, with `settings` such as `retries`).
    pub fn proxy(mut self, name: &str, endpoints: &[&TestUpstream], settings: Value) -> Traced {
        let mut upstream = if settings.is_null() { json!({}) } else { settings };
        upstream["endpoints"] = endpoints.iter().map(|u| Value::String(u.endpoint())).collect();
        self.upstreams.insert(name.into(), upstream);
        self.native_with("proxy", "covet-proxy", json!({ "upstream": name }), json!({ "capabilities": { "upstreams": [name] } }))
    }

    /// A route for `path` through `filters` to `handler`.
    pub fn route(self, path: &str, filters: &[&str], handler: &str) -> Traced {
        self.route_with(path, filters, handler, json!({}))
    }

    /// A route with more keys (`trace_sample_ratio`).
    pub fn route_with(mut self, path: &str, filters: &[&str], handler: &str, keys: Value) -> Traced {
        let mut route = json!({ "path": path, "filters": filters, "handler": handler });
        merge(&mut route, keys);
        self.routes.push(route);
        self
    }

    /// The manifest text.
    pub fn yaml(&self) -> String {
        let mut telemetry = self.telemetry.clone();
        telemetry.insert("tracing".into(), Value::Object(self.tracing.clone()));
        let mut manifest = json!({
            "listen": [{ "addr": "127.0.0.1:0" }],
            "log": self.log,
            "telemetry": telemetry,
            "plugins": self.plugins,
            "routes": self.routes,
        });
        if !self.upstreams.is_empty() {
            manifest["upstreams"] = Value::Object(self.upstreams.clone());
        }
        if self.python {
            manifest["python"] = json!({ "threads": 1 });
        }
        serde_json::to_string_pretty(&manifest).expect("JSON")
    }

    /// Starts a host on it and waits until it is ready.
    pub async fn start(&self) -> Host {
        Host::start(self.yaml()).await
    }
}

fn otlp(endpoint: &str, protocol: &str) -> Value {
    json!({ "endpoint": endpoint, "protocol": protocol, "timeout": "2s" })
}

fn merge(into: &mut Value, keys: Value) {
    if let (Some(entry), Value::Object(more)) = (into.as_object_mut(), keys) {
        entry.extend(more);
    }
}

/// `method path` with `headers` through the host, which must answer.
pub async fn send(host: &Host, path: &str, headers: &[(&str, &str)]) -> Reply {
    host.http1()
        .send(Method::GET, path, headers, "")
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}\nlogs:\n{}", host.logs()))
}

/// A `traceparent` value: version 00, `trace` / `span` as hex, sampled or not.
pub fn traceparent(trace: &str, span: &str, sampled: bool) -> String {
    format!("00-{trace}-{span}-{}", if sampled { "01" } else { "00" })
}

/// The parts of a `traceparent` (trace id, parent id, flags), checked for shape.
pub fn parse_traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {value:?}");
    assert_eq!(parts[0], "00", "version of {value:?}");
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    assert!(hex(parts[1], 32) && parts[1] != "0".repeat(32), "trace id of {value:?}");
    assert!(hex(parts[2], 16) && parts[2] != "0".repeat(16), "parent id of {value:?}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// The headers a [`TestUpstream`] received, from its JSON echo.
pub fn upstream_saw(reply: &Reply) -> Map<String, Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let echo = reply.json();
    echo["headers"].as_object().cloned().unwrap_or_else(|| panic!("no upstream echo: {echo}"))
}

/// The `traceparent` a [`TestUpstream`] received (panics when there was none).
pub fn upstream_traceparent(reply: &Reply) -> (String, String, String) {
    let headers = upstream_saw(reply);
    let value = headers.get("traceparent").and_then(Value::as_str);
    parse_traceparent(value.unwrap_or_else(|| panic!("the upstream got no traceparent: {headers:?}")))
}

/// The one span named `name` in `spans` (panics listing them otherwise).
pub fn one<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found: Vec<&ExportedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span named {name:?} in {}", names(spans));
    found[0]
}

/// `name (kind)` of each span, for failure messages.
pub fn names(spans: &[ExportedSpan]) -> String {
    spans.iter().map(|s| format!("{} ({})", s.name, s.kind)).collect::<Vec<_>>().join(", ")
}

/// The host's `/metrics` text.
pub async fn scrape(host: &Host) -> String {
    let reply = Client::http1(host.admin_addr()).get("/metrics").await.expect("GET /metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

/// The value of `series` (name and labels exactly as printed) in a scrape; 0 when absent.
pub fn sample(scrape: &str, series: &str) -> f64 {
    let line = scrape.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')));
    line.map(|l| l[series.len()..].trim().parse().expect("a number")).unwrap_or(0.0)
}

/// Polls `/metrics` until `series` reaches at least `at_least` (panics after [`PATIENCE`]).
pub async fn wait_metric(host: &Host, series: &str, at_least: f64) -> f64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = scrape(host).await;
        let value = sample(&text, series);
        if value >= at_least {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value} (< {at_least}):\n{text}\nlogs:\n{}", host.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `key=value` (value up to the next space) in a pretty access line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let at = line.find(&needle)? + needle.len();
    Some(line[at..].split(' ').next().unwrap_or("").trim_matches('"'))
}

/// The access line of the request with id `request_id`.
pub async fn access_line(host: &Host, request_id: &str) -> String {
    let quoted = format!("request_id=\"{request_id}\"");
    host.log_line(&["covet::access", &quoted])
        .await
        .unwrap_or_else(|| panic!("no access line for {request_id}:\n{}", host.logs()))
}
