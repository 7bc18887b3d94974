//! covet's tracing, shared by the host and its services.
//!
//! - [`context`]: W3C trace context (`traceparent` / `tracestate`), parsed
//!   from requests and injected into outbound ones, sampled or not.
//! - [`sampler`]: parent-based with a ratio, and a per-route ratio.
//! - [`span`]: a [`Span`] is an id pair and, only when sampled, a record
//!   kept as the OTLP protobuf bytes it is exported as (`wire`: written by
//!   hand, attributes as they are set). An unsampled span allocates nothing.
//! - [`current`]: the span a plugin phase runs in, for the host services an
//!   outbound call or an upstream attempt goes through (client spans are
//!   its children).
//! - [`tracer`]: the installed [`Tracer`] (none: tracing off).
//! - [`export`]: the bounded queue and the batching OTLP exporter (gRPC or
//!   HTTP) that never blocks a request: when the collector is down, spans
//!   are dropped and counted. [`resource`]: the service it reports as;
//!   [`http_client`]: the hyper-rustls client OTLP/HTTP goes through.
//! - [`metrics`]: the host's `/metrics` registry sent over OTLP every interval.
//! - `collector` (feature `collector`, for tests): a real in-process OTLP
//!   collector (gRPC and HTTP) keeping what it receives.
//!
//! ```ignore
//! let server = tracer.start_server(&headers, "GET /users/{id}", route_ratio);
//! let plugin = server.child("plugin auth handle", SpanKind::Internal);
//! covet_telemetry::current::scope(plugin.clone(), phase_future).await;
//! plugin.end();
//! server.end();
//! ```

#[cfg(feature = "collector")]
pub mod collector;
mod background;
pub mod context;
pub mod current;
mod error;
pub mod export;
pub mod http_client;
mod ids;
pub mod metrics;
pub mod resource;
pub mod sampler;
pub mod span;
mod span_sender;
pub mod tracer;
mod wire;

pub use context::{SpanContext, TRACEPARENT, TRACESTATE};
pub use error::TelemetryError;
pub use resource::ServiceInfo;
pub use opentelemetry::{Key, KeyValue, Value, trace::{SpanId, SpanKind, TraceId}};
pub use span::Span;
pub use wire::AttrValue;
pub use tracer::Tracer;
