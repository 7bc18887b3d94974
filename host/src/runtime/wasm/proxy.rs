//! A standard `wasi:http/incoming-handler` component — what `wasmtime serve`
//! and Spin run — as a covet handler, unchanged.
//!
//! Per request, like `wasmtime serve`: a fresh instance (or, with
//! `instances: reused`, an idle one); the request handed over as a
//! `wasi:http` incoming request; the guest's `handle` runs in the request's
//! task until it sends the response head, within the plugin's time limit
//! (a trap is a 500; past the limit, 504). The body then streams: see
//! [`super::stream`] (a body the guest already finished goes out in one
//! piece, with no task).

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Instant,
};

use http::{HeaderValue, Uri, header, uri::Authority};
use http_body_util::Full;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime_wasi_http::{
    WasiHttpView,
    p2::bindings::{Proxy, ProxyPre, http::types::Scheme},
};

use super::{
    executor::classify,
    new_store,
    sandbox::{Ctx, Sandbox},
    stream::{self, Guest},
};
use crate::{
    exchange::{Exchange, HostResponse},
    manifest::{InstanceMode, PluginSpec},
    runtime::{Decision, Executor, Fault, Outcome, PluginInfo},
};

/// Idle instances a reused component keeps at most.
const MAX_IDLE: usize = 32;

/// What a wasi:http component's manifest entry may not ask for.
pub fn check_settings(spec: &PluginSpec) -> Result<(), String> {
    match spec.config.is_null() {
        true => Ok(()),
        false => Err("a wasi:http component takes no `config:` (it has no init); remove it".into()),
    }
}

/// A wasi:http component as a handler.
pub struct ProxyExecutor {
    info: PluginInfo,
    shared: Arc<Shared>,
}

/// What a request and the task streaming its response body both use.
pub struct Shared {
    /// The manifest entry's name (for the log).
    pub plugin: String,
    pre: ProxyPre<Ctx>,
    /// The plugin's sandbox.
    pub sandbox: Sandbox,
    /// Idle instances, when the manifest opted into reuse.
    idle: Option<Mutex<Vec<Live>>>,
}

/// An instance and its store.
pub struct Live {
    /// The store.
    pub store: Store<Ctx>,
    proxy: Proxy,
}


impl Shared {
    async fn check_out(&self, deadline: Instant) -> Result<Live, Fault> {
        let idle = self.idle.as_ref().and_then(|idle| idle.lock().unwrap_or_else(|e| e.into_inner()).pop());
        let mut live = match idle {
            Some(live) => live,
            None => {
                let mut store = new_store(&self.sandbox, self.pre.engine())?;
                self.sandbox.arm(&mut store, deadline);
                match self.pre.instantiate_async(&mut store).await {
                    Ok(proxy) => Live { store, proxy },
                    Err(e) => return Err(classify(e, store.data(), self.sandbox.limits(), "instantiation failed")),
                }
            }
        };
        self.sandbox.arm(&mut live.store, deadline);
        Ok(live)
    }

    /// Keeps `live` for a later request when instances are reused (without
    /// the span of the request it served).
    pub fn check_in(&self, mut live: Live) {
        live.store.data_mut().set_span(None);
        if let Some(idle) = &self.idle {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(live);
            }
        }
    }

    /// What a failed guest call means for the request.
    pub fn fault(&self, err: wasmtime::Error, live: &Live) -> Fault {
        classify(err, live.store.data(), self.sandbox.limits(), "trapped")
    }
}

impl ProxyExecutor {
    /// An executor for one manifest entry.
    pub fn new(info: PluginInfo, pre: ProxyPre<Ctx>, sandbox: Sandbox, mode: InstanceMode) -> ProxyExecutor {
        let idle = (mode == InstanceMode::Reused).then(|| Mutex::new(Vec::new()));
        let shared = Arc::new(Shared { plugin: info.name.clone(), pre, sandbox, idle });
        ProxyExecutor { info, shared }
    }

