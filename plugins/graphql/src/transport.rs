//! GraphQL over HTTP (the GraphQL-over-HTTP draft, audited by the
//! `graphql-http` package's server audits): reading a GraphQL request from a
//! GET query string or a POST body, choosing the response media type from
//! `Accept`, and the status codes each outcome gets.
//!
//! | outcome | `application/graphql-response+json` | `application/json` |
//! |---|---|---|
//! | malformed HTTP request (bad JSON, no `query`, wrong parameter types) | 400 | 400 |
//! | document parse, validation or variable coercion failure (no `data`) | 400 | 200 |
//! | executed (`data` present, even with field errors) | 200 | 200 |
//!
//! Other refusals: a method other than GET/POST is 405 (`allow: GET, POST`),
//! a mutation over GET is 405, a POST without a JSON (or
//! `application/graphql`) content type is 415, an `Accept` that allows
//! neither JSON type is 406. The traffic-control filter (`filter.rs`) reads
//! the same [`GraphQlRequest`].

use covet_plugin_api::{Request, Response};
use serde_json::{Map, Value};

/// `application/graphql-response+json`, the GraphQL-over-HTTP media type.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// `application/json`, the legacy media type every client accepts.
pub const APPLICATION_JSON: &str = "application/json";

/// One GraphQL request as it came over HTTP (before any execution).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphQlRequest {
    /// The document text; `None` when the client sent none (a persisted-query
    /// hash may fill it in before execution).
    pub query: Option<String>,
    /// `operationName`.
    pub operation_name: Option<String>,
    /// `variables` (an empty map when absent or null).
    pub variables: Map<String, Value>,
    /// `extensions` (an empty map when absent or null).
    pub extensions: Map<String, Value>,
    /// Whether it came as a GET (only queries may run then).
    pub is_get: bool,
}

/// The media type of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/graphql-response+json`: request errors are 4xx.
    GraphQlResponse,
    /// `application/json`: request errors are 200 with `errors`.
    Json,
}

impl Format {
    /// The content type written on the answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::GraphQlResponse => "application/graphql-response+json; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
        }
    }

    /// The status of an answer without `data` (a request error): 400 or 200.
    pub fn request_error_status(self) -> u16 {
        match self {
            Format::GraphQlResponse => 400,
            Format::Json => 200,
        }
    }
}

/// Why a request is not a GraphQL request the server will run.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The HTTP status (400, 405, 406, 415).
    pub status: u16,
    /// What was wrong, for the `errors` entry.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into() }
    }

    /// The answer: `{"errors":[{"message":…}]}` (no `data`) with the status,
    /// plus `allow` for a 405.
    pub fn response(&self, format: Format) -> Response {
        let body = serde_json::json!({ "errors": [{ "message": self.message }] });
        let mut response = Response::new(self.status)
            .with_header("content-type", format.content_type())
            .with_body(body.to_string());
        if self.status == 405 {
            response = response.with_header("allow", "GET, POST");
        }
        response
    }
}

/// The answer's media type from `Accept`: the first listed of the two JSON
/// types (or `*/*`, `application/*`: JSON); a missing `Accept` is JSON. An
/// `Accept` naming neither is refused with 406.
pub fn negotiate(accept: Option<&str>) -> Result<Format, Refusal> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Ok(Format::Json) };
    // The usual values, whole.
    if accept.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) {
        return Ok(Format::GraphQlResponse);
    }
    if accept.eq_ignore_ascii_case(APPLICATION_JSON) {
        return Ok(Format::Json);
    }
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| matches!(p.trim().split_once('='), Some((k, v)) if k.trim() == "q" && v.trim().parse::<f32>() == Ok(0.0)));
        if refused {
            continue;
        }
        // Compared without case, without a lower-cased copy.
        if media.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON) {
            return Ok(Format::GraphQlResponse);
        }
        if [APPLICATION_JSON, "*/*", "application/*"].iter().any(|json| media.eq_ignore_ascii_case(json)) {
            return Ok(Format::Json);
        }
    }
    Err(Refusal::new(406, format!("accept '{accept}' allows neither {GRAPHQL_RESPONSE_JSON} nor {APPLICATION_JSON}")))
}

