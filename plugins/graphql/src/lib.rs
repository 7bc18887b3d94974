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
//!
//! ```yaml
//! plugins:
//!   api:
//!     kind: native
//!     path: target/release/libcovet_graphql.so
//!     capabilities: { upstreams: [users], state: [graphql] }
//!     config:
//!       schema: |
//!         type Query { user(id: ID!): User @http(upstream: "users", path: "/users/{args.id}", cache_ttl: "30s") }
//!         type User { id: ID! name: String }
//! ```
#![deny(missing_docs)]

mod call;
mod config;
mod error;
mod exchange;
pub mod filter;
mod graphiql;
mod inflight;
mod nulls;
mod order;
pub mod limits;
pub mod persisted;
mod plan;
mod resolve;
mod sdl;
mod template;
mod validated;
pub mod transport;

use std::sync::Arc;

use async_graphql::{Variables, dynamic::Schema};
use covet_plugin_api::{AsyncPlugin, Config, Flow, Phases, Request, Response};

pub use crate::error::ConfigError;
use crate::{
    call::Caller,
    config::{Settings, duration},
    exchange::{Captures, Exchange},
    filter::Filter,
    limits::DocumentCache,
    nulls::Nullability,
    transport::Format,
    validated::Validated,
};

/// The graphql plugin: one instance per manifest entry. A handler when the
/// config has a schema; a traffic-control filter (`on_request`) when it has
/// `limits:`; both on one route when it has both.
pub struct GraphQl {
    api: Option<Api>,
    filter: Option<Filter>,
}

/// The handler's half: the schema and what its resolvers share.
struct Api {
    schema: Schema,
    captures: Captures,
    caller: Arc<Caller>,
    graphiql: bool,
    nulls: Nullability,
    /// Documents the schema has validated (`validated.rs`).
    validated: Validated,
}

impl GraphQl {
    /// Reads the config and the SDL, checks every field's resolution and builds the schema.
    fn start(config: &Config<'_>) -> Result<GraphQl, ConfigError> {
        let settings = config.parse::<Settings>().map_err(ConfigError::Parse)?;
        let filter = match &settings.limits {
            Some(block) => Some(Filter::new(block, config, settings.introspection).map_err(ConfigError::Parse)?),
            None => None,
        };
        let sdl = match (&settings.schema, &settings.schema_file) {
            (Some(sdl), None) => sdl.clone(),
            (None, Some(file)) => {
                let path = config.resolve(file);
                std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::SchemaFile { path: path.display().to_string(), reason: e.to_string() })?
            }
            (None, None) if filter.is_some() => return Ok(GraphQl { api: None, filter }),
            _ => return Err(ConfigError::SchemaSource),
        };
        let host = config.host();
        let options = sdl::Options {
            host: &host,
            timeout: duration("timeout", &settings.timeout)?,
            introspection: settings.introspection,
        };
        let built = sdl::build(&sdl, &settings.resolvers, &options)?;
        let cache = built.caches.then_some(settings.cache_namespace.as_str());
        let caller = Arc::new(Caller::new(host.clone(), built.upstreams, cache));
        let api =
            Api {
                schema: built.schema,
                captures: built.captures,
                caller,
                graphiql: settings.graphiql,
                nulls: built.nulls,
                validated: Validated::default(),
            };
        Ok(GraphQl { api: Some(api), filter })
    }
}

impl Api {
    /// A browser opening the endpoint, when GraphiQL is on.
    fn wants_graphiql(&self, req: &Request<'_>) -> bool {
        self.graphiql
            && req.method() == "GET"
            && transport::wants_html(req.header("accept"))
            && !req.query().unwrap_or("").split('&').any(|p| p.starts_with("query="))
    }
}

impl AsyncPlugin for GraphQl {
    const PHASES: Phases = Phases::ON_REQUEST.union(Phases::HANDLE);