    async fn serve(&self, ex: &Exchange) -> Result<HostResponse, Fault> {
        let limits = self.shared.sandbox.limits();
        let deadline = Instant::now() + limits.timeout;
        match tokio::time::timeout_at(deadline.into(), self.attempt(ex, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(Fault::Timeout(format!("ran past its time limit of {} ms", limits.timeout.as_millis()))),
        }
    }

    /// Runs the guest until it sends the response head (or returns).
    async fn attempt(&self, ex: &Exchange, deadline: Instant) -> Result<HostResponse, Fault> {
        let mut live = self.shared.check_out(deadline).await?;
        live.store.data_mut().set_span(ex.span.clone());
        let (tx, mut rx) = oneshot::channel();
        let fail = |e: wasmtime::Error| Fault::Error(format!("cannot hand over the request: {e:#}"));
        let req = live.store.data_mut().http().new_incoming_request(Scheme::Http, incoming(ex)).map_err(fail)?;
        let out = live.store.data_mut().http().new_response_outparam(tx).map_err(fail)?;
        let clock = live.store.data().deadline().clone();
        let mut call: stream::Call = Box::pin(async move {
            let Live { mut store, proxy } = live;
            let result = proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await;
            (Live { store, proxy }, result)
        });
        let mut finished = None;
        let head = tokio::select! {
            head = &mut rx => head.ok(),
            done = &mut call => {
                finished = Some(done);
                rx.try_recv().ok()
            }
        };
        // The guest often finishes its body in the same go: one more poll
        // tells (no task to spawn then).
        if finished.is_none()
            && let Poll::Ready(done) = call.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        {
            finished = Some(done);
        }
        let guest = match finished {
            Some((live, Ok(()))) => Guest::Done(live),
            Some((live, Err(e))) => return Err(self.shared.fault(e, &live)),
            None => Guest::Running(call),
        };
        match head {
            Some(Ok(response)) => Ok(stream::respond(&self.shared, response, guest, clock)),
            Some(Err(code)) => {
                guest.finish(&self.shared).await?;
                Err(Fault::Error(format!("the component answered with an error: {code:?}")))
            }
            None => {
                guest.finish(&self.shared).await?;
                Err(Fault::Error("the component returned without setting a response".into()))
            }
        }
    }
}

/// The request as a `wasi:http` incoming request: an absolute URI (from the
/// `Host` header when the request line had no authority).
fn incoming(ex: &Exchange) -> hyper::Request<Full<bytes::Bytes>> {
    let host = ex.uri.authority().cloned().or_else(|| {
        let value = ex.headers.get(header::HOST).and_then(|h: &HeaderValue| h.to_str().ok())?;
        value.parse::<Authority>().ok()
    });
    let path = ex.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(host.unwrap_or_else(|| Authority::from_static("localhost")))
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| ex.uri.clone());
    let mut req = hyper::Request::new(Full::new(ex.body.clone()));
    *req.method_mut() = ex.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = ex.version;
    *req.headers_mut() = ex.headers.clone();
    req
}

impl Executor for ProxyExecutor {
    fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn on_request<'a>(&'a self, _: &'a mut Exchange) -> Outcome<'a, Decision> {
        Outcome::Ready(Err(Fault::Error("a wasi:http component is a handler only".into())))
    }

    fn handle<'a>(&'a self, ex: &'a mut Exchange) -> Outcome<'a, HostResponse> {
        Outcome::Pending(Box::pin(self.serve(ex)))
    }

    fn on_response<'a>(&'a self, _: &'a mut Exchange, _: &'a mut HostResponse) -> Outcome<'a, ()> {
        Outcome::Ready(Err(Fault::Error("a wasi:http component is a handler only".into())))
    }

    fn shutdown(&self) {
        if let Some(idle) = &self.shared.idle {
            idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}