/// Whether `accept` prefers an HTML page (a browser opening the endpoint, for GraphiQL).
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.split(',').next().is_some_and(|first| first.trim().starts_with("text/html")))
}

/// Reads the GraphQL request of `req` (GET query string or POST body; the
/// body must be buffered, `BodyMode::Buffered`).
pub fn parse(req: &Request<'_>) -> Result<GraphQlRequest, Refusal> {
    match req.method() {
        "GET" | "HEAD" => from_query(req.query().unwrap_or("")),
        "POST" => from_post(req.header("content-type"), req.body()),
        other => Err(Refusal::new(405, format!("method {other} is not allowed: use GET or POST"))),
    }
}

/// A GET: `query`, `operationName`, `variables` and `extensions` (JSON text) in the query string.
pub fn from_query(query_string: &str) -> Result<GraphQlRequest, Refusal> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query_string).map_err(|e| Refusal::new(400, format!("bad query string: {e}")))?;
    let mut out = GraphQlRequest { is_get: true, ..GraphQlRequest::default() };
    for (key, value) in pairs {
        match key.as_str() {
            "query" => out.query = Some(value),
            "operationName" => out.operation_name = Some(value).filter(|v| !v.is_empty()),
            "variables" => out.variables = json_map("variables", &value)?,
            "extensions" => out.extensions = json_map("extensions", &value)?,
            _ => {}
        }
    }
    Ok(out)
}

/// A POST: a JSON body (`application/json`), or the document itself (`application/graphql`).
pub fn from_post(content_type: Option<&str>, body: &[u8]) -> Result<GraphQlRequest, Refusal> {
    let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
    match media {
        Some(m) if m.eq_ignore_ascii_case(APPLICATION_JSON) => from_json_body(body),
        Some(m) if m.eq_ignore_ascii_case("application/graphql") => {
            let text = std::str::from_utf8(body).map_err(|_| Refusal::new(400, "the body is not UTF-8"))?;
            Ok(GraphQlRequest { query: Some(text.to_owned()), ..GraphQlRequest::default() })
        }
        Some(other) => Err(Refusal::new(415, format!("content-type '{}' is not supported: use {APPLICATION_JSON}", other.to_ascii_lowercase()))),
        None => Err(Refusal::new(415, format!("a POST needs content-type: {APPLICATION_JSON}"))),
    }
}

/// The JSON body `{"query", "operationName", "variables", "extensions"}` with the types the spec requires.
pub fn from_json_body(body: &[u8]) -> Result<GraphQlRequest, Refusal> {
    if body.is_empty() {
        return Err(Refusal::new(400, "the POST has no body"));
    }
    // The usual body reads straight into its four members; anything else
    // (not an object, a member of the wrong type) is read again as a `Value`
    // for the precise refusal.
    // (A struct also reads from a JSON array: only an object is let in.)
    if body.trim_ascii_start().first() == Some(&b'{')
        && let Ok(Body { query: Some(query), operation_name, variables, extensions }) = serde_json::from_slice::<Body>(body)
    {
        let (variables, extensions) = (variables.unwrap_or_default(), extensions.unwrap_or_default());
        return Ok(GraphQlRequest { query: Some(query), operation_name, variables, extensions, is_get: false });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| Refusal::new(400, format!("the body is not JSON: {e}")))?;
    let Value::Object(mut object) = value else { return Err(Refusal::new(400, "the body must be a JSON object")) };
    let query = match object.remove("query") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(Refusal::new(400, "'query' must be a string")),
    };
    let operation_name = match object.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(Refusal::new(400, "'operationName' must be a string")),
    };
    let variables = map_param("variables", object.remove("variables"))?;
    let extensions = map_param("extensions", object.remove("extensions"))?;
    Ok(GraphQlRequest { query, operation_name, variables, extensions, is_get: false })
}

/// A JSON body of the usual shape (other members are ignored; `null` is absent).
#[derive(serde::Deserialize)]
struct Body {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
}

