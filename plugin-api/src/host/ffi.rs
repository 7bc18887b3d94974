//! The host services as they cross the native ABI: [`HostServicesOps`], an
//! `abi_stable` trait object the host implements over `covet-services` with
//! the plugin's grants, whose operations return `async_ffi` futures the
//! plugin awaits (the host's runtime drives them; the plugin needs none).
//! Bodies cross as [`BodyStreamBox`] streams, chunk by chunk.
//!
//! Plugin authors use the wrappers in [`crate::host`], not these types.

use std::fmt::Debug;

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RArc, ROption, RResult, RString, RVec, Tuple2},
};
use async_ffi::{FfiFuture, FutureExt};

use crate::ffi::BodyStreamBox;

/// A failed service call as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiServiceError {
    /// `denied`, `timeout`, `connect`, `tls`, `http`, `unsupported`, `backend`, `config`, `shut_down`,
    /// and for upstreams `unavailable` and `overloaded`.
    pub kind: RString,
    /// The whole message, for logs and error responses.
    pub message: RString,
}

/// A header as it crosses the boundary: name and raw value.
pub type FfiHeader = Tuple2<RString, RVec<u8>>;

/// An outbound request.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiHttpRequest {
    /// `GET`, `POST`, ...
    pub method: RString,
    /// An absolute `http://` or `https://` URL.
    pub url: RString,
    /// Request headers, in order.
    pub headers: RVec<FfiHeader>,
    /// The request body, streamed; `RNone`: empty.
    pub body: ROption<BodyStreamBox>,
    /// A shorter request timeout (until the response head), in milliseconds.
    pub timeout_ms: ROption<u64>,
}

/// An outbound response: its head, and its body as a stream.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiHttpResponse {
    /// The status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: RVec<FfiHeader>,
    /// The body, read chunk by chunk as the server sends it.
    pub body: BodyStreamBox,
}

/// A request to a named upstream (the manifest's `upstreams:`): the host
/// picks the endpoint (balancing, health, stickiness), applies the circuit
/// breaker, retries and timeouts, and answers with the first usable response.
///
/// An upgrade request (`connection: upgrade` + `upgrade: ...`, which is also
/// how the host presents an HTTP/2 extended CONNECT) is never retried: when
/// the endpoint answers `101`, `body` (the client's bytes after the upgrade)
/// is pumped to the endpoint and the response body carries the endpoint's
/// bytes back, so a tunnel is two body streams.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiUpstreamRequest {
    /// The upstream's name in the manifest.
    pub upstream: RString,
    /// `GET`, `POST`, ...
    pub method: RString,
    /// Path and query as sent to the endpoint (`/users/7?full=1`).
    pub path_and_query: RString,
    /// Headers as sent to the endpoint, in order. The caller has removed
    /// hop-by-hop headers; a `host` header here is sent as is, else the
    /// host sets the upstream's `host` (its configured name and port).
    pub headers: RVec<FfiHeader>,
    /// The request body, streamed; `RNone`: empty.
    pub body: ROption<BodyStreamBox>,
    /// The client's address (`ip:port` or `ip`), for `client_ip` hashing.
    pub client_addr: RString,
    /// Overall deadline for this request (all attempts), shortening the upstream's `timeout`.
    pub timeout_ms: ROption<u64>,
    /// Deadline of each attempt until the response head, overriding the upstream's `retries.per_try_timeout`.
    pub per_try_timeout_ms: ROption<u64>,
    /// Most retries for this request, overriding the upstream's `retries.attempts`.
    pub max_retries: ROption<u32>,
    /// Retry non-idempotent methods (POST, PATCH) too; the upstream's setting otherwise.
    pub retry_non_idempotent: ROption<bool>,
}

/// The answer of an upstream: the response head, the body as it streams,
/// and which endpoint answered after how many attempts.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiUpstreamResponse {
    /// The status code.
    pub status: u16,
    /// Response headers, in order (hop-by-hop ones included: the caller filters).
    pub headers: RVec<FfiHeader>,
    /// The body, read chunk by chunk as the endpoint sends it (trailers included).
    pub body: BodyStreamBox,
    /// The endpoint that answered (`10.0.0.7:8080`).
    pub endpoint: RString,
    /// Attempts made (1: no retry).
    pub attempts: u32,
}

