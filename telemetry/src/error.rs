//! The one error type of covet's telemetry.

/// What went wrong setting up or running telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter's settings are unusable (endpoint, headers).
    #[error("telemetry exporter: {0}")]
    Config(String),
    /// An export failed (the collector refused, was unreachable, or timed out).
    #[error("OTLP export to {endpoint} failed: {reason}")]
    Export {
        /// The collector's endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
}
