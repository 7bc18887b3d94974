//! The traffic-control filter (`on_request`): in front of covet's GraphQL
//! handler or of the proxy to any GraphQL upstream, it reads the GraphQL
//! request (the handler's [`transport`](crate::transport)), resolves a
//! persisted query, parses the document once (process-wide cache), selects
//! and analyses the operation, and refuses it — with a GraphQL error
//! naming the limit and the value — when it is over a limit, asks for
//! introspection that is off, or is a mutation over GET. Otherwise it sets
//! metadata for later filters and the handler and lets it through:
//!
//! | metadata | value |
//! |---|---|
//! | `graphql.operation_name` | the operation's name (empty when anonymous) |
//! | `graphql.operation_type` | `query`, `mutation` or `subscription` |
//! | `graphql.root_fields` | the distinct root field names, comma-separated (`user,search`) |
//! | `graphql.cost` | the operation's cost |
//! | `graphql.document` | the key of the parsed document in the process's cache ([`parsed_document`]) |
//! | `graphql.persisted` | `hit` (APQ), `listed` (allowlist document), `registered` (APQ) — absent otherwise |
//!
//! A query found by its hash alone is written into the body of a POST
//! (`{"query",…}`), so an upstream that knows nothing of persisted queries
//! runs it; a GET cannot be rewritten, so behind the proxy a hash-only GET
//! needs an upstream that speaks APQ itself (covet's handler takes the
//! document from [`parsed_document`]).

use std::{path::Path, sync::Arc};

use covet_plugin_api::{BodyStream, Config, Flow, Request, Response, host::Host};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    limits::{Analysis, Document, DocumentCache, Fetched, Limits, LimitsConfig, Refusal, RefusalKind, analyze, type_name},
    persisted::{AllowlistConfig, ApqSetting, Outcome, Persisted},
    transport::{self, Format, GraphQlRequest},
};

/// Metadata: the operation's name (empty when anonymous).
pub const META_OPERATION_NAME: &str = "graphql.operation_name";
/// Metadata: `query`, `mutation` or `subscription`.
pub const META_OPERATION_TYPE: &str = "graphql.operation_type";
/// Metadata: the root field names, comma-separated.
pub const META_ROOT_FIELDS: &str = "graphql.root_fields";
/// Metadata: the operation's cost.
pub const META_COST: &str = "graphql.cost";
/// Metadata: the parsed document's key in the process's cache.
pub const META_DOCUMENT: &str = "graphql.document";
/// Metadata: how a persisted query was found (`hit`, `listed`, `registered`).
pub const META_PERSISTED: &str = "graphql.persisted";

/// The traffic-control block of the config (the `limits:` key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The deepest field nesting allowed (a root field is depth 1).
    pub max_depth: Option<u64>,
    /// The most aliased fields allowed.
    pub max_aliases: Option<u64>,
    /// The most root field selections allowed.
    pub max_root_fields: Option<u64>,
    /// The highest cost allowed.
    pub max_cost: Option<u64>,
    /// Per-field costs: `Type.field`, `field`, `default`.
    #[serde(default)]
    pub costs: std::collections::HashMap<String, u64>,
    /// Arguments whose integer value multiplies a field's selection.
    #[serde(default)]
    pub list_arguments: Vec<String>,
    /// Whether `__schema` / `__type` may be asked (default: the handler's `introspection`).
    pub introspection: Option<bool>,
    /// Automatic persisted queries.
    pub apq: Option<ApqSetting>,
    /// Only these operations run.
    pub allowlist: Option<AllowlistConfig>,
}

/// One filter instance: the limits, the introspection switch, the persisted-query policy.
pub struct Filter {
    limits: Limits,
    introspection: bool,
    persisted: Persisted,
}

