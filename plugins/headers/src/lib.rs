//! # headers
//!
//! A filter that adds, replaces and removes request headers (before the
//! handler) and response headers (after it). Values are templates that can
//! carry request facts and metadata set by earlier plugins, such as the
//! subject of a verified JWT.
//!
//! ```yaml
//! listen:
//!   - addr: 127.0.0.1:8080
//! plugins:
//!   jwt:
//!     kind: native
//!     path: artifacts/libcovet_auth_jwt.so
//!     config: { keys: [{ jwks_file: keys/jwks.json }], audience: api }
//!   headers:
//!     kind: native
//!     path: artifacts/libcovet_headers.so
//!     config:
//!       request:
//!         remove: [authorization]              # the handler never sees the token
//!         set: { x-user: "{jwt.sub}" }         # skipped when jwt.sub is absent
//!       response:
//!         set: { x-request-id: "{request.id}" }
//!         add: { via: "1.1 covet" }
//!         remove: [server]
//!   api:
//!     kind: native
//!     path: artifacts/libcovet_static_response.so
//!     config: { body: "ok" }
//! routes:
//!   - path: /api/{*rest}
//!     filters: [jwt, headers]                  # headers runs after jwt, so jwt.sub is set
//!     handler: api
//! ```
//!
//! ## Config
//!
//! `request:` rules edit the request before the handler (`on_request`);
//! `response:` rules edit the response after it (`on_response`). Each takes:
//!
//! | key | type | effect |
//! |---|---|---|
//! | `remove` | list of names | deletes every value of each header |
//! | `set` | map name → template | replaces every value of the header with one value |
//! | `add` | map name → template | appends one more value, keeping existing ones |
//!
//! They apply in the order `remove`, `set`, `add`, whatever order they are
//! written in. At least one phase must have a rule; a phase without rules does
//! no work. Header names are case-insensitive; `content-length` and
//! `transfer-encoding` are covet's and cannot be edited.
//!
//! ## Templates
//!
//! | placeholder | value |
//! |---|---|
//! | `{request.id}` | the request id (incoming `x-request-id`, or one covet made) |
//! | `{request.method}` | e.g. `GET` |
//! | `{request.path}` | the path, without the query string |
//! | `{client.ip}` | the client's IP address, without the port |
//! | `{any.key}` | the metadata value under `any.key`: any key with a dot, e.g. `{jwt.sub}`, `{ratelimit.key}` |
//!
//! `{{` and `}}` are a literal `{` and `}`. `request.*` and `client.*` are
//! reserved for the facts above. Templates are parsed when the plugin loads:
//! an unbalanced brace or an unknown placeholder refuses the config and names
//! the header. Response templates read the same request as request templates.
//!
//! **Missing metadata skips the header.** When a template uses a metadata key
//! that no earlier plugin set, or renders to an empty string, that `set` or
//! `add` is skipped: the header is not sent empty, and a skipped `set` leaves
//! any existing value as it was. A rendered value that is not valid in HTTP
//! (metadata holding a line break) is likewise not sent.
#![deny(missing_docs)]

mod rules;
mod template;

#[cfg(test)]
mod tests;

use covet_plugin_api::{Config, Flow, Phases, Plugin, Request, ResponseMut, export_plugin};

use rules::{Outgoing, Rules};

/// The plugin: the compiled rules of each phase.
pub struct Headers {
    request: Option<Rules>,
    response: Option<Rules>,
}

impl Plugin for Headers {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::ON_RESPONSE);

    fn init(config: Config<'_>) -> Result<Self, String> {
        let settings: rules::Settings = config.parse()?;
        let (request, response) = settings.compile()?;
        Ok(Headers { request, response })
    }

    /// Only the phases with rules: request-only rules cost nothing after
    /// the handler, and the other way round.
    fn phases(&self) -> Phases {
        let on = |rules: &Option<_>, phase| if rules.is_some() { phase } else { Phases::NONE };
        on(&self.request, Phases::ON_REQUEST) | on(&self.response, Phases::ON_RESPONSE)
    }

    fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if let Some(rules) = &self.request {
            rules.apply(req);
        }
        Flow::Continue
    }

    fn on_response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        if let Some(rules) = &self.response {
            rules.apply(&mut Outgoing { req, resp });
        }
    }
}

export_plugin!(Headers);