/// What a service call returns across the boundary.
pub type FfiServiceResult<T> = FfiFuture<RResult<T, FfiServiceError>>;

/// The host's services for one plugin instance. Cloning shares the instance's
/// services (an `RArc`). Every future is `'static` and `Send`.
#[sabi_trait]
pub trait HostServicesOps: Clone + Debug + Send + Sync {
    /// Sends an outbound HTTP request; resolves at the response head.
    fn http_send(&self, request: FfiHttpRequest) -> FfiServiceResult<FfiHttpResponse>;
    /// Waits `millis` milliseconds (ends early with `shut_down` at the instance's shutdown).
    fn sleep_ms(&self, millis: u64) -> FfiServiceResult<()>;
    /// Runs `task` in the background until it ends or the instance shuts down.
    fn spawn(&self, task: FfiFuture<()>) -> RResult<(), FfiServiceError>;
    /// `SharedState::get`.
    fn state_get(&self, ns: RString, key: RString) -> FfiServiceResult<ROption<RVec<u8>>>;
    /// `SharedState::set`; `ttl_ms` `RNone`: no expiry.
    fn state_set(&self, ns: RString, key: RString, value: RVec<u8>, ttl_ms: ROption<u64>) -> FfiServiceResult<()>;
    /// `SharedState::incr`.
    fn state_incr(&self, ns: RString, key: RString, delta: i64, ttl_ms: ROption<u64>) -> FfiServiceResult<i64>;
    /// `SharedState::compare_and_set`.
    fn state_cas(
        &self,
        ns: RString,
        key: RString,
        expected: ROption<RVec<u8>>,
        new: ROption<RVec<u8>>,
        ttl_ms: ROption<u64>,
    ) -> FfiServiceResult<bool>;
    /// `SharedState::delete`.
    fn state_delete(&self, ns: RString, key: RString) -> FfiServiceResult<bool>;
    /// `SharedState::eval`; the reply is JSON (see [`crate::host::Value`]'s encoding).
    #[sabi(last_prefix_field)]
    fn state_eval(&self, ns: RString, script: RString, keys: RVec<RString>, args: RVec<RString>) -> FfiServiceResult<RString>;
    /// Runs `task` to completion on the host's runtime and returns when it
    /// has ended (or panicked: `RErr`), from synchronous code such as `init`
    /// on whatever thread the host called it (see [`crate::host::Host::block_on`]).
    /// The default (a host without it) refuses with `unsupported`.
    fn block_on(&self, task: FfiFuture<()>) -> RResult<(), FfiServiceError> {
        drop(task);
        RResult::RErr(unsupported("block_on"))
    }
    /// Whether the plugin's grants let it send a request to `url` (nothing is
    /// sent): `denied` naming the host and the grant, `http` for a bad URL.
    /// The default (a host without it) refuses with `unsupported`.
    fn http_check(&self, url: RString) -> RResult<(), FfiServiceError> {
        drop(url);
        RResult::RErr(unsupported("http_check"))
    }
    /// Sends a request to a named upstream (granted by `capabilities.upstreams`).
    /// Errors: `denied` (no grant), `unavailable` (no endpoint could be
    /// reached), `timeout`, `overloaded` (circuit breaker full), `http` (reset,
    /// protocol error), `config` (no such upstream). The default (a host
    /// without upstreams) refuses with `unsupported`.
    fn upstream_send(&self, request: FfiUpstreamRequest) -> FfiServiceResult<FfiUpstreamResponse> {
        drop(request);
        async { RResult::RErr(unsupported("upstream_send")) }.into_ffi()
    }
    /// Whether this plugin may use upstream `name` (granted and defined), without sending anything.
    /// The default refuses with `unsupported`.
    fn upstream_check(&self, name: RString) -> RResult<(), FfiServiceError> {
        drop(name);
        RResult::RErr(unsupported("upstream_check"))
    }
}

fn unsupported(operation: &str) -> FfiServiceError {
    FfiServiceError {
        kind: "unsupported".into(),
        message: format!("this covet host does not offer `{operation}` to native plugins; upgrade the host").into(),
    }
}

/// The services object as the host hands it to a plugin.
pub type HostServicesBox = HostServicesOps_TO<'static, RArc<()>>;