/// What the checks found for a request that may go on.
#[derive(Debug)]
pub struct Passed {
    /// The document (shared with the cache).
    pub document: Arc<Document>,
    /// Its cache key.
    pub key: u64,
    /// Whether the cache holds it (so the handler finds it by key).
    pub held: bool,
    /// How a persisted query was found.
    pub outcome: Outcome,
    /// `graphql.operation_name`, `…_type`, `…root_fields`, `…cost`.
    pub name: String,
    /// `query`, `mutation`, `subscription`.
    pub operation_type: &'static str,
    /// Comma-separated root fields.
    pub root_fields: String,
    /// The cost.
    pub cost: u64,
}

impl Filter {
    /// The filter of `block` (the config's `limits:` value); `introspection`
    /// is the default of its switch (the handler's own setting).
    pub fn new(block: &Value, config: &Config<'_>, introspection: bool) -> Result<Filter, String> {
        let settings: FilterConfig =
            serde_json::from_value(block.clone()).map_err(|e| format!("limits: {e}"))?;
        Filter::from_settings(&settings, &config.host(), config.base_dir(), introspection)
    }

    /// The filter of already-read settings (`base` resolves `allowlist.file`).
    pub fn from_settings(settings: &FilterConfig, host: &Host, base: &Path, introspection: bool) -> Result<Filter, String> {
        let limits = Limits::new(&LimitsConfig {
            max_depth: settings.max_depth,
            max_aliases: settings.max_aliases,
            max_root_fields: settings.max_root_fields,
            max_cost: settings.max_cost,
            costs: settings.costs.clone(),
            list_arguments: settings.list_arguments.clone(),
        })?;
        let persisted = Persisted::new(settings.apq.as_ref(), settings.allowlist.as_ref(), host, base)
            .map_err(|e| format!("limits.{e}"))?;
        Ok(Filter { limits, introspection: settings.introspection.unwrap_or(introspection), persisted })
    }

    /// The filter's phase: checks the request, sets metadata, or answers the refusal.
    pub async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        // The filter's own answers follow the client's Accept; one it cannot
        // read is the handler's or the upstream's to refuse (406).
        let format = transport::negotiate(req.header("accept")).unwrap_or(Format::Json);
        let gql = match transport::parse(req) {
            Ok(gql) => gql,
            Err(refusal) => return Flow::Respond(refusal.response(format)),
        };
        if is_page_request(req, &gql) {
            return Flow::Continue;
        }
        match self.check(&gql).await {
            Ok(passed) => {
                self.pass(req, &gql, &passed).await;
                Flow::Continue
            }
            Err(refusal) => Flow::Respond(respond(&refusal, format)),
        }
    }

    /// Every check on one GraphQL request, without touching the HTTP request.
    pub async fn check(&self, gql: &GraphQlRequest) -> Result<Passed, Refusal> {
        let resolved = self.persisted.resolve(gql.query.as_deref(), &gql.extensions).await?;
        let Fetched { key, document, held } = DocumentCache::global().fetch(&resolved.query)?;
        let variables = &gql.variables;
        let analysis = analyze(&document.parsed, gql.operation_name.as_deref(), &self.limits.model, &|name| {
            variables.get(name).and_then(Value::as_i64)
        })?;
        self.admit(gql, &analysis)?;
        let passed = Passed {
            name: analysis.operation_name.unwrap_or("").to_owned(),
            operation_type: type_name(analysis.operation_type),
            root_fields: analysis.root_fields.join(","),
            cost: analysis.cost,
            outcome: resolved.outcome,
            key,
            held,
            document: Arc::clone(&document),
        };
        Ok(passed)
    }

    /// GET only for queries, introspection when on, then the limits.
    fn admit(&self, gql: &GraphQlRequest, analysis: &Analysis<'_>) -> Result<(), Refusal> {
        if gql.is_get && analysis.operation_type != async_graphql_parser::types::OperationType::Query {
            let mut refusal = Refusal::new(
                "METHOD_NOT_ALLOWED",
                format!("a {} cannot be sent with GET: use POST", type_name(analysis.operation_type)),
            );
            refusal.kind = RefusalKind::MethodNotAllowed;
            return Err(refusal);
        }
        if !self.introspection && analysis.introspection {
            return Err(Refusal::new("INTROSPECTION_DISABLED", "introspection (__schema, __type) is disabled here"));
        }
        self.limits.check(analysis)
    }

    /// Metadata, APQ registration, and the body of a POST found by its hash.
    async fn pass(&self, req: &mut Request<'_>, gql: &GraphQlRequest, passed: &Passed) {
        req.set_metadata(META_OPERATION_NAME, &passed.name);
        req.set_metadata(META_OPERATION_TYPE, passed.operation_type);
        req.set_metadata(META_ROOT_FIELDS, &passed.root_fields);
        req.set_metadata(META_COST, &passed.cost.to_string());
        if passed.held {
            req.set_metadata(META_DOCUMENT, &DocumentCache::key_text(passed.key));
        }
        match &passed.outcome {
            Outcome::Plain => {}
            Outcome::Register(hash) => {
                self.persisted.register(hash, &passed.document.query).await;
                req.set_metadata(META_PERSISTED, "registered");
            }
            Outcome::Hit | Outcome::Listed => {
                let how = if passed.outcome == Outcome::Hit { "hit" } else { "listed" };
                req.set_metadata(META_PERSISTED, how);
                if !gql.is_get {
                    rewrite_body(req, gql, &passed.document.query);
                }
            }
        }
    }
}


