//! The HTTP+JSON endpoints (the `covet` CLI speaks exactly these):
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /v1/plugins` | `{"plugins": [PluginStatus…]}` |
//! | `POST /v1/plugins/{name}/reload` | `SwapOutcome` |
//! | `POST /v1/plugins/{name}/swap` `{"path"?, "config"?}` | `SwapOutcome` |
//! | `POST /v1/reload` | `ReloadOutcome` |
//! | `GET /v1/events` | `text/event-stream`, one `data: <Event>` per event |
//! | `GET /v1/upstreams` | `{"upstreams": [UpstreamStatus…]}`: each upstream's endpoints with health, ejections, counters and latency buckets |
//! | `POST /v1/cache/purge` `{"key"\|"prefix"(+"host"?)\|"tag", "namespace"?}` | 202 `{"seq","namespace","kind","value","backend"}`: the ban is in the purge log ([`super::purge`]) |
//! | `GET /metrics` | Prometheus text format 0.0.4 |
//!
//! Failures are [`ApiError`]s.

use std::{convert::Infallible, path::PathBuf, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{
        IntoResponse, Response,
        sse::{self, KeepAlive, Sse},
    },
    routing::{get, post},
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, Method, StatusCode, Uri, header::CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, error::ApiError};
use crate::control::{ReloadOutcome, SwapOutcome, SwapRequest};

/// The JSON endpoints, served with `state`.
pub fn routes(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/v1/plugins", get(list))
        .route("/v1/plugins/{name}/reload", post(reload_plugin))
        .route("/v1/plugins/{name}/swap", post(swap))
        .route("/v1/reload", post(reload_manifest))
        .route("/v1/events", get(events))
        .route("/v1/upstreams", get(upstreams))
        .route("/v1/cache/purge", post(purge))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

async fn list(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    Json(json!({ "plugins": state.control.list() }))
}

async fn upstreams() -> Json<serde_json::Value> {
    Json(json!({ "upstreams": crate::runtime::services::upstreams().status() }))
}

async fn purge(body: Bytes) -> Result<(StatusCode, Json<super::purge::Purged>), ApiError> {
    let request: super::purge::PurgeRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("invalid purge body: {e}; expected {{\"key\"|\"prefix\"|\"tag\": \"…\", \"host\"?: \"…\", \"namespace\"?: \"cache\"}}"))
    })?;
    let state = crate::runtime::services::current().map_err(ApiError::internal)?.state;
    let purged = super::purge::purge(&*state, request).await?;
    Ok((StatusCode::ACCEPTED, Json(purged)))
}

async fn reload_plugin(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Result<Json<SwapOutcome>, ApiError> {
    Ok(Json(state.control.reload_plugin(&name).await?))
}

async fn swap(State(state): State<Arc<AdminState>>, Path(name): Path<String>, body: Bytes) -> Result<Json<SwapOutcome>, ApiError> {
    let change = swap_request(&body)?;
    Ok(Json(state.control.swap(&name, change).await?))
}

async fn reload_manifest(State(state): State<Arc<AdminState>>) -> Result<Json<ReloadOutcome>, ApiError> {
    Ok(Json(state.control.reload_manifest().await?))
}

async fn events(State(state): State<Arc<AdminState>>) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    let events = state.events().map(|event| {
        let data = serde_json::to_string(&event).unwrap_or_default();
        Ok(sse::Event::default().data(data))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    let content_type = HeaderValue::from_static(super::metrics::CONTENT_TYPE);
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

/// The body of a swap: both fields optional, nothing else allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapBody {
    path: Option<PathBuf>,
    config: Option<serde_json::Value>,
}

/// Reads a swap body; an empty body is `{}` (a reload).
fn swap_request(body: &[u8]) -> Result<SwapRequest, ApiError> {
    let parsed: SwapBody = match body.trim_ascii().is_empty() {
        true => SwapBody::default(),
        false => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid swap body: {e}; expected {{\"path\": \"…\", \"config\": {{…}}}}")))?,
    };
    Ok(SwapRequest { path: parsed.path, config: parsed.config })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_body_takes_path_and_config() {
        let change = swap_request(br#"{"path": "v2.so", "config": {"a": 1}}"#).unwrap();
        assert_eq!(change.path, Some(PathBuf::from("v2.so")));
        assert_eq!(change.config, Some(json!({"a": 1})));
        let empty = swap_request(b"  ").unwrap();
        assert!(empty.path.is_none() && empty.config.is_none());
    }

    #[test]
    fn unknown_fields_and_bad_json_are_bad_requests() {
        let error = swap_request(br#"{"pth": "v2.so"}"#).unwrap_err();
        assert_eq!((error.status.as_u16(), error.code), (400, "bad_request"));
        assert!(error.message.contains("unknown field `pth`"), "{}", error.message);
        assert_eq!(swap_request(b"{").unwrap_err().code, "bad_request");
        assert_eq!(swap_request(br#"{"path": 3}"#).unwrap_err().code, "bad_request");
    }
}
