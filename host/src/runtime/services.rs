//! The host services (`covet-services`) as the runtimes hand them to plugin
//! instances: the one [`Services`] value built from the manifest's
//! `services:` block ([`install`], at start and on a reload that changes it),
//! each instance's [`PluginServices`] with its grants ([`for_plugin`]), and
//! the native binding: [`NativeHost`] implements plugin-api's
//! `HostServicesOps` over them, so a native plugin's `Host` calls land here.
//!
//! The upstreams (`upstreams:`) are one host-wide registry ([`upstreams`]),
//! reconciled at start, on every manifest reload and by `covet check`
//! ([`reconcile_upstreams`]) before any plugin `init` runs, so an upstream
//! keeps its endpoints' health and counters across swaps and reloads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RString, RVec, Tuple2};
use covet_plugin_api::ffi::async_ffi::{FfiFuture, FutureExt};
use covet_plugin_api::host::Value as PluginValue;
use covet_plugin_api::host::ffi::{
    FfiHeader, FfiHttpRequest, FfiHttpResponse, FfiServiceError, FfiUpstreamRequest, FfiUpstreamResponse, HostServicesBox,
    HostServicesOps, HostServicesOps_TO,
};
use covet_services::http::{ClientCert, HttpConfig, OutboundMetrics, OutboundPolicy, RequestBody};
use covet_services::state::{RedisConfig, StateConfig, Value};
use covet_services::upstream::{Overrides, UpstreamConfig, UpstreamRequest, UpstreamResponse, Upstreams};
use covet_services::{Grants, PluginServices, ServiceError, Services, ServicesConfig};
use http_body_util::BodyExt;
use tokio::runtime::{Handle, RuntimeFlavor};

use super::native::body::{FfiBody, HostBodyStream};
use crate::manifest::{PluginSpec, ServicesSettings, StateBackend};

/// The services in force and the settings they were built from.
static CURRENT: Mutex<Option<(ServicesSettings, Services)>> = Mutex::new(None);

/// Builds the services for `settings` unless the ones in force were built
/// from the same settings. Instances made before keep the services they got.
/// Call inside the host's tokio runtime.
pub fn install(settings: &ServicesSettings) -> Result<(), String> {
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if current.as_ref().is_some_and(|(s, _)| s == settings) {
        return Ok(());
    }
    let services = Services::new(&config(settings)?).map_err(|e| e.to_string())?;
    tracing::info!(state = services.state.backend(), "host services ready");
    *current = Some((settings.clone(), services));
    Ok(())
}

/// The services in force (built with the defaults if none were installed).
pub fn current() -> Result<Services, String> {
    {
        let current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, services)) = current.as_ref() {
            return Ok(services.clone());
        }
    }
    install(&ServicesSettings::default())?;
    current()
}

/// The services of one new instance of `spec`, with its grants and a fresh task set.
pub fn for_plugin(spec: &PluginSpec) -> Result<PluginServices, String> {
    let outbound = OutboundPolicy::new(&spec.grants.outbound_http)?;
    let grants = Grants { outbound, state_namespaces: spec.grants.state.clone() };
    let runtime = runtime()?;
    let _inside = runtime.enter();
    let mut services = current()?.for_plugin(&spec.name, grants, runtime);
    services.http = services.http.with_metrics(outbound_metrics(&spec.name));
    services.upstreams = spec.grants.upstreams.clone();
    Ok(services)
}

/// The host's upstreams (empty until [`reconcile_upstreams`]).
pub fn upstreams() -> &'static Upstreams {
    static UPSTREAMS: std::sync::OnceLock<Upstreams> = std::sync::OnceLock::new();
    UPSTREAMS.get_or_init(Upstreams::new)
}

/// Applies the manifest's `upstreams:`: unchanged endpoint sets keep their
/// health and counters, new ones start, removed ones stop. Runs inside the
/// host's runtime, or this module's own outside any (`covet check`).
pub fn reconcile_upstreams(configs: &[UpstreamConfig]) -> Result<(), String> {
    let runtime = runtime()?;
    let _inside = runtime.enter();
    upstreams().reconcile(configs.to_vec()).map_err(|e| format!("upstreams: {e}"))
}

/// Outbound HTTP counters by plugin name, shared by all of a plugin's
/// instances (so they survive swaps and reloads); read by `/metrics`.
static OUTBOUND_METRICS: Mutex<BTreeMap<String, Arc<OutboundMetrics>>> = Mutex::new(BTreeMap::new());

