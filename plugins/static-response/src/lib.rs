//! # static-response
//!
//! A handler that answers every request with one fixed response: a status,
//! headers and a body given inline or read from a file. The response is built
//! and checked once, at load; serving it is a single clone.
//!
//! ```yaml
//! listen:
//!   - addr: 127.0.0.1:8080
//! plugins:
//!   hello:
//!     kind: native
//!     path: artifacts/libcovet_static_response.so
//!     config:
//!       status: 200                      # default 200; 200..=599
//!       headers: { cache-control: "public, max-age=60" }
//!       body: "hello from covet\n"       # content-type defaults to text/plain; charset=utf-8
//!   index:
//!     kind: native
//!     path: artifacts/libcovet_static_response.so
//!     config:
//!       body_file: site/index.html       # read once at load; content-type guessed: text/html
//! routes:
//!   - path: /hello
//!     methods: [GET]
//!     handler: hello
//!   - path: /
//!     handler: index
//! ```
//!
//! ## Config
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `status` | `200` | status code, 200 to 599; 204 and 304 may not have a body |
//! | `headers` | none | map of header name → value, sent as given (names lower-cased) |
//! | `body` | empty | the body, inline |
//! | `body_file` | none | a file whose bytes are the body; read once when the plugin loads |
//! | `content_type` | see below | the `content-type` header |
//!
//! `body` and `body_file` exclude each other. A relative `body_file` is
//! resolved against the manifest's directory, like the plugin's own `path:`.
//! Editing the file later
//! changes nothing until the plugin is reloaded.
//!
//! Without `content_type`, an inline `body` is `text/plain; charset=utf-8`,
//! a `body_file` gets a type from its extension (`html`/`htm`, `json`, `css`,
//! `js`/`mjs`, `txt`, `svg`, `png`; anything else is
//! `application/octet-stream`), and an empty response has no content type.
//! `content-type` and `content-length` are refused in `headers`: the first has
//! its own key, the second is set by covet from the body.
#![deny(missing_docs)]

mod settings;

#[cfg(test)]
mod tests;

use covet_plugin_api::{Config, Phases, Plugin, Request, Response, export_plugin};

/// The plugin: one response, prebuilt at init.
pub struct StaticResponse {
    response: Response,
}

impl Plugin for StaticResponse {
    const PHASES: Phases = Phases::HANDLE;

    fn init(config: Config<'_>) -> Result<Self, String> {
        let mut settings: settings::Settings = config.parse()?;
        settings.body_file = settings.body_file.map(|p| config.resolve(p));
        Ok(StaticResponse { response: settings.into_response()? })
    }

    fn handle(&self, _req: &mut Request<'_>) -> Response {
        self.response.clone()
    }
}

export_plugin!(StaticResponse);
