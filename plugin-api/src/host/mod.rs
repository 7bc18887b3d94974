//! Host services for native plugins: outbound HTTP, timers and background
//! tasks, shared state. A plugin takes its [`Host`] from its config at init
//! (`config.host()`), keeps it, and awaits the calls from its `async` phases:
//!
//! ```ignore
//! let host = config.host();
//! let response = host.http().get("https://login.example.com/jwks.json").timeout(Duration::from_secs(2)).send().await?;
//! let keys = response.bytes().await?;
//! let hits = host.state("counters").incr("requests", 1, None).await?;
//! host.spawn(async move { loop { refresh().await; if host.sleep(Duration::from_secs(60)).await.is_err() { break } } });
//! ```
//!
//! Every call needs a grant in the manifest (`capabilities: { outbound_http:
//! [...], state: [...] }`); others fail with [`ServiceErrorKind::Denied`].
//! The futures are driven by the host's runtime: a plugin needs no runtime of
//! its own. Tasks and sleeps end when the instance shuts down.
//!
//! `init` is synchronous: it checks grants with [`Http::check`] and, when it
//! cannot start without a fetched document, waits on one with
//! [`Host::block_on`] (the host runs the future on its runtime from a thread
//! allowed to block).

pub mod ffi;
mod http;
mod state;
mod upstream;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use abi_stable::std_types::RResult;
use async_ffi::FutureExt;

pub use self::http::{HttpResponse, RequestBuilder};
pub use self::state::{State, Value};
pub use self::upstream::{Upstream, UpstreamRequestBuilder, UpstreamResponse};
use self::ffi::{FfiServiceError, HostServicesBox};

/// The host's services for this plugin instance. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    ops: Option<HostServicesBox>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("connected", &self.ops.is_some()).finish()
    }
}

impl Host {
    /// The host's services object (what the host passes in `InitContext`).
    pub fn from_ffi(ops: HostServicesBox) -> Host {
        Host { ops: Some(ops) }
    }

    /// A `Host` with no services behind it: every call fails with
    /// `Unsupported` (for unit tests of a plugin outside a host).
    pub fn unavailable() -> Host {
        Host { ops: None }
    }

    fn ops(&self) -> Result<&HostServicesBox, ServiceError> {
        self.ops.as_ref().ok_or_else(|| ServiceError::new(ServiceErrorKind::Unsupported, "no host services (not running in covet)"))
    }

    /// Outbound HTTP.
    pub fn http(&self) -> Http {
        Http { host: self.clone() }
    }

    /// Waits `duration`; fails with `ShutDown` when the instance shuts down meanwhile.
    pub async fn sleep(&self, duration: Duration) -> Result<(), ServiceError> {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        result(self.ops()?.sleep_ms(millis).await)
    }

    /// Runs `task` in the background, owned by this instance: it is cancelled
    /// (dropped) when the instance shuts down. A panic in it is logged by the host.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> Result<(), ServiceError> {
        result(self.ops()?.spawn(task.into_ffi()))
    }

    /// Runs `fut` to completion on the host's runtime and returns its
    /// output: for synchronous code that must wait on a service, i.e. `init`
    /// (fetch what the instance cannot start without). The host drives the
    /// future from a thread allowed to block, so this is sound wherever the
    /// host calls `init` (a runtime worker, an io_uring core, `covet check`
    /// outside any runtime). Never call it from a phase's future or a
    /// spawned task: await there instead. A panic in `fut` comes back as an
    /// error naming it. Bound the wait with the calls' own timeouts.
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output, ServiceError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let out = Arc::clone(&slot);
        let task = async move {
            let value = fut.await;
            *out.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        };
        result(self.ops()?.block_on(task.into_ffi()))?;
        let value = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        value.ok_or_else(|| ServiceError::new(ServiceErrorKind::ShutDown, "the blocked-on task ended without finishing"))
    }

    /// Upstream `name` from the manifest's `upstreams:` (granted by `capabilities.upstreams`).
    pub fn upstream(&self, name: &str) -> Upstream {
        Upstream::new(self.clone(), name)
    }

    /// Shared state namespace `ns` (granted by `capabilities.state`).
    pub fn state(&self, ns: &str) -> State {
        State::new(self.clone(), ns)
    }
}

/// Outbound HTTP: start a request with [`Http::get`], [`Http::request`], ...
#[derive(Clone, Debug)]
pub struct Http {
    host: Host,
}