/// The outbound HTTP counters of plugin `plugin` (made on first use).
pub fn outbound_metrics(plugin: &str) -> Arc<OutboundMetrics> {
    let mut all = OUTBOUND_METRICS.lock().unwrap_or_else(|p| p.into_inner());
    all.entry(plugin.to_owned()).or_default().clone()
}

/// `(requests, denied, errors)` of plugin `plugin`'s outbound HTTP so far.
pub fn outbound_snapshot(plugin: &str) -> (u64, u64, u64) {
    let all = OUTBOUND_METRICS.lock().unwrap_or_else(|p| p.into_inner());
    all.get(plugin).map_or((0, 0, 0), |m| m.snapshot())
}

/// The runtime plugin tasks run on: the host's, or — outside any (`covet
/// check`) — a small one of this module's own.
fn runtime() -> Result<Handle, String> {
    match Handle::try_current() {
        Ok(handle) => Ok(handle),
        Err(_) => own_runtime().map(|own| own.handle().clone()),
    }
}

/// A one-worker runtime for services used outside the host's runtime.
fn own_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static OWN: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> = std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(1).thread_name("covet-services").enable_all();
        builder.build().map_err(|e| format!("cannot start a runtime for the host services: {e}"))
    });
    own.as_ref().map_err(Clone::clone)
}

fn config(settings: &ServicesSettings) -> Result<ServicesConfig, String> {
    let h = &settings.http;
    let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("services.http: {}: {e}", path.display()));
    let client_cert = match &h.client_cert {
        Some((cert, key)) => Some(ClientCert { cert_pem: read(cert)?, key_pem: read(key)? }),
        None => None,
    };
    let http = HttpConfig {
        connect_timeout: h.connect_timeout,
        request_timeout: h.request_timeout,
        body_idle_timeout: h.body_idle_timeout,
        pool_idle_timeout: h.pool_idle_timeout,
        pool_max_idle_per_host: h.pool_max_idle_per_host,
        ca_pem: h.ca.as_deref().map(read).transpose()?,
        client_cert,
    };
    let s = &settings.state;
    let state = match s.backend {
        // In process mode the supervisor keeps the in-memory state for every process.
        StateBackend::Memory => match crate::supervisor::child::ChildRole::state_socket() {
            Some(path) => StateConfig::Process(path, covet_services::state::ProcessState::DEFAULT_TIMEOUT),
            None => StateConfig::Memory,
        },
        StateBackend::Redis => StateConfig::Redis(RedisConfig { url: s.url.clone(), timeout: s.timeout, prefix: s.prefix.clone() }),
    };
    Ok(ServicesConfig { http, state })
}

/// A native instance's services behind plugin-api's `HostServicesOps`, and
/// the runtime its `block_on` runs futures on (a multi-thread one).
#[derive(Clone)]
pub struct NativeHost(Arc<PluginServices>, Option<Handle>);

impl std::fmt::Debug for NativeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NativeHost")
    }
}

impl NativeHost {
    /// The FFI object for `services`.
    pub fn into_ffi(services: PluginServices) -> HostServicesBox {
        let handle = Handle::try_current().ok().filter(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
        let handle = handle.or_else(|| own_runtime().ok().map(|own| own.handle().clone()));
        HostServicesOps_TO::from_ptr(RArc::new(NativeHost(Arc::new(services), handle)), TD_Opaque)
    }
}

/// `Host::block_on`: runs `task` on `runtime` (multi-thread, so its I/O and
/// timers are driven by its workers) from a thread allowed to block. On a
/// multi-thread worker (`init` at start, on reload or swap) that is this
/// thread, inside `block_in_place`; on a current-thread runtime (an io_uring
/// core), whose thread must not wait on itself, a scoped thread; outside
/// any runtime (`covet check`), this thread. A panic in the task is an error.
fn block_on(runtime: &Handle, task: FfiFuture<()>) -> Result<(), String> {
    let run = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(task)));
    let ran = match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
        Ok(_) => std::thread::scope(|scope| scope.spawn(run).join().unwrap_or_else(Err)),
        Err(_) => run(),
    };
    ran.map_err(|panic| {
        let message = panic.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| panic.downcast_ref::<String>().cloned());
        format!("the plugin's task blocked on at init panicked: {}", message.as_deref().unwrap_or("(no message)"))
    })
}

fn ffi_error(e: ServiceError) -> FfiServiceError {
    FfiServiceError { kind: e.kind().into(), message: e.to_string().into() }
}