/// A parameter that must be a map or null.
fn map_param(name: &str, value: Option<Value>) -> Result<Map<String, Value>, Refusal> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(Refusal::new(400, format!("'{name}' must be a map"))),
    }
}

/// A GET parameter holding JSON text of a map.
fn json_map(name: &str, text: &str) -> Result<Map<String, Value>, Refusal> {
    if text.is_empty() {
        return Ok(Map::new());
    }
    let value = serde_json::from_str(text).map_err(|e| Refusal::new(400, format!("'{name}' is not JSON: {e}")))?;
    map_param(name, Some(value))
}

impl GraphQlRequest {
    /// The document, or the 400 for a request without one.
    pub fn require_query(&self) -> Result<&str, Refusal> {
        self.query.as_deref().ok_or_else(|| Refusal::new(400, "the request has no 'query'"))
    }
}

/// The operation a GET would run is a query (parsing the document once; a
/// document that does not parse is left to execution, which reports it).
/// A mutation or subscription over GET is refused with 405.
pub fn check_get_operation(query: &str, operation_name: Option<&str>) -> Result<(), Refusal> {
    match async_graphql_parser::parse_query(query) {
        Ok(doc) => check_get_document(&doc, operation_name),
        Err(_) => Ok(()),
    }
}

/// [`check_get_operation`] on a document already parsed.
pub fn check_get_document(
    doc: &async_graphql_parser::types::ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<(), Refusal> {
    use async_graphql_parser::types::{DocumentOperations, OperationType};
    let ty = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
        _ => None,
    };
    match ty {
        Some(OperationType::Mutation) | Some(OperationType::Subscription) => {
            Err(Refusal::new(405, "only queries may be sent with GET: use POST for mutations"))
        }
        _ => Ok(()),
    }
}

/// The HTTP answer of an executed request: a request error (parse,
/// validation, variable coercion: no `data`, no error with a `path`) is
/// `{"errors"}` with [`Format::request_error_status`], anything else `200`
/// with `data` (and `errors` for failed fields).
pub fn answer(format: Format, response: async_graphql::Response) -> Response {
    let request_error = matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let (status, body) = if request_error {
        (format.request_error_status(), serde_json::to_vec(&serde_json::json!({ "errors": response.errors })))
    } else {
        (200, response_json(&response))
    };
    let body = body.unwrap_or_else(|e| format!(r#"{{"errors":[{{"message":"encoding the answer: {e}"}}]}}"#).into_bytes());
    Response::new(status).with_header("content-type", format.content_type()).with_body(body)
}

/// `response` as serde writes it (`data`, then `extensions` and `errors`
/// when not empty), with `data` written here: serde's generic path through
/// async-graphql's value costs more than the answer's own bytes.
fn response_json(response: &async_graphql::Response) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"data\":");
    write_json(&mut out, &response.data)?;
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde_json::to_writer(&mut out, &response.extensions)?;
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        serde_json::to_writer(&mut out, &response.errors)?;
    }
    out.push(b'}');
    Ok(out)
}

/// A GraphQL value as JSON, as its `Serialize` writes it.
fn write_json(out: &mut Vec<u8>, value: &async_graphql::Value) -> serde_json::Result<()> {
    use async_graphql::Value as V;
    match value {
        V::Null => out.extend_from_slice(b"null"),
        V::Boolean(true) => out.extend_from_slice(b"true"),
        V::Boolean(false) => out.extend_from_slice(b"false"),
        V::String(s) => serde_json::to_writer(&mut *out, s.as_str())?,
        V::Enum(name) => serde_json::to_writer(&mut *out, name.as_str())?,
        V::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item)?;
            }
            out.push(b']');
        }
        V::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.as_str())?;
                out.push(b':');
                write_json(out, item)?;
            }
            out.push(b'}');
        }
        V::Number(_) | V::Binary(_) => serde_json::to_writer(&mut *out, value)?,
    }
    Ok(())
}

#[cfg(test)]
#[path = "transport_tests.rs"]
mod tests;
