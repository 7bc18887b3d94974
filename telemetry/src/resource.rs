//! Who reports: the OTLP resource every span and metric is sent under
//! (`service.name`, `service.version`, `service.instance.id`).

use opentelemetry::KeyValue;

/// The reporting service (the OTLP resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `service.name` (the manifest's `telemetry.service_name`, default `covet`).
    pub service_name: String,
    /// `service.version` (the host's version).
    pub service_version: String,
    /// `service.instance.id` (`hostname:pid` by default).
    pub instance_id: String,
}

impl ServiceInfo {
    /// This process as `service_name`: `instance_id` is `hostname:pid`.
    pub fn new(service_name: impl Into<String>, service_version: impl Into<String>) -> ServiceInfo {
        ServiceInfo {
            service_name: service_name.into(),
            service_version: service_version.into(),
            instance_id: format!("{}:{}", hostname(), std::process::id()),
        }
    }

    /// As OpenTelemetry attributes.
    pub fn attributes(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::new("service.name", self.service_name.clone()),
            KeyValue::new("service.version", self.service_version.clone()),
            KeyValue::new("service.instance.id", self.instance_id.clone()),
        ]
    }

    /// As the protobuf resource (for metrics).
    pub(crate) fn proto(&self) -> opentelemetry_proto::tonic::resource::v1::Resource {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue as ProtoKeyValue};
        let kv = |key: &str, value: &str| ProtoKeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
            ..Default::default()
        };
        opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![
                kv("service.name", &self.service_name),
                kv("service.version", &self.service_version),
                kv("service.instance.id", &self.instance_id),
            ],
            ..Default::default()
        }
    }
}

/// The host name (Linux: the kernel's; else `$HOSTNAME`; else `localhost`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}
