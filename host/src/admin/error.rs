//! The one place admin failures become answers: an HTTP status with
//! `{"error": {"code", "message"}}`, or a gRPC status with the same message.
//!
//! | [`HostError`] | HTTP | `code` | gRPC |
//! |---|---|---|---|
//! | `UnknownPlugin` | 404 | `unknown_plugin` | `NOT_FOUND` |
//! | `PluginLoad`, `PluginInit` | 422 | `swap_refused` | `FAILED_PRECONDITION` |
//! | `Manifest` | 422 | `manifest_invalid` | `FAILED_PRECONDITION` |
//! | (a malformed request) | 400 | `bad_request` | `INVALID_ARGUMENT` |
//! | (the shared state cannot be used: a purge) | 503 | `unavailable` | `UNAVAILABLE` |
//! | (a missing or wrong token) | 401 | `unauthorized` | `UNAUTHENTICATED` |
//! | (no such endpoint; wrong method) | 404; 405 | `not_found`; `method_not_allowed` | `UNIMPLEMENTED` |
//! | anything else | 500 | `internal` | `INTERNAL` |

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header::WWW_AUTHENTICATE};
use serde_json::json;

use crate::error::HostError;

/// An admin request that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// The full human-readable reason.
    pub message: String,
}

impl ApiError {
    /// A request the API cannot read (bad JSON, unknown fields, …).
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into() }
    }

    /// A service the request needs (the shared state) failed or timed out.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: message.into() }
    }

    /// Something went wrong on the host's side.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "internal", message: message.into() }
    }

    /// A request without the right token.
    pub fn unauthorized() -> ApiError {
        let message = "this admin API needs `authorization: Bearer <token>` with the configured token";
        ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }

    /// A path no endpoint serves.
    pub fn not_found(method: &http::Method, path: &str) -> ApiError {
        let message = format!(
            "no admin endpoint {method} {path}; try GET /v1/plugins, POST /v1/plugins/NAME/reload, \
             POST /v1/plugins/NAME/swap, POST /v1/reload, GET /v1/events, GET /v1/upstreams, \
             POST /v1/cache/purge or GET /metrics"
        );
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message }
    }

    /// A path served, but not with this method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> ApiError {
        let message = format!("{path} does not take {method} (the `allow` header lists what it takes)");
        ApiError { status: StatusCode::METHOD_NOT_ALLOWED, code: "method_not_allowed", message }
    }

    /// The gRPC code with the same meaning as the HTTP status.
    pub fn grpc_code(&self) -> tonic::Code {
        match self.status {
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::UNPROCESSABLE_ENTITY => tonic::Code::FailedPrecondition,
            StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::Internal,
        }
    }

    /// The gRPC status carrying this error.
    pub fn into_status(self) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), self.message)
    }

    /// A complete gRPC response (HTTP 200 with `grpc-status`) carrying this error.
    pub fn into_grpc_response(self) -> Response {
        self.into_status().into_http()
    }
}

impl From<HostError> for ApiError {
    fn from(error: HostError) -> ApiError {
        let (status, code) = match &error {
            HostError::UnknownPlugin { .. } => (StatusCode::NOT_FOUND, "unknown_plugin"),
            HostError::PluginLoad { .. } | HostError::PluginInit { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "swap_refused"),
            HostError::Manifest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "manifest_invalid"),
            HostError::Admin(_) | HostError::Bind { .. } | HostError::Tls { .. } | HostError::Io(_) | HostError::Process { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError { status, code, message: error.to_string() }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> tonic::Status {
        error.into_status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::manifest::Manifest;

    fn mapped(error: HostError) -> (u16, &'static str, tonic::Code, String) {
        let api = ApiError::from(error);
        (api.status.as_u16(), api.code, api.grpc_code(), api.message)
    }

    #[test]
    fn host_errors_map_to_status_and_code_with_the_full_message() {
        let unknown = HostError::UnknownPlugin { plugin: "jtw".into(), known: "jwt, app".into() };
        let (status, code, grpc, message) = mapped(unknown);
        assert_eq!((status, code, grpc), (404, "unknown_plugin", tonic::Code::NotFound));
        assert_eq!(message, "no plugin named \"jtw\" (the manifest defines: jwt, app)");

        let load = HostError::PluginLoad { plugin: "app".into(), path: PathBuf::from("/x.so"), reason: "bad ABI".into() };
        let (status, code, grpc, message) = mapped(load);
        assert_eq!((status, code, grpc), (422, "swap_refused", tonic::Code::FailedPrecondition));
        assert_eq!(message, "plugin \"app\" (/x.so) was refused: bad ABI");

        let init = HostError::PluginInit { plugin: "app".into(), reason: "no".into() };
        assert_eq!(mapped(init).1, "swap_refused");

        let io = HostError::Io(std::io::Error::other("disk"));
        assert_eq!(mapped(io).1, "internal");
    }

    #[test]
    fn a_manifest_error_carries_its_rendered_diagnostics() {
        let error = Manifest::parse(std::path::Path::new("m.yaml"), "listen: []\nbogus: 1\n").unwrap_err();
        let (status, code, grpc, message) = mapped(HostError::Manifest(error));
        assert_eq!((status, code, grpc), (422, "manifest_invalid", tonic::Code::FailedPrecondition));
        assert!(message.contains("--> m.yaml:2:1"), "{message}");
        assert!(message.ends_with("error: manifest m.yaml has 1 error"), "{message}");
    }

    #[test]
    fn request_errors_have_their_own_codes() {
        let bad = ApiError::bad_request("unknown field `pth`");
        assert_eq!((bad.status.as_u16(), bad.code, bad.grpc_code()), (400, "bad_request", tonic::Code::InvalidArgument));
        let down = ApiError::unavailable("redis timed out");
        assert_eq!((down.status.as_u16(), down.code, down.grpc_code()), (503, "unavailable", tonic::Code::Unavailable));
        let denied = ApiError::unauthorized();
        assert_eq!((denied.status.as_u16(), denied.code, denied.grpc_code()), (401, "unauthorized", tonic::Code::Unauthenticated));
        let response = denied.into_response();
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn a_grpc_error_response_is_http_200_with_a_grpc_status() {
        let response = ApiError::unauthorized().into_grpc_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "16");
    }
}
