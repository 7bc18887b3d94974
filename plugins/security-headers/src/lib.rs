//! # security-headers
//!
//! A filter that adds the browser security headers to every response of its
//! routes, with sane defaults: HSTS (on requests that came over TLS),
//! `x-content-type-options: nosniff`, `x-frame-options: DENY` and
//! `referrer-policy: strict-origin-when-cross-origin`. A content security
//! policy, a permissions policy and a cross-origin opener policy are sent
//! when configured.
//!
//! ```yaml
//! plugins:
//!   secure:
//!     kind: native
//!     path: artifacts/libcovet_security_headers.so
//!     config:
//!       hsts: { max_age: 365d, include_subdomains: true, preload: false, always: false }
//!       x_frame_options: SAMEORIGIN
//!       content_security_policy: "default-src 'self'"
//!       permissions_policy: "camera=(), geolocation=()"
//!       cross_origin_opener_policy: same-origin
//!       referrer_policy: false          # send none
//! routes:
//!   - path: /{*rest}
//!     filters: [secure]
//!     handler: site
//! ```
//!
//! ## Config
//!
//! Each header key is the header's name with `_` for `-`, and takes the
//! value as a string, `false` to send none, or `true` for the default.
//!
//! | key | default | allowed |
//! |---|---|---|
//! | `hsts` | `max-age=31536000; includeSubDomains` on TLS requests | `false`, `true`, or a map: `max_age` (`365d`, `180days` or seconds; default one year), `include_subdomains` (true), `preload` (false; needs `include_subdomains` and a year or more), `always` (false: send it on plain HTTP too, for a host behind a TLS-terminating proxy) |
//! | `x_content_type_options` | `nosniff` | `nosniff` |
//! | `x_frame_options` | `DENY` | `DENY`, `SAMEORIGIN` |
//! | `referrer_policy` | `strict-origin-when-cross-origin` | a Referrer-Policy token or a comma-separated list of them |
//! | `content_security_policy` | none | any policy, e.g. `"default-src 'self'"` |
//! | `permissions_policy` | none | any policy, e.g. `"camera=(), geolocation=()"` |
//! | `cross_origin_opener_policy` | none | `unsafe-none`, `same-origin-allow-popups`, `same-origin`, `noopener-allow-popups` |
//! | `override` | `false` | `true`: replace a header the handler already set |
//!
//! Values are checked when the plugin loads: a value outside a header's
//! vocabulary, an empty value, a control character or `true` for a header
//! without a default refuses the config, naming the key.
//!
//! ## Behaviour
//!
//! - A request came over TLS when the host set its `tls.version` metadata
//!   (TLS listeners and HTTP/3 do); only those get
//!   `strict-transport-security`, as browsers ignore it on plain HTTP.
//! - A header the handler (or a filter closer to it) already set is kept,
//!   unless `override: true`.
//! - The filter runs only `on_response` and never reads the request body, so
//!   routes with it can stream; it also covers answers of filters that
//!   short-circuit after it in the chain (e.g. a 401 from auth-jwt).
#![deny(missing_docs)]

mod config;
mod error;

#[cfg(test)]
mod tests;

use covet_plugin_api::{BodyMode, Config, Phases, Plugin, Request, ResponseMut, export_plugin};

use config::Compiled;
use error::ConfigError;

/// The plugin: the headers rendered at load.
pub struct SecurityHeaders {
    compiled: Compiled,
}

impl Plugin for SecurityHeaders {
    const PHASES: Phases = Phases::ON_RESPONSE;
    const BODY: BodyMode = BodyMode::Stream;

    fn init(config: Config<'_>) -> Result<Self, String> {
        let settings: config::Settings = config.parse().map_err(|e| ConfigError::Parse(e).to_string())?;
        let compiled = settings.compile().map_err(|e| e.to_string())?;
        Ok(SecurityHeaders { compiled })
    }

    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        let compiled = &self.compiled;
        for (name, value) in &compiled.headers {
            set(resp, name, value, compiled.override_existing);
        }
        if let Some((value, always)) = &compiled.hsts
            && (*always || req.metadata("tls.version").is_some())
        {
            set(resp, "strict-transport-security", value, compiled.override_existing);
        }
    }
}

/// Sets `name` unless the response has it and `replace` is off. Values were
/// checked at load, so the host does not refuse them.
fn set(resp: &mut ResponseMut<'_>, name: &str, value: &str, replace: bool) {
    if replace || resp.header(name).is_none() {
        let _ = resp.set_header(name, value);
    }
}

export_plugin!(SecurityHeaders);
