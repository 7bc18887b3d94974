//! The supervisor's admin API: the one operators and the `covet` CLI talk
//! to in process mode, on `admin.listen`, with the manifest's token policy.
//!
//! - A change (`POST /v1/plugins/NAME/swap`, `…/reload`, `POST /v1/reload`,
//!   and their gRPC methods) goes to every child ([`Fleet::apply`]); it
//!   answers when all have applied it.
//! - `GET /metrics` merges every child's exposition ([`super::merge`]) and
//!   adds the supervisor's own: `covet_processes`,
//!   `covet_process_restarts_total`, `covet_process_replay_failures_total`.
//! - Everything else (listings, events, upstreams, cache purges, which go to
//!   the shared state once) is forwarded to the first live child and its
//!   answer streamed back.

use std::{fmt::Write, net::SocketAddr, sync::Arc, sync::atomic::Ordering::Relaxed};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::future::join_all;
use http::{HeaderMap, HeaderValue, Method, header};
use tokio::{net::TcpListener, sync::watch};

use super::{
    fleet::Fleet,
    forward::{Answer, Op},
};
use crate::{
    admin::{AdminConfig, ApiError, auth},
    error::HostError,
    server::stopped,
};

/// The largest admin request body the supervisor reads.
const MAX_BODY: usize = 1 << 20;

/// The gRPC methods that change the host.
const GRPC_CHANGES: [&str; 3] = [
    "/covet.admin.v1.Admin/SwapPlugin",
    "/covet.admin.v1.Admin/ReloadPlugin",
    "/covet.admin.v1.Admin/ReloadManifest",
];

/// Binds the admin listener, prints `admin listening on http://ADDR`, and
/// serves until `stop` turns true.
pub async fn start(config: AdminConfig, fleet: Arc<Fleet>, stop: watch::Receiver<bool>) -> Result<(), HostError> {
    let addr = config.listen;
    let listener = TcpListener::bind(addr).await.map_err(|source| HostError::Bind { addr, source })?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics)).fallback(handle).with_state(fleet);
    let app = match config.token {
        Some(token) => app.layer(middleware::from_fn_with_state(Arc::new(token), auth::require_token)),
        None => app,
    };
    tokio::spawn(serve(listener, app, addr, stop));
    println!("admin listening on http://{addr}");
    std::io::Write::flush(&mut std::io::stdout())?;
    tracing::info!(%addr, "admin API listening (supervisor)");
    Ok(())
}

async fn serve(listener: TcpListener, app: Router, addr: SocketAddr, mut stop: watch::Receiver<bool>) {
    let shutdown = async move { stopped(&mut stop).await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(%addr, "admin API stopped: {e}");
    }
}

/// Whether a request changes the host (so it goes to every child).
fn is_change(method: &Method, path: &str, grpc: bool) -> bool {
    if grpc {
        return GRPC_CHANGES.contains(&path);
    }
    let plugin_change = path
        .strip_prefix("/v1/plugins/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(name, action)| !name.is_empty() && matches!(action, "swap" | "reload"));
    method == Method::POST && (path == "/v1/reload" || plugin_change)
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

async fn handle(State(fleet): State<Arc<Fleet>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let grpc = is_grpc(&parts.headers);
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        let error = ApiError::bad_request(format!("the request body could not be read or is over {MAX_BODY} bytes"));
        return if grpc { error.into_grpc_response() } else { error.into_response() };
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if is_change(&parts.method, parts.uri.path(), grpc) {
        let op = Op { method: parts.method, path, headers: parts.headers, body, grpc };
        return fleet.apply(op).await.into_response();
    }
    let Some(admin) = fleet.first_admin() else {
        return Answer::unavailable("no host process is running (one is being replaced); try again", grpc).into_response();
    };
    match fleet.forwarder().request(admin, grpc, &parts.method, &path, &parts.headers, body).await {
        Ok(response) => response.map(Body::new),
        Err(e) => Answer::unavailable(&format!("host process at {admin}: {e}"), grpc).into_response(),
    }
}

async fn metrics(State(fleet): State<Arc<Fleet>>) -> Response {
    let op = Op { method: Method::GET, path: "/metrics".into(), headers: HeaderMap::new(), body: Default::default(), grpc: false };
    let admins = fleet.admins();
    let answers = join_all(admins.iter().map(|admin| fleet.forwarder().send(*admin, &op))).await;
    let texts: Vec<String> = answers
        .into_iter()
        .filter(|a| a.succeeded())
        .map(|a| String::from_utf8_lossy(&a.body).into_owned())
        .collect();
    let mut text = super::merge::merge(&texts);
    own_metrics(&mut text, &fleet, texts.len());
    let mut response = text.into_response();
    let content_type = HeaderValue::from_static(crate::admin::METRICS_CONTENT_TYPE);
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}

/// The supervisor's own families.
fn own_metrics(text: &mut String, fleet: &Fleet, scraped: usize) {
    let serving = fleet.admins().len();
    let families = [
        ("covet_processes", "gauge", "Host processes by state: configured, serving, and scraped for this exposition.", None),
        ("covet_process_restarts", "counter", "Host processes replaced after they died.", Some(fleet.restarts.load(Relaxed))),
        ("covet_process_replay_failures", "counter", "Changes a replacement process refused while replaying what the others applied.", Some(fleet.replay_failures.load(Relaxed))),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match value {
            Some(value) => {
                let _ = writeln!(text, "{name}_total {value}");
            }
            None => {
                let _ = writeln!(text, "{name}{{state=\"configured\"}} {}", fleet.count());
                let _ = writeln!(text, "{name}{{state=\"serving\"}} {serving}");
                let _ = writeln!(text, "{name}{{state=\"scraped\"}} {scraped}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_and_reloads_are_changes_and_the_rest_are_not() {
        assert!(is_change(&Method::POST, "/v1/plugins/auth/swap", false));
        assert!(is_change(&Method::POST, "/v1/plugins/auth/reload", false));
        assert!(is_change(&Method::POST, "/v1/reload", false));
        assert!(is_change(&Method::POST, "/covet.admin.v1.Admin/SwapPlugin", true));
        assert!(!is_change(&Method::GET, "/v1/plugins", false));
        assert!(!is_change(&Method::GET, "/v1/plugins/auth/swap", false));
        assert!(!is_change(&Method::POST, "/v1/cache/purge", false));
        assert!(!is_change(&Method::POST, "/v1/plugins//swap", false));
        assert!(!is_change(&Method::POST, "/covet.admin.v1.Admin/ListPlugins", true));
    }
}
