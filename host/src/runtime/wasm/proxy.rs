//! A standard `wasi:http/incoming-handler` component — what `wasmtime serve`
//! and Spin run — as a covet handler, unchanged.
//!
//! Per request, like `wasmtime serve`: a fresh instance in a new store; the
//! request handed over as a `wasi:http` incoming request; the guest runs on
//! its own task (it may keep writing the body after it has sent the head);
//! the host waits for the head, then collects the body, all within the
//! plugin's time limit. A trap before the head is a 500; past the limit, 504.

use std::time::Instant;

use http::{HeaderValue, Uri, header, uri::Authority};
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;
use wasmtime_wasi_http::{
    WasiHttpView,
    p2::bindings::{ProxyPre, http::types::Scheme},
};

use super::{executor::classify, new_store, sandbox::Sandbox};
use super::sandbox::Ctx;
use crate::{
    exchange::{Exchange, HostResponse},
    manifest::{InstanceMode, PluginSpec, WasmSettings},
    runtime::{Decision, Executor, Fault, Outcome, PluginInfo},
};

/// What a wasi:http component's manifest entry may not ask for.
pub fn check_settings(spec: &PluginSpec, settings: &WasmSettings) -> Result<(), String> {
    if !spec.config.is_null() {
        return Err("a wasi:http component takes no `config:` (it has no init); remove it".into());
    }
    if settings.instances == InstanceMode::Reused {
        return Err("a wasi:http component serves one request per instance; remove `instances: reused`".into());
    }
    Ok(())
}

/// A wasi:http component as a handler.
pub struct ProxyExecutor {
    info: PluginInfo,
    pre: ProxyPre<Ctx>,
    sandbox: Sandbox,
}

/// Aborts the guest's task when the request is done with it.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), Fault>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ProxyExecutor {
    /// An executor for one manifest entry.
    pub fn new(info: PluginInfo, pre: ProxyPre<Ctx>, sandbox: Sandbox) -> ProxyExecutor {
        ProxyExecutor { info, pre, sandbox }
    }

    async fn serve(&self, ex: &Exchange) -> Result<HostResponse, Fault> {
        let limits = self.sandbox.limits().clone();
        let deadline = Instant::now() + limits.timeout;
        let mut store = new_store(&self.sandbox, self.pre.engine())?;
        self.sandbox.arm(&mut store, deadline);
        let (tx, rx) = oneshot::channel();
        let fail = |e: wasmtime::Error| Fault::Error(format!("cannot hand over the request: {e:#}"));
        let req = store.data_mut().http().new_incoming_request(Scheme::Http, incoming(ex)).map_err(fail)?;
        let out = store.data_mut().http().new_response_outparam(tx).map_err(fail)?;
        let pre = self.pre.clone();
        let guest = AbortOnDrop(tokio::spawn(async move {
            let called = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
            };
            called.await.map_err(|e| classify(e, store.data(), &limits, "trapped"))
        }));
        let work = respond(rx, guest);
        match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(result) => result,
            Err(_) => Err(Fault::Timeout(format!("ran past its time limit of {} ms", self.sandbox.limits().timeout.as_millis()))),
        }
    }
}

/// Waits for the response head, then the whole body; a guest that trapped
/// or never answered is a fault.
async fn respond(
    head: oneshot::Receiver<Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>>,
    mut guest: AbortOnDrop,
) -> Result<HostResponse, Fault> {
    let response = match head.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Err(Fault::Error(format!("the component answered with an error: {code:?}"))),
        // The sender went with the store: the guest finished or trapped without answering.
        Err(_) => {
            let ended = (&mut guest.0).await.map_err(|e| Fault::Error(format!("the guest task failed: {e}")))?;
            ended?;
            return Err(Fault::Error("the component returned without setting a response".into()));
        }
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| Fault::Error(format!("the component's body failed: {e:?}")))?.to_bytes();
    let mut headers = parts.headers;
    // The host frames the body it sends.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    Ok(HostResponse { status: parts.status, headers, body })
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

    fn shutdown(&self) {}
}
