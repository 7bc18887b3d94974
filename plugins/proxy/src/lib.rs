//! # covet-proxy
//!
//! A handler that forwards each request to a named upstream of the
//! manifest's `upstreams:` block and streams the answer back: covet as a
//! reverse proxy. Balancing, health, outlier ejection, retries, timeouts and
//! circuit breaking live in the host's upstream service (they must outlive a
//! swap of this plugin and be shared by every route naming the upstream);
//! this plugin owns the HTTP semantics of the hop. See `docs/proxy.md`.
//!
//! ```yaml
//! plugins:
//!   api:
//!     kind: native
//!     path: target/release/libcovet_proxy.so
//!     capabilities: { upstreams: [users] }
//!     config:
//!       upstream: users              # required: a name from `upstreams:`
//!       strip_prefix: /api           # optional; on a segment boundary
//!       rewrite_prefix: /v2          # optional; replaces the stripped prefix
//!       host: preserve               # preserve (default) | upstream | a literal Host
//!       forwarded:
//!         trusted: ["10.0.0.0/8"]    # "none" (default) | "all" | IPs and CIDRs
//!         x_forwarded: true          # X-Forwarded-For/-Proto/-Host (default true)
//!         rfc7239: true              # Forwarded (default true)
//!       via: true                    # true (default: `Via: 1.1 covet`) | false | a name
//!       timeout: 10s                 # optional overrides of the upstream's settings
//!       per_try_timeout: 2s
//!       max_retries: 2
//!       retry_non_idempotent: false
//!       retry_after: 1s              # a 503's retry-after when the host names none
//! ```
//!
//! Per request (`handle`, with `BodyMode::Stream`): the path is rewritten,
//! hop-by-hop headers are dropped, the forwarding headers, `Via` and `Host`
//! are set, and the client's body stream is handed to the upstream as it
//! arrives. The answer's status and end-to-end headers come back with its
//! body as a stream (trailers and upgraded tunnels flow through the host's
//! streams). Request metadata `upstream.name`, `upstream.endpoint` and
//! `upstream.attempts` are set for the access log. Failures become the
//! structured 502/503/504 bodies of [`reply`].
#![deny(missing_docs)]

mod config;
mod error;
mod forwarded;
mod headers;
mod inbound;
mod outbound;
mod path;
mod reply;
mod trust;

use covet_plugin_api::{
    AsyncPlugin, BodyMode, Config, HttpVersion, Phases, Request, Response,
    host::{Upstream, UpstreamRequestBuilder},
};

pub use crate::error::ConfigError;
use crate::{
    config::{Policy, Settings},
    outbound::Client,
};

/// Metadata: the upstream's name (set before the call, so failures are logged with it).
const META_NAME: &str = "upstream.name";
/// Metadata: the endpoint that answered (`10.0.0.7:8080`).
const META_ENDPOINT: &str = "upstream.endpoint";
/// Metadata: how many attempts the host made.
const META_ATTEMPTS: &str = "upstream.attempts";

/// The proxy handler: one instance per manifest entry.
pub struct Proxy {
    policy: Policy,
    upstream: Upstream,
}

impl Proxy {
    /// Checks the config and the grant for its upstream (the load fails on either).
    fn start(config: &Config<'_>) -> Result<Proxy, ConfigError> {
        let policy = config.parse::<Settings>().map_err(ConfigError::Parse)?.compile()?;
        let upstream = config.host().upstream(&policy.upstream);
        upstream.check().map_err(|e| ConfigError::Upstream { name: policy.upstream.clone(), reason: e.message })?;
        Ok(Proxy { policy, upstream })
    }

    /// The upstream request for `req`, its body included.
    fn prepare(&self, req: &mut Request<'_>) -> UpstreamRequestBuilder {
        let version = req.version();
        let client = Client {
            ip: trust::client_ip(req.client_ip()),
            tls: version == HttpVersion::Http3 || req.metadata("tls.version").is_some(),
            version,
        };
        let incoming = req.headers();
        let headers = outbound::request_headers(&incoming, &client, &self.policy);
        let upgrade = headers.iter().any(|(name, _)| *name == "connection");
        let mut builder = self.upstream.request(req.method(), &self.policy.prefix.apply(req.uri()));
        for (name, value) in &headers {
            builder = builder.header(name, value.as_bytes());
        }
        drop(headers);
        builder = self.overrides(builder.client_addr(req.client_addr()));
        let body = req.take_body();
        // A body known to be empty is not sent as a stream (no chunked framing for a GET).
        if upgrade || body.size_hint() != Some(0) { builder.body_stream(body) } else { builder }
    }

    /// The config's overrides of the upstream's timeouts and retries.
    fn overrides(&self, mut builder: UpstreamRequestBuilder) -> UpstreamRequestBuilder {
        let p = &self.policy;
        if let Some(t) = p.timeout {
            builder = builder.timeout(t);
        }
        if let Some(t) = p.per_try_timeout {
            builder = builder.per_try_timeout(t);
        }
        if let Some(n) = p.max_retries {
            builder = builder.max_retries(n);
        }
        if let Some(allow) = p.retry_non_idempotent {
            builder = builder.retry_non_idempotent(allow);
        }
        builder
    }
}

impl AsyncPlugin for Proxy {
    const PHASES: Phases = Phases::HANDLE;
    const BODY: BodyMode = BodyMode::Stream;

    fn init(config: Config<'_>) -> Result<Self, String> {
        Proxy::start(&config).map_err(|e| e.to_string())
    }

    async fn handle(&self, req: &mut Request<'_>) -> Response {
        let request = self.prepare(req);
        req.set_metadata(META_NAME, &self.policy.upstream);
        match request.send().await {
            Ok(answer) => {
                req.set_metadata(META_ENDPOINT, answer.endpoint());
                req.set_metadata(META_ATTEMPTS, &answer.attempts().to_string());
                let (status, headers, body) = answer.into_parts();
                // The upstream's protocol version is not reported; its hop is written as 1.1.
                let via = self.policy.via.as_ref().map(|v| v.entry(HttpVersion::Http11));
                inbound::response(status, inbound::response_headers(headers, status, via), body)
            }
            Err(error) => {
                reply::upstream_error(&error, &self.policy.upstream, req.request_id(), self.policy.retry_after)
            }
        }
    }
}

/// The plugin's own allocator: a cdylib gets the system allocator by
/// default (glibc's malloc, ~7,000 instructions of a proxied request's
/// header and body plumbing); the host and the graphql plugin use mimalloc
/// for the same reason. Memory crossing the boundary is freed through
/// abi_stable's vtables, by the allocator that made it.
#[global_allocator]
static GLOBAL: covet_alloc::Allocator = covet_alloc::Allocator;

covet_plugin_api::export_plugin!(async Proxy);

#[cfg(test)]
mod tests;
