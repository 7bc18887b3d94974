//! A standard `wasi:http/incoming-handler` component — what `wasmtime serve`
//! and Spin run — as a covet handler, unchanged.
//!
//! Per request, like `wasmtime serve`: a fresh instance (or, with
//! `instances: reused`, an idle one); the request handed over as a
//! `wasi:http` incoming request; the guest's `handle` runs until it sends
//! the response head, then on, concurrently with the host collecting the
//! body (the guest may write it after the head), all in the request's own
//! task and within the plugin's time limit. A trap is a 500; past the limit,
//! 504.

use std::{pin::pin, sync::Mutex, time::Instant};

use http::{HeaderValue, Uri, header, uri::Authority};
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime_wasi_http::{
    WasiHttpView,
    p2::bindings::{Proxy, ProxyPre, http::types::Scheme},
};

use super::{executor::classify, new_store, sandbox::{Ctx, Sandbox}};
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
    pre: ProxyPre<Ctx>,
    sandbox: Sandbox,
    /// Idle instances, when the manifest opted into reuse.
    idle: Option<Mutex<Vec<Live>>>,
}

struct Live {
    store: Store<Ctx>,
    proxy: Proxy,
}

type Head = Result<
    hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
>;

impl ProxyExecutor {
    /// An executor for one manifest entry.
    pub fn new(info: PluginInfo, pre: ProxyPre<Ctx>, sandbox: Sandbox, mode: InstanceMode) -> ProxyExecutor {
        let idle = (mode == InstanceMode::Reused).then(|| Mutex::new(Vec::new()));
        ProxyExecutor { info, pre, sandbox, idle }
    }

    async fn serve(&self, ex: &Exchange) -> Result<HostResponse, Fault> {
        let deadline = Instant::now() + self.sandbox.limits().timeout;
        match tokio::time::timeout_at(deadline.into(), self.attempt(ex, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(Fault::Timeout(format!("ran past its time limit of {} ms", self.sandbox.limits().timeout.as_millis()))),
        }
    }

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

    async fn attempt(&self, ex: &Exchange, deadline: Instant) -> Result<HostResponse, Fault> {
        let mut live = self.check_out(deadline).await?;
        let (tx, mut rx) = oneshot::channel();
        let fail = |e: wasmtime::Error| Fault::Error(format!("cannot hand over the request: {e:#}"));
        let req = live.store.data_mut().http().new_incoming_request(Scheme::Http, incoming(ex)).map_err(fail)?;
        let out = live.store.data_mut().http().new_response_outparam(tx).map_err(fail)?;
        let Live { store, proxy } = &mut live;
        let (called, response) = {
            let mut call = pin!(proxy.wasi_http_incoming_handler().call_handle(&mut *store, req, out));
            let mut called = None;
            let head = tokio::select! {
                head = &mut rx => head.ok(),
                result = &mut call => {
                    called = Some(result);
                    rx.try_recv().ok()
                }
            };
            let response = respond(head, called.is_none().then_some(call.as_mut()), &mut called).await;
            (called, response)
        };
        if let Some(Err(e)) = called {
            return Err(classify(e, store.data(), self.sandbox.limits(), "trapped"));
        }
        let response = response?;
        if let Some(idle) = &self.idle {
            let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(live);
            }
        }
        Ok(response)
    }
}

/// Collects the response whose head the guest sent, letting a guest call
/// still running (`call`) finish alongside; records its result in `called`.
async fn respond<F>(head: Option<Head>, call: Option<std::pin::Pin<&mut F>>, called: &mut Option<wasmtime::Result<()>>) -> Result<HostResponse, Fault>
where
    F: Future<Output = wasmtime::Result<()>>,
{
    let finish = async {
        if let Some(call) = call {
            *called = Some(call.await);
        }
    };
    let response = match head {
        Some(Ok(response)) => response,
        Some(Err(code)) => {
            finish.await;
            return Err(Fault::Error(format!("the component answered with an error: {code:?}")));
        }
        None => {
            finish.await;
            return Err(Fault::Error("the component returned without setting a response".into()));
        }
    };
    let (parts, body) = response.into_parts();
    let (body, ()) = tokio::join!(body.collect(), finish);
    let body = body.map_err(|e| Fault::Error(format!("the component's body failed: {e:?}")))?.to_bytes();
    let mut headers = parts.headers;
    // The host frames the body it sends.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    Ok(HostResponse { status: parts.status, headers, body, stream: None })
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
        if let Some(idle) = &self.idle {
            idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}