fn ttl(ms: ROption<u64>) -> Option<Duration> {
    ms.into_option().map(Duration::from_millis)
}

/// Runs `fut` (host futures, polled by the host's runtime) as an FFI future.
fn ffi<T: Send + 'static>(
    fut: impl Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> FfiFuture<RResult<T, FfiServiceError>> {
    async move { fut.await.map_err(ffi_error).into() }.into_ffi()
}

fn to_request(request: FfiHttpRequest) -> Result<(http::Request<RequestBody>, Option<Duration>), ServiceError> {
    let timeout = ttl(request.timeout_ms);
    let mut builder = http::Request::builder().method(request.method.as_str()).uri(request.url.as_str());
    for Tuple2(name, value) in request.headers {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let body = match request.body.into_option() {
        Some(stream) => {
            let body = FfiBody::new(stream).map_err(|e| -> covet_services::http::BoxError { e.to_string().into() });
            body.boxed_unsync()
        }
        None => covet_services::http::empty(),
    };
    let request = builder.body(body).map_err(|e| ServiceError::Http(format!("invalid outbound request: {e}")))?;
    Ok((request, timeout))
}

fn from_response(response: http::Response<covet_services::http::ResponseBody>) -> FfiHttpResponse {
    let (head, body) = response.into_parts();
    let headers = head.headers.iter().map(|(n, v)| Tuple2(RString::from(n.as_str()), RVec::from(v.as_bytes().to_vec())));
    let body = body.map_err(|e| -> crate::exchange::BodyError { e.to_string().into() }).boxed_unsync();
    FfiHttpResponse { status: head.status.as_u16(), headers: headers.collect(), body: HostBodyStream::new(body).into_ffi() }
}

fn to_plugin_value(value: Value) -> PluginValue {
    match value {
        Value::Nil => PluginValue::Nil,
        Value::Int(i) => PluginValue::Int(i),
        Value::Bytes(b) => PluginValue::Bytes(b),
        Value::Array(items) => PluginValue::Array(items.into_iter().map(to_plugin_value).collect()),
    }
}

/// The plugin's headers as a map. All values share one buffer: one
/// allocation instead of one per value, and copying the map for an upstream
/// attempt only counts references.
fn header_map(headers: RVec<FfiHeader>) -> Result<http::HeaderMap, ServiceError> {
    let mut buffer = bytes::BytesMut::with_capacity(headers.iter().map(|Tuple2(_, value)| value.len()).sum());
    for Tuple2(_, value) in &headers {
        buffer.extend_from_slice(value);
    }
    let buffer = buffer.freeze();
    let mut map = http::HeaderMap::with_capacity(headers.len());
    let mut at = 0;
    for Tuple2(name, value) in &headers {
        // The host's per-thread name cache: custom names (`x-forwarded-for`)
        // are not parsed and allocated again on every request.
        let name = crate::exchange::header_name(name).or_else(|_| {
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| ServiceError::Http(format!("invalid header name '{name}': {e}")))
        })?;
        let bytes = buffer.slice(at..at + value.len());
        at += value.len();
        let value = http::HeaderValue::from_maybe_shared(bytes).map_err(|e| ServiceError::Http(format!("invalid value of header '{name}': {e}")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// `ip:port`, `[v6]:port` or a bare IP; anything else is no address.
fn client_ip(addr: &str) -> Option<std::net::IpAddr> {
    let addr = addr.trim();
    addr.parse::<std::net::SocketAddr>().map(|a| a.ip()).or_else(|_| addr.parse()).ok()
}

fn to_upstream_request(request: FfiUpstreamRequest) -> Result<UpstreamRequest, ServiceError> {
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| ServiceError::Http(format!("invalid method '{}': {e}", request.method)))?;
    let body = request.body.into_option().map(|stream| {
        let body = FfiBody::new(stream).map_err(|e| -> covet_services::http::BoxError { e.to_string().into() });
        body.boxed_unsync()
    });
    Ok(UpstreamRequest {
        method,
        path_and_query: request.path_and_query.into_string(),
        headers: header_map(request.headers)?,
        body,
        client_ip: client_ip(&request.client_addr),
        overrides: Overrides {
            timeout: ttl(request.timeout_ms),
            per_try_timeout: ttl(request.per_try_timeout_ms),
            max_retries: request.max_retries.into_option(),
            retry_non_idempotent: request.retry_non_idempotent.into_option(),
        },
    })
}

fn from_upstream_response(answer: UpstreamResponse) -> FfiUpstreamResponse {
    let FfiHttpResponse { status, headers, body } = from_response(answer.response);
    FfiUpstreamResponse { status, headers, body, endpoint: RString::from(&*answer.endpoint_text), attempts: answer.attempts }
}

impl NativeHost {
    /// Upstream `name`, if this plugin is granted it and it is defined.
    fn upstream(&self, name: &str) -> Result<Arc<covet_services::upstream::Upstream>, ServiceError> {
        let services = &self.0;
        if !services.upstreams.iter().any(|granted| granted == name) {
            let what = format!("upstream '{name}'");
            return Err(ServiceError::Denied { plugin: services.plugin.clone(), what, grant: "upstreams" });
        }
        upstreams().get(name).ok_or_else(|| {
            let defined = upstreams().names().join(", ");
            ServiceError::Config(format!("no upstream '{name}' is defined (defined: {defined})"))
        })
    }

    fn namespace(&self, ns: &str) -> Result<covet_services::state::Namespace, ServiceError> {
        self.0.state.namespace(ns)
    }
}

impl HostServicesOps for NativeHost {
    fn http_send(&self, request: FfiHttpRequest) -> FfiFuture<RResult<FfiHttpResponse, FfiServiceError>> {
        let outbound = self.0.http.clone();
        ffi(async move {
            let (request, timeout) = to_request(request)?;
            outbound.send(request, timeout).await.map(from_response)
        })
    }

    fn sleep_ms(&self, millis: u64) -> FfiFuture<RResult<(), FfiServiceError>> {
        ffi(self.0.tasks.sleep(Duration::from_millis(millis)))
    }

    fn spawn(&self, task: FfiFuture<()>) -> RResult<(), FfiServiceError> {
        self.0.tasks.spawn(task).map_err(ffi_error).into()
    }

    fn state_get(&self, ns: RString, key: RString) -> FfiFuture<RResult<ROption<RVec<u8>>, FfiServiceError>> {
        let ns = self.namespace(&ns);
        ffi(async move { Ok(ns?.get(&key).await?.map(RVec::from).into()) })
    }

    fn state_set(&self, ns: RString, key: RString, value: RVec<u8>, ttl_ms: ROption<u64>) -> FfiFuture<RResult<(), FfiServiceError>> {
        let ns = self.namespace(&ns);
        ffi(async move { ns?.set(&key, value.into_vec(), ttl(ttl_ms)).await })
    }

    fn state_incr(&self, ns: RString, key: RString, delta: i64, ttl_ms: ROption<u64>) -> FfiFuture<RResult<i64, FfiServiceError>> {
        let ns = self.namespace(&ns);
        ffi(async move { ns?.incr(&key, delta, ttl(ttl_ms)).await })
    }

    fn state_cas(
        &self,
        ns: RString,
        key: RString,
        expected: ROption<RVec<u8>>,
        new: ROption<RVec<u8>>,
        ttl_ms: ROption<u64>,
    ) -> FfiFuture<RResult<bool, FfiServiceError>> {
        let ns = self.namespace(&ns);
        ffi(async move {
            let expected = expected.into_option().map(RVec::into_vec);
            ns?.compare_and_set(&key, expected.as_deref(), new.into_option().map(RVec::into_vec), ttl(ttl_ms)).await
        })
    }

    fn state_delete(&self, ns: RString, key: RString) -> FfiFuture<RResult<bool, FfiServiceError>> {
        let ns = self.namespace(&ns);
        ffi(async move { ns?.delete(&key).await })
    }

    fn block_on(&self, task: FfiFuture<()>) -> RResult<(), FfiServiceError> {
        let Some(runtime) = &self.1 else {
            let message = "no runtime to run the plugin's init task on";
            return RResult::RErr(FfiServiceError { kind: "config".into(), message: message.into() });
        };
        block_on(runtime, task).map_err(|message| FfiServiceError { kind: "backend".into(), message: message.into() }).into()
    }

    fn http_check(&self, url: RString) -> RResult<(), FfiServiceError> {
        let checked = match url.parse::<http::Uri>() {
            Ok(uri) => self.0.http.allowed(&uri).map(drop),
            Err(e) => Err(ServiceError::Http(format!("URL '{url}' is not valid: {e}"))),
        };
        checked.map_err(ffi_error).into()
    }

    fn upstream_send(&self, request: FfiUpstreamRequest) -> FfiFuture<RResult<FfiUpstreamResponse, FfiServiceError>> {
        let upstream = self.upstream(&request.upstream);
        ffi(async move {
            let upstream = upstream?;
            let request = to_upstream_request(request)?;
            // Boxed here, once: the send future is large, and held inline it
            // would be copied each time the FFI future around it is moved.
            Box::pin(upstream.send(request)).await.map(from_upstream_response)
        })
    }

    fn upstream_check(&self, name: RString) -> RResult<(), FfiServiceError> {
        self.upstream(&name).map(drop).map_err(ffi_error).into()
    }

    fn state_eval(
        &self,
        ns: RString,
        script: RString,
        keys: RVec<RString>,
        args: RVec<RString>,
    ) -> FfiFuture<RResult<RString, FfiServiceError>> {
        let ns = self.namespace(&ns);
        ffi(async move {
            let keys: Vec<String> = keys.into_iter().map(RString::into_string).collect();
            let args: Vec<String> = args.into_iter().map(RString::into_string).collect();
            let value = ns?.eval(&script, &keys, &args).await?;
            Ok(RString::from(to_plugin_value(value).to_json().to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that needs the runtime's timer and I/O drivers: a timer, then a
    /// loopback TCP round trip.
    fn needs_drivers(done: Arc<Mutex<bool>>) -> FfiFuture<()> {
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (accepted, connected) = tokio::join!(listener.accept(), tokio::net::TcpStream::connect(addr));
            *done.lock().unwrap() = accepted.is_ok() && connected.is_ok();
        }
        .into_ffi()
    }

    fn runs_to_completion() {
        let done = Arc::new(Mutex::new(false));
        let runtime = own_runtime().unwrap().handle().clone();
        assert_eq!(block_on(&runtime, needs_drivers(done.clone())), Ok(()));
        assert!(*done.lock().unwrap(), "the future did not finish");
    }

    #[test]
    fn block_on_outside_any_runtime() {
        runs_to_completion();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn block_on_from_a_multi_thread_worker() {
        runs_to_completion();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn block_on_from_a_current_thread_runtime() {
        runs_to_completion();
    }

    #[test]
    fn client_addresses_give_their_ip() {
        assert_eq!(client_ip("10.0.0.7:5123"), Some("10.0.0.7".parse().unwrap()));
        assert_eq!(client_ip("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(client_ip("192.168.1.2"), Some("192.168.1.2".parse().unwrap()));
        assert_eq!(client_ip(""), None);
        assert_eq!(client_ip("unix:/x"), None);
    }

    #[test]
    fn bad_headers_are_http_errors() {
        let bad = RVec::from(vec![Tuple2(RString::from("bad name"), RVec::from(b"v".to_vec()))]);
        assert_eq!(header_map(bad).unwrap_err().kind(), "http");
        let good = RVec::from(vec![Tuple2(RString::from("x-a"), RVec::from(b"1".to_vec())), Tuple2(RString::from("x-a"), RVec::from(b"2".to_vec()))]);
        assert_eq!(header_map(good).unwrap().get_all("x-a").iter().count(), 2);
    }

    #[test]
    fn upstreams_need_a_grant_and_a_definition() {
        use covet_services::upstream::EndpointSpec;
        let spec = EndpointSpec { host: "127.0.0.1".into(), port: 9, weight: 1 };
        reconcile_upstreams(&[UpstreamConfig::new("unit-users", vec![spec])]).unwrap();
        let runtime = own_runtime().unwrap().handle().clone();
        let mut services = current().unwrap().for_plugin("p", Grants::default(), runtime);
        services.upstreams = vec!["unit-users".into(), "unit-orders".into()];
        let host = NativeHost(Arc::new(services), None);
        assert!(host.upstream_check("unit-users".into()).is_ok());
        let denied = host.upstream_check("unit-other".into()).unwrap_err();
        assert_eq!(denied.kind.as_str(), "denied");
        assert!(denied.message.contains("capabilities: { upstreams: [...] }"), "{}", denied.message);
        let undefined = host.upstream_check("unit-orders".into()).unwrap_err();
        assert_eq!(undefined.kind.as_str(), "config");
        assert!(undefined.message.contains("no upstream 'unit-orders' is defined (defined: unit-users)"), "{}", undefined.message);
    }

    #[test]
    fn a_panic_in_the_task_is_an_error() {
        let runtime = own_runtime().unwrap().handle().clone();
        let error = block_on(&runtime, async { panic!("boom") }.into_ffi()).unwrap_err();
        assert!(error.contains("panicked"), "{error}");
    }
}
