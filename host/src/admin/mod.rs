//! The admin API: the control plane over the network.
//!
//! One listener (`admin.listen` in the manifest, default `127.0.0.1:9901`;
//! `COVET_ADMIN_LISTEN` overrides it, `off` turns the API off) serves both
//! protocols, told apart per connection (hyper-util's auto builder):
//!
//! - HTTP/1.1 + JSON for people, scripts and the `covet` CLI ([`http`]):
//!   list plugins, reload or swap one, reload the manifest, stream events
//!   (SSE), purge the cache ([`purge`]), and `GET /metrics` in the
//!   Prometheus text format ([`metrics`]);
//! - gRPC over h2c with prior knowledge ([`grpc`]): `covet.admin.v1.Admin`
//!   from `proto/covet/admin/v1/admin.proto`, with reflection v1.
//!
//! **Token policy** ([`config`], [`auth`]): with a token (`COVET_ADMIN_TOKEN`,
//! else the file `admin.token_file`), every request — HTTP and gRPC — needs
//! `authorization: Bearer <token>`, whatever the address. Without one, the
//! API only listens on a loopback address: a non-loopback address without a
//! token stops the host at start-up (exit 2).
//!
//! Every failure is answered in one place, [`error`].

pub(crate) mod auth;
mod config;
mod error;
mod grpc;
mod http;
mod metrics;
pub(crate) use metrics::otlp_source;
/// The content type of `GET /metrics`.
pub const METRICS_CONTENT_TYPE: &str = metrics::CONTENT_TYPE;
pub mod purge;
mod upstream_metrics;

use std::{io::Write, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::Request,
    middleware,
    response::{IntoResponse, Response},
};
use futures_util::Stream;
use tokio::{
    net::TcpListener,
    sync::{broadcast::error::RecvError, watch},
    task::JoinHandle,
};

pub use auth::Token;
pub use config::{AdminConfig, LISTEN_ENV, TOKEN_ENV};
pub use error::ApiError;
pub use grpc::pb;

use crate::{
    control::{ControlPlane, Event},
    error::HostError,
    server::stopped,
};

/// What every admin handler shares.
pub struct AdminState {
    control: Arc<ControlPlane>,
    metrics: metrics::Exposition,
    stop: watch::Receiver<bool>,
}

impl AdminState {
    /// Control-plane events from now on; ends when the host shuts down.
    /// A subscriber that falls behind skips what it missed (and it is logged).
    fn events(&self) -> impl Stream<Item = Event> + Send + use<> {
        let start = (self.control.subscribe(), self.stop.clone());
        futures_util::stream::unfold(start, |(mut events, mut stop)| async move {
            loop {
                tokio::select! {
                    received = events.recv() => match received {
                        Ok(event) => return Some((event, (events, stop))),
                        Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "an admin event stream fell behind"),
                        Err(RecvError::Closed) => return None,
                    },
                    _ = stopped(&mut stop) => return None,
                }
            }
        })
    }
}

/// The running admin API. It has its own runtime on its own thread, so a
/// swap requested while every data-plane worker is busy is not queued behind
/// their connections.
pub struct AdminServer {
    runtime: Option<tokio::runtime::Runtime>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Stops serving; admin calls in flight are cut.
    pub fn abort(mut self) {
        self.task.abort();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Binds the admin listener, prints `admin listening on http://ADDR`, and
/// serves until `stop` turns true.
pub async fn start(
    config: AdminConfig,
    control: Arc<ControlPlane>,
    stop: watch::Receiver<bool>,
) -> Result<AdminServer, HostError> {
    let bind_error = |source| HostError::Bind { addr: config.listen, source };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let metrics = metrics::Exposition::new(control.clone());
    let state = Arc::new(AdminState { control, metrics, stop: stop.clone() });
    let app = router(state, config.token)?;
    // One worker (a multi-thread runtime, so control-plane calls may use
    // `block_in_place`); it sleeps unless an operator is calling.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("covet-admin")
        .enable_all()
        .build()?;
    let task = runtime.spawn(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => serve(listener, app, addr, stop).await,
            Err(e) => tracing::error!(%addr, "admin API cannot listen: {e}"),
        }
    });
    // Tests and scripts read the admin port from this line.
    println!("admin listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, "admin API listening");
    Ok(AdminServer { runtime: Some(runtime), task })
}

async fn serve(listener: TcpListener, app: Router, addr: SocketAddr, mut stop: watch::Receiver<bool>) {
    let shutdown = async move { stopped(&mut stop).await };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(%addr, "admin API stopped: {e}");
    }
}

/// The gRPC services and the JSON endpoints on one router, behind the token
/// check when a token is configured.
fn router(state: Arc<AdminState>, token: Option<Token>) -> Result<Router, HostError> {
    let grpc = grpc::routes(state.clone())?.into_axum_router();
    let app = grpc.merge(http::routes(state)).fallback(not_found);
    Ok(match token {
        Some(token) => app.layer(middleware::from_fn_with_state(Arc::new(token), auth::require_token)),
        None => app,
    })
}

/// Whether a request speaks gRPC (so its errors must be gRPC statuses).
fn is_grpc(headers: &::http::HeaderMap) -> bool {
    headers
        .get(::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

async fn not_found(request: Request) -> Response {
    if is_grpc(request.headers()) {
        let message = format!("no gRPC method {}", request.uri().path());
        return tonic::Status::unimplemented(message).into_http();
    }
    ApiError::not_found(request.method(), request.uri().path()).into_response()
}
