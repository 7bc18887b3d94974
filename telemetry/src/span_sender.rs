//! One export call of a batch of spans: the spans' encoded bytes framed as
//! an `ExportTraceServiceRequest` ([`Batcher`]) and sent as they are, over
//! gRPC (the `TraceService/Export` method through tonic, with a codec that
//! passes bytes through) or HTTP (`POST /v1/traces`, protobuf), without
//! retries (a failed batch is dropped and counted by the caller), bounded
//! by the configured timeout.

use bytes::{Buf, BufMut, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::error::TelemetryError;
use crate::export::{OtlpSettings, Protocol};
use crate::http_client::HyperClient;
use crate::resource::ServiceInfo;
use crate::wire::Batcher;

/// The gRPC method spans are exported with.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends batches of spans to one collector.
pub(crate) struct SpanSender {
    batcher: Batcher,
    target: Target,
    endpoint: String,
    timeout: std::time::Duration,
}

enum Target {
    Grpc { grpc: tonic::client::Grpc<tonic::transport::Channel>, metadata: tonic::metadata::MetadataMap },
    Http { client: HyperClient, headers: HeaderMap },
}

impl SpanSender {
    /// A sender for `otlp`, reporting as `service`. Inside a tokio runtime.
    pub(crate) fn new(otlp: &OtlpSettings, service: &ServiceInfo) -> Result<SpanSender, TelemetryError> {
        let base = base_endpoint(&otlp.endpoint)?;
        let headers = header_map(&otlp.headers)?;
        let timeout = otlp.timeout;
        let (target, endpoint) = match otlp.protocol {
            Protocol::Grpc => {
                let bad = |e: tonic::transport::Error| TelemetryError::Config(format!("OTLP endpoint {base:?}: {e}"));
                let mut endpoint = tonic::transport::Endpoint::from_shared(base.clone()).map_err(bad)?.connect_timeout(timeout).timeout(timeout);
                if base.starts_with("https://") {
                    endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots()).map_err(bad)?;
                }
                let grpc = tonic::client::Grpc::new(endpoint.connect_lazy());
                (Target::Grpc { grpc, metadata: tonic::metadata::MetadataMap::from_headers(headers) }, base)
            }
            Protocol::Http => (Target::Http { client: HyperClient::new(timeout), headers }, format!("{base}/v1/traces")),
        };
        let resource = [
            ("service.name", service.service_name.as_str()),
            ("service.version", service.service_version.as_str()),
            ("service.instance.id", service.instance_id.as_str()),
        ];
        let batcher = Batcher::new(&resource, "covet", &service.service_version);
        Ok(SpanSender { batcher, target, endpoint, timeout })
    }

    /// Sends one batch (encoded spans), waiting at most the timeout.
    pub(crate) async fn send(&self, batch: &[Vec<u8>]) -> Result<(), TelemetryError> {
        let failed = |reason: String| TelemetryError::Export { endpoint: self.endpoint.clone(), reason };
        let body = Bytes::from(self.batcher.request(batch));
        match tokio::time::timeout(self.timeout, self.send_once(body)).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed(format!("no answer within {:?}", self.timeout))),
        }
    }

    async fn send_once(&self, body: Bytes) -> Result<(), String> {
        match &self.target {
            Target::Grpc { grpc, metadata } => {
                let mut grpc = grpc.clone();
                grpc.ready().await.map_err(|e| format!("not ready: {e}"))?;
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                let path = http::uri::PathAndQuery::from_static(EXPORT);
                grpc.unary(request, path, Passthrough).await.map(drop).map_err(|s| format!("{}: {}", s.code(), s.message()))
            }
            Target::Http { client, headers } => {
                let mut request = Request::post(self.endpoint.as_str())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .map_err(|e| e.to_string())?;
                request.headers_mut().extend(headers.clone());
                let response = client.send(request).await.map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{}: {}", response.status(), String::from_utf8_lossy(response.body())))
                }
            }
        }
    }
}

/// A tonic codec that sends a message's bytes as they are and reads the
/// answer (an `ExportTraceServiceResponse`) without decoding it.
#[derive(Clone, Copy, Debug, Default)]
struct Passthrough;

impl Codec for Passthrough {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = Passthrough;
    type Decoder = Passthrough;

    fn encoder(&mut self) -> Passthrough {
        Passthrough
    }

    fn decoder(&mut self) -> Passthrough {
        Passthrough
    }
}

impl Encoder for Passthrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Passthrough {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
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
