//! The gRPC admin service `covet.admin.v1.Admin` (`proto/covet/admin/v1/admin.proto`),
//! plus gRPC reflection v1 serving its descriptors (for `grpcurl` and the like).
//! Each call does what its JSON twin in [`super::http`] does (`ListUpstreams`:
//! `GET /v1/upstreams`, the same fields as messages; `PurgeCache`:
//! `POST /v1/cache/purge`).

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, service::Routes};

use super::{AdminState, error::ApiError};
use crate::{
    control::{self, SwapRequest},
    error::HostError,
};

/// The generated messages and server.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("covet.admin.v1");
}

/// The encoded descriptor set of `admin.proto` (what reflection serves).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/admin_descriptor.bin"));

/// The `Admin` service over the control plane.
pub struct AdminService {
    state: Arc<AdminState>,
}

/// The gRPC services: `covet.admin.v1.Admin` and reflection v1 for it.
pub fn routes(state: Arc<AdminState>) -> Result<Routes, HostError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| HostError::Admin(format!("cannot build gRPC reflection: {e}")))?;
    let admin = pb::admin_server::AdminServer::new(AdminService { state });
    Ok(Routes::new(admin).add_service(reflection))
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn list_plugins(&self, _: Request<pb::ListPluginsRequest>) -> Result<Response<pb::ListPluginsResponse>, Status> {
        let plugins = self.state.control.list().into_iter().map(plugin_status).collect();
        Ok(Response::new(pb::ListPluginsResponse { plugins }))
    }

    async fn reload_plugin(&self, request: Request<pb::ReloadPluginRequest>) -> Result<Response<pb::SwapOutcome>, Status> {
        let outcome = self.state.control.reload_plugin(&request.into_inner().name).await.map_err(status)?;
        Ok(Response::new(swap_outcome(outcome)))
    }

    async fn swap_plugin(&self, request: Request<pb::SwapPluginRequest>) -> Result<Response<pb::SwapOutcome>, Status> {
        let pb::SwapPluginRequest { name, path, config } = request.into_inner();
        let config = config.map(|text| serde_json::from_str(&text)).transpose().map_err(|e| {
            ApiError::bad_request(format!("`config` is not JSON: {e}")).into_status()
        })?;
        let change = SwapRequest { path: path.map(Into::into), config };
        let outcome = self.state.control.swap(&name, change).await.map_err(status)?;
        Ok(Response::new(swap_outcome(outcome)))
    }

    async fn reload_manifest(&self, _: Request<pb::ReloadManifestRequest>) -> Result<Response<pb::ReloadOutcome>, Status> {
        let outcome = self.state.control.reload_manifest().await.map_err(status)?;
        Ok(Response::new(pb::ReloadOutcome {
            added: outcome.added,
            changed: outcome.changed,
            unchanged: outcome.unchanged,
            removed: outcome.removed,
            routes: outcome.routes as u64,
            warnings: outcome.warnings,
        }))
    }

    async fn list_upstreams(&self, _: Request<pb::ListUpstreamsRequest>) -> Result<Response<pb::ListUpstreamsResponse>, Status> {
        let upstreams = crate::runtime::services::upstreams().status().into_iter().map(upstream_status).collect();
        Ok(Response::new(pb::ListUpstreamsResponse { upstreams }))
    }

    async fn purge_cache(&self, request: Request<pb::PurgeCacheRequest>) -> Result<Response<pb::PurgeCacheResponse>, Status> {
        let pb::PurgeCacheRequest { key, prefix, host, tag, namespace } = request.into_inner();
        let request = super::purge::PurgeRequest { key, prefix, host, tag, namespace };
        let state = crate::runtime::services::current().map_err(|e| ApiError::internal(e).into_status())?.state;
        let p = super::purge::purge(&*state, request).await?;
        Ok(Response::new(pb::PurgeCacheResponse { seq: p.seq, namespace: p.namespace, kind: p.kind.to_owned(), value: p.value, backend: p.backend.to_owned() }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(&self, _: Request<pb::WatchEventsRequest>) -> Result<Response<EventStream>, Status> {
        let events = self.state.events().map(|event| Ok(event_message(event)));
        Ok(Response::new(Box::pin(events)))
    }
}

fn status(error: HostError) -> Status {
    ApiError::from(error).into_status()
}

fn plugin_status(p: control::PluginStatus) -> pb::PluginStatus {
    pb::PluginStatus {
        name: p.name,
        kind: p.kind,
        plugin: p.plugin,
        version: p.version,
        api_version: p.api_version,
        path: p.path.to_string_lossy().into_owned(),
        sha256: p.sha256,
        loaded_at: p.loaded_at,
        requests: p.requests,
        errors: p.errors,
        panics: p.panics,
        swaps: p.swaps,
        swap_failures: p.swap_failures,
    }
}

fn upstream_status(u: covet_services::upstream::UpstreamStatus) -> pb::UpstreamStatus {
    pb::UpstreamStatus {
        name: u.name,
        policy: u.policy.to_owned(),
        panic_mode: u.panic_mode,
        endpoints: u.endpoints.into_iter().map(endpoint_status).collect(),
        in_flight: u.in_flight,
        pending: u.pending,
        overloaded: u.overloaded,
        retries: u.retries,
        retries_budget_exhausted: u.retries_budget_exhausted,
    }
}

fn endpoint_status(e: covet_services::upstream::EndpointStatus) -> pb::EndpointStatus {
    let buckets = e.latency_buckets.into_iter().map(|(le, count)| pb::LatencyBucket { le, count });
    pb::EndpointStatus {
        address: e.address,
        host: e.host,
        weight: e.weight,
        health: e.health.to_owned(),
        active_check_passing: e.active_check_passing,
        ejected_for_ms: e.ejected_for_ms,
        ejections: e.ejections,
        in_flight: e.in_flight,
        requests: e.requests,
        errors: e.errors,
        latency_buckets: buckets.collect(),
        latency_sum_seconds: e.latency_sum_seconds,
        latency_count: e.latency_count,
    }
}

fn swap_outcome(o: control::SwapOutcome) -> pb::SwapOutcome {
    pb::SwapOutcome {
        plugin: o.plugin,
        old_version: o.old_version,
        new_version: o.new_version,
        sha256: o.sha256,
        new_code: o.new_code,
        took_ms: o.took_ms,
    }
}

fn event_message(e: control::Event) -> pb::Event {
    // The JSON API's name for the kind (`swapped`, `manifest_reloaded`, …).
    let kind = serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    pb::Event { at: e.at, kind, plugin: e.plugin, version: e.version, sha256: e.sha256, message: e.message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Event, EventKind};

    #[test]
    fn events_keep_the_json_kind_names() {
        let message = event_message(Event::new(EventKind::ManifestReloaded, None, "reloaded".into()));
        assert_eq!(message.kind, "manifest_reloaded");
        assert_eq!(message.plugin, None);
        assert_eq!(message.message, "reloaded");
    }

    #[test]
    fn the_descriptor_set_describes_the_admin_service() {
        let has = |name: &str| FILE_DESCRIPTOR_SET.windows(name.len()).any(|w| w == name.as_bytes());
        assert!(has("covet.admin.v1") && has("WatchEvents") && has("SwapPluginRequest"));
    }
}