/// A browser opening the endpoint (GET preferring HTML, no operation): no
/// GraphQL to check, the handler's GraphiQL page (or the upstream's) to serve.
fn is_page_request(req: &Request<'_>, gql: &GraphQlRequest) -> bool {
    gql.is_get && gql.query.is_none() && gql.extensions.is_empty() && transport::wants_html(req.header("accept"))
}

/// A POST that named its query by hash gets the query written into its body.
fn rewrite_body(req: &mut Request<'_>, gql: &GraphQlRequest, query: &str) {
    let mut body = Map::new();
    body.insert("query".into(), query.into());
    if let Some(name) = &gql.operation_name {
        body.insert("operationName".into(), name.as_str().into());
    }
    body.insert("variables".into(), Value::Object(gql.variables.clone()));
    body.insert("extensions".into(), Value::Object(gql.extensions.clone()));
    let bytes = Value::Object(body).to_string().into_bytes();
    let len = bytes.len().to_string();
    req.set_body(BodyStream::from_bytes(bytes));
    // Both are valid header values: set_header cannot refuse them.
    let _ = req.set_header("content-length", &len);
    let _ = req.set_header("content-type", "application/json");
}

/// The refusal as a GraphQL-over-HTTP answer: a request error (400 with
/// `application/graphql-response+json`, 200 with `application/json`), or
/// 405 with `allow: POST` for a mutation over GET.
pub fn respond(refusal: &Refusal, format: Format) -> Response {
    let status = match refusal.kind {
        RefusalKind::Request => format.request_error_status(),
        RefusalKind::Malformed => 400,
        RefusalKind::MethodNotAllowed => 405,
    };
    let mut response =
        Response::new(status).with_header("content-type", format.content_type()).with_body(refusal.body().to_string());
    if refusal.kind == RefusalKind::MethodNotAllowed {
        response = response.with_header("allow", "POST");
    }
    response
}

/// The document the filter parsed for this request (metadata
/// `graphql.document`), for covet's handler on the same route: its
/// `query` is the text to run (also for a persisted query sent by hash),
/// its `parsed` document saves parsing again. `None` when no filter ran, or
/// the document has left the cache since (then parse as usual).
pub fn parsed_document(req: &Request<'_>) -> Option<Arc<Document>> {
    DocumentCache::global().get_text(req.metadata(META_DOCUMENT)?)
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