impl Http {
    /// A request with `method` to absolute URL `url`.
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder {
        RequestBuilder::new(self.host.clone(), method, url)
    }

    /// A `GET` request.
    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request("GET", url)
    }

    /// A `POST` request.
    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request("POST", url)
    }

    /// Whether this plugin may send requests to `url`, without sending any:
    /// `Ok` when `capabilities.outbound_http` grants its host and port, else
    /// `Denied` (the message names the host and the grant to add), or `Http`
    /// for a URL that is not absolute `http://` / `https://`. For checking
    /// configured URLs at `init`, so a missing grant fails the load.
    pub fn check(&self, url: &str) -> Result<(), ServiceError> {
        result(self.host.ops()?.http_check(url.into()))
    }
}

/// What kind of failure a [`ServiceError`] is. Later hosts may add kinds
/// (as 0.2 added `Unavailable` and `Overloaded`), so a `match` needs a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceErrorKind {
    /// The manifest does not grant this host or namespace.
    Denied,
    /// The call did not finish in time.
    Timeout,
    /// No connection could be made.
    Connect,
    /// TLS failed.
    Tls,
    /// An HTTP protocol error, or a bad request (URL, header).
    Http,
    /// The backend does not offer this operation (`eval` on the in-process state).
    Unsupported,
    /// The state backend failed.
    Backend,
    /// The host's service configuration is wrong.
    Config,
    /// The instance is shutting down.
    ShutDown,
    /// No endpoint of the upstream could be reached (refused, all ejected, none resolved).
    Unavailable,
    /// The upstream's circuit breaker is full (too many requests in flight and pending).
    Overloaded,
}

impl ServiceErrorKind {
    fn from_name(name: &str) -> ServiceErrorKind {
        match name {
            "denied" => ServiceErrorKind::Denied,
            "timeout" => ServiceErrorKind::Timeout,
            "connect" => ServiceErrorKind::Connect,
            "tls" => ServiceErrorKind::Tls,
            "unsupported" => ServiceErrorKind::Unsupported,
            "backend" => ServiceErrorKind::Backend,
            "config" => ServiceErrorKind::Config,
            "shut_down" => ServiceErrorKind::ShutDown,
            "unavailable" => ServiceErrorKind::Unavailable,
            "overloaded" => ServiceErrorKind::Overloaded,
            _ => ServiceErrorKind::Http,
        }
    }
}

/// A failed host service call: its kind and the host's message (which, for
/// a denial, names the plugin, the host or namespace and the grant to add).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    /// What kind of failure.
    pub kind: ServiceErrorKind,
    /// The message.
    pub message: String,
}

impl ServiceError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ServiceErrorKind, message: impl Into<String>) -> ServiceError {
        ServiceError { kind, message: message.into() }
    }

    fn from_ffi(error: FfiServiceError) -> ServiceError {
        ServiceError { kind: ServiceErrorKind::from_name(&error.kind), message: error.message.into_string() }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {}

fn result<T>(r: RResult<T, FfiServiceError>) -> Result<T, ServiceError> {
    r.into_result().map_err(ServiceError::from_ffi)
}

/// Headers as they cross the boundary.
fn headers_to_ffi(headers: Vec<(String, Vec<u8>)>) -> abi_stable::std_types::RVec<ffi::FfiHeader> {
    headers.into_iter().map(|(n, v)| abi_stable::std_types::Tuple2(n.into(), v.into())).collect()
}

/// Headers as they came across the boundary.
fn headers_from_ffi(headers: abi_stable::std_types::RVec<ffi::FfiHeader>) -> Vec<(String, Vec<u8>)> {
    headers.into_iter().map(|abi_stable::std_types::Tuple2(n, v)| (n.into_string(), v.into_vec())).collect()
}

/// The first value of header `name` (any case) in `headers`, as text.
fn find_header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h str> {
    let (_, value) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    std::str::from_utf8(value).ok()
}

/// An optional body as it crosses the boundary.
fn body_to_ffi(body: Option<crate::BodyStream>) -> abi_stable::std_types::ROption<crate::ffi::BodyStreamBox> {
    body.map(crate::BodyStream::into_ffi).into()
}

/// A duration in whole milliseconds across the boundary (saturating).
fn millis(d: Option<Duration>) -> abi_stable::std_types::ROption<u64> {
    d.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)).into()
}

fn ttl_ms(ttl: Option<Duration>) -> abi_stable::std_types::ROption<u64> {
    ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)).into()
}
