//! One export call of a batch of spans: opentelemetry-otlp's `SpanExporter`
//! over tonic (gRPC) or over [`HyperClient`] (HTTP, protobuf, `/v1/traces`),
//! without its retries (a failed batch is dropped and counted by the
//! caller), bounded by the configured timeout.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use crate::error::TelemetryError;
use crate::export::{OtlpSettings, Protocol};
use crate::http_client::HyperClient;
use crate::resource::ServiceInfo;

/// Sends batches of spans to one collector.
pub(crate) struct SpanSender {
    exporter: opentelemetry_otlp::SpanExporter,
    endpoint: String,
    timeout: std::time::Duration,
}

impl SpanSender {
    /// A sender for `otlp`, reporting as `service`. Inside a tokio runtime.
    pub(crate) fn new(otlp: &OtlpSettings, service: &ServiceInfo) -> Result<SpanSender, TelemetryError> {
        let base = base_endpoint(&otlp.endpoint)?;
        let headers = header_map(&otlp.headers)?;
        let retry = opentelemetry_otlp::RetryPolicy::disabled();
        let (built, endpoint) = match otlp.protocol {
            Protocol::Grpc => {
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(base.clone())
                    .with_timeout(otlp.timeout)
                    .with_metadata(tonic::metadata::MetadataMap::from_headers(headers))
                    .with_retry_policy(retry);
                if base.starts_with("https://") {
                    builder = builder.with_tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots());
                }
                (builder.build(), base)
            }
            Protocol::Http => {
                let url = format!("{base}/v1/traces");
                let builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(url.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_timeout(otlp.timeout)
                    .with_headers(otlp.headers.iter().cloned().collect::<HashMap<_, _>>())
                    .with_http_client(HyperClient::new(otlp.timeout))
                    .with_retry_policy(retry);
                (builder.build(), url)
            }
        };
        let mut exporter = built.map_err(|e| TelemetryError::Config(format!("OTLP span exporter for {}: {e}", otlp.endpoint)))?;
        exporter.set_resource(&service.sdk());
        Ok(SpanSender { exporter, endpoint, timeout: otlp.timeout })
    }

    /// Sends one batch, waiting at most the timeout.
    pub(crate) async fn send(&self, batch: Vec<SpanData>) -> Result<(), TelemetryError> {
        let failed = |reason: String| TelemetryError::Export { endpoint: self.endpoint.clone(), reason };
        match tokio::time::timeout(self.timeout, self.exporter.export(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// The endpoint without a trailing `/`, checked: an `http://` or `https://` URL with a host.
pub(crate) fn base_endpoint(endpoint: &str) -> Result<String, TelemetryError> {
    let bad = |why: &str| TelemetryError::Config(format!("OTLP endpoint {endpoint:?}: {why}"));
    let uri: Uri = endpoint.parse().map_err(|e| bad(&format!("{e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must start with http:// or https://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

/// The configured headers, checked.
pub(crate) fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, TelemetryError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let bad = |e: String| TelemetryError::Config(format!("OTLP header {name:?}: {e}"));
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?;
        map.append(name, value);
    }
    Ok(map)
}
