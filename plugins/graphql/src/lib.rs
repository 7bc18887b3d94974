//! # covet-graphql
//!
//! A handler serving a GraphQL API over REST services: the schema is SDL in
//! the config, and fields resolve by declarative HTTP calls (`@http` or the
//! `resolvers:` block) through the host's upstreams or outbound HTTP. Calls
//! of one request run concurrently, identical calls are made once, keys of
//! sibling fields can be batched, answers can be cached in shared state, and
//! a failing field is `null` with an entry in `errors`. GraphQL semantics
//! (validation, execution, errors) are async-graphql's, on a dynamic schema
//! built from the SDL at `init`. See `docs/graphql.md`.
#![deny(missing_docs)]

mod config;
mod error;
pub mod transport;

use covet_plugin_api::{AsyncPlugin, Config, Phases, Request, Response};

pub use crate::error::ConfigError;
use crate::{config::Settings, transport::Format};

/// The graphql handler: one instance per manifest entry.
pub struct GraphQl {
    settings: Settings,
}

impl GraphQl {
    fn start(config: &Config<'_>) -> Result<GraphQl, ConfigError> {
        let settings = config.parse::<Settings>().map_err(ConfigError::Parse)?;
        Ok(GraphQl { settings })
    }
}

impl AsyncPlugin for GraphQl {
    const PHASES: Phases = Phases::HANDLE;

    fn init(config: Config<'_>) -> Result<Self, String> {
        GraphQl::start(&config).map_err(|e| e.to_string())
    }

    async fn handle(&self, req: &mut Request<'_>) -> Response {
        let format = match transport::negotiate(req.header("accept")) {
            Ok(format) => format,
            Err(refusal) => return refusal.response(Format::Json),
        };
        let _ = &self.settings;
        match transport::parse(req) {
            Ok(_) => Response::text(501, "execution is not wired yet"),
            Err(refusal) => refusal.response(format),
        }
    }
}

covet_plugin_api::export_plugin!(async GraphQl);
