//! # cors
//!
//! A filter for Cross-Origin Resource Sharing (the Fetch standard's CORS
//! protocol): it answers preflights and adds `access-control-*` headers to
//! responses for allowed origins. Disallowed origins get no CORS headers,
//! so the browser blocks the response from the page.
//!
//! ```yaml
//! plugins:
//!   cors:
//!     kind: native
//!     path: artifacts/libcovet_cors.so
//!     config:
//!       allow_origins: [https://app.example.com, "https://*.example.com", "http://localhost:*"]
//!       allow_methods: [GET, POST, PUT, DELETE]     # default GET, HEAD, POST
//!       allow_headers: [content-type, authorization] # or "*": echo what the preflight asks for
//!       expose_headers: [x-request-id]
//!       allow_credentials: true                      # cookies, HTTP auth; never with origins "*"
//!       max_age: 10m                                 # how long browsers cache a preflight
//!       preflight: respond                           # respond (204 here) | pass (the handler answers)
//!       disallowed_preflight: forbid                 # forbid (403) | pass (on, no CORS headers)
//! routes:
//!   - path: /api/{*rest}
//!     filters: [cors]          # no `methods:` here, or list OPTIONS: the router answers 405 before filters
//!     handler: api
//! ```
//!
//! ## Config
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `allow_origins` | required | exact origins (`https://app.example.com`), patterns with `*` in the host (`https://*.example.com`: one or more characters, so not `https://example.com`) or as the port (`http://localhost:*`: any port, or none), or `*` alone for any origin |
//! | `allow_methods` | `[GET, HEAD, POST]` | methods a preflight may ask for (compared exactly, as browsers send them) |
//! | `allow_headers` | `[]` | request headers a preflight may ask for (any case); `*` echoes the preflight's `access-control-request-headers` |
//! | `expose_headers` | `[]` | response headers a page's script may read |
//! | `allow_credentials` | `false` | send `access-control-allow-credentials: true`; refused at load with `allow_origins: "*"` |
//! | `max_age` | none | `access-control-max-age` on preflight answers (`30s`, `10m`, `1h`, or seconds; at most a day) |
//! | `preflight` | `respond` | `respond`: an allowed preflight is answered 204 by the filter; `pass`: it goes on to the handler and the filter adds the preflight headers to its answer |
//! | `disallowed_preflight` | `forbid` | `forbid`: 403 `CORS_FORBIDDEN` in covet's error format, the details naming the origin, method or header refused; `pass`: on to the handler, no CORS headers |
//!
//! ## Behaviour
//!
//! - A **preflight** is an `OPTIONS` request with `origin` and
//!   `access-control-request-method`. Allowed when the origin is allowed,
//!   the method is in `allow_methods` and every header of
//!   `access-control-request-headers` is in `allow_headers`. The answer
//!   carries `access-control-allow-origin`, `-allow-methods`,
//!   `-allow-headers`, `-max-age`, `-allow-credentials` (those that apply)
//!   and `vary: origin, access-control-request-method, access-control-request-headers`.
//! - An **actual request** (any other request with `origin`) from an allowed
//!   origin gets `access-control-allow-origin` (`*` with `allow_origins: "*"`,
//!   else the request's origin echoed), `access-control-allow-credentials`
//!   and `access-control-expose-headers` when configured; these replace any
//!   the handler set. A disallowed origin gets none of them.
//! - `vary: origin` is added to every response on the route (with or without
//!   `origin`) unless `allow_origins` is `*`: the answer depends on the
//!   origin, so caches must key on it. Names already in the response's first
//!   `vary` value are not repeated; `vary: *` is left alone.
//! - The filter never reads the request body, so routes with it can stream.
#![deny(missing_docs)]

mod config;
mod error;
mod exchange;
mod origin;

#[cfg(test)]
mod tests;

use covet_plugin_api::{BodyMode, Config, Flow, Phases, Plugin, Request, Response, ResponseMut, export_plugin};

use config::{Disallowed, Policy, Preflight};
use error::ConfigError;
use exchange::Kind;

/// The plugin: the compiled policy.
pub struct Cors {
    policy: Policy,
}

impl Plugin for Cors {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::ON_RESPONSE);
    const BODY: BodyMode = BodyMode::Stream;

    fn init(config: Config<'_>) -> Result<Self, String> {
        let settings: config::Settings = config.parse().map_err(|e| ConfigError::Parse(e).to_string())?;
        let policy = settings.compile().map_err(|e| e.to_string())?;
        Ok(Cors { policy })
    }

    fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let Kind::Preflight { origin, method } = Kind::of(req) else { return Flow::Continue };
        match exchange::check_preflight(&self.policy, req, origin, method) {
            Ok(allow_headers) if self.policy.preflight == Preflight::Respond => {
                let mut resp = Response::new(204);
                exchange::preflight_headers(&self.policy, origin, allow_headers, &mut resp);
                Flow::Respond(resp)
            }
            Err(refusal) if self.policy.disallowed == Disallowed::Forbid => {
                Flow::Respond(exchange::forbidden(&refusal, origin, req.request_id()))
            }
            _ => Flow::Continue,
        }
    }

    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        let policy = &self.policy;
        match Kind::of(req) {
            Kind::Preflight { origin, method } => match exchange::check_preflight(policy, req, origin, method) {
                // Only reached with `preflight: pass` (with `respond` the filter answered).
                Ok(allow_headers) => exchange::preflight_headers(policy, origin, allow_headers, resp),
                Err(_) => exchange::add_vary(resp, &exchange::PREFLIGHT_VARY),
            },
            Kind::Actual { origin } if policy.origins.allows(origin) => {
                exchange::actual_headers(policy, origin, resp);
                if !policy.origins.is_any() {
                    exchange::add_vary(resp, &["origin"]);
                }
            }
            Kind::Actual { .. } | Kind::Plain => {
                if !policy.origins.is_any() {
                    exchange::add_vary(resp, &["origin"]);
                }
            }
        }
    }
}

export_plugin!(Cors);