    fn init(config: Config<'_>) -> Result<Self, String> {
        GraphQl::start(&config).map_err(|e| e.to_string())
    }

    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        match &self.filter {
            Some(filter) => filter.on_request(req).await,
            None => Flow::Continue,
        }
    }

    async fn handle(&self, req: &mut Request<'_>) -> Response {
        let Some(api) = &self.api else {
            return Response::text(500, "this graphql instance has no schema: it is a filter (limits:) only");
        };
        // The limits of this instance, unless its filter phase already ran on this route.
        if let Some(filter) = &self.filter
            && req.metadata(filter::META_OPERATION_TYPE).is_none()
            && let Flow::Respond(refused) = filter.on_request(req).await
        {
            return refused;
        }
        api.serve(req).await
    }
}

impl Api {
    /// Runs the request's GraphQL operation.
    async fn serve(&self, req: &mut Request<'_>) -> Response {
        if self.wants_graphiql(req) {
            return graphiql::page(req.path());
        }
        let format = match transport::negotiate(req.header("accept")) {
            Ok(format) => format,
            Err(refusal) => return refusal.response(Format::Json),
        };
        let gql = match transport::parse(req) {
            Ok(gql) => gql,
            Err(refusal) => return refusal.response(format),
        };
        // A filter on the route may have found the document by a persisted-query hash.
        let persisted = filter::parsed_document(req);
        let query = match persisted.as_deref().map(|d| &*d.query).map_or_else(|| gql.require_query(), Ok) {
            Ok(query) => query,
            Err(refusal) => return refusal.response(format),
        };
        // Parsed once per distinct document in the process (the filter's cache), or by execution.
        let keyed = match &persisted {
            Some(doc) => Some((DocumentCache::global().key(&doc.query), Arc::clone(doc))),
            None => DocumentCache::global().get_or_parse(query).ok(),
        };
        let (key, document) = match keyed {
            Some((key, doc)) => (key, Some(doc)),
            None => (0, None),
        };
        if gql.is_get {
            let checked = match &document {
                Some(doc) => transport::check_get_document(&doc.parsed, gql.operation_name.as_deref()),
                None => transport::check_get_operation(query, gql.operation_name.as_deref()),
            };
            if let Err(refusal) = checked {
                return refusal.response(format);
            }
        }
        let prevalidated = document.as_ref().is_some_and(|doc| self.validated.contains(key, doc));
        let exchange = Exchange::new(req, &self.captures, self.caller.clone()).with_prevalidated(prevalidated);
        // With a parsed document async-graphql does not read the text (no copy of it then).
        let text = if document.is_some() { "" } else { query };
        let mut request = async_graphql::Request::new(text).data(exchange);
        if !gql.variables.is_empty() {
            request = request.variables(Variables::from_json(serde_json::Value::Object(gql.variables.clone())));
        }
        if let Some(name) = &gql.operation_name {
            request = request.operation_name(name);
        }
        if let Some(doc) = &document {
            request.set_parsed_query(doc.parsed.clone());
        }
        let mut response = self.schema.execute(request).await;
        if let Some(doc) = &document
            && !prevalidated
            && !response.errors.iter().any(|e| e.path.is_empty())
        {
            self.validated.insert(key, doc);
        }
        if !response.errors.is_empty() {
            self.nulls.settle(&mut response, query, gql.operation_name.as_deref());
        }
        if matches!(response.data, async_graphql::Value::Object(_)) {
            let parsed;
            let doc = match &document {
                Some(doc) => Some(&doc.parsed),
                None => {
                    parsed = async_graphql_parser::parse_query(query).ok();
                    parsed.as_ref()
                }
            };
            if let Some(doc) = doc {
                order::reorder(&mut response.data, &self.nulls, doc, gql.operation_name.as_deref(), &gql.variables);
            }
        }
        transport::answer(format, response)
    }
}

/// The plugin's own allocator (mimalloc through its plain entry points: covet-alloc).
#[global_allocator]
static GLOBAL: covet_alloc::Allocator = covet_alloc::Allocator;

covet_plugin_api::export_plugin!(async GraphQl);
