//! [`Refusal`]: why the traffic-control filter answers a GraphQL operation
//! itself instead of passing it on — a GraphQL error with a stable `code`
//! and the facts behind it (the limit, its maximum, the operation's value)
//! in `extensions`.

use serde_json::{Map, Value, json};

/// The HTTP side of a refusal (the GraphQL-over-HTTP transport picks the
/// status from this and the client's `accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The request is not acceptable GraphQL (parse, validation, limits,
    /// persisted queries): a request error, no `data`.
    Request,
    /// Not a GraphQL request at all (no query, no hash): 400 whatever the
    /// media type, as the transport answers a malformed request.
    Malformed,
    /// A mutation sent with `GET`: 405 with `allow: POST`.
    MethodNotAllowed,
}

/// A GraphQL error the filter answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// How the transport answers it.
    pub kind: RefusalKind,
    /// `extensions.code`, e.g. `DEPTH_LIMIT_EXCEEDED`.
    pub code: &'static str,
    /// The error's `message`.
    pub message: String,
    /// More `extensions` entries, e.g. `limit`, `max`, `value`.
    pub details: Vec<(&'static str, Value)>,
}

impl Refusal {
    /// A request error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { kind: RefusalKind::Request, code, message: message.into(), details: Vec::new() }
    }

    /// Adds `extensions.<key>`.
    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Refusal {
        self.details.push((key, value.into()));
        self
    }

    /// The error's `extensions` object: `code` first, then the details.
    pub fn extensions(&self) -> Map<String, Value> {
        let mut map = Map::with_capacity(1 + self.details.len());
        map.insert("code".into(), self.code.into());
        for (key, value) in &self.details {
            map.insert((*key).into(), value.clone());
        }
        map
    }

    /// The whole GraphQL response body: `{"errors":[{"message":…,"extensions":{…}}]}`.
    pub fn body(&self) -> Value {
        json!({ "errors": [{ "message": self.message, "extensions": self.extensions() }] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_code_and_the_details() {
        let refusal = Refusal::new("DEPTH_LIMIT_EXCEEDED", "too deep").with("limit", "max_depth").with("value", 12);
        assert_eq!(
            refusal.body(),
            json!({"errors": [{"message": "too deep", "extensions": {"code": "DEPTH_LIMIT_EXCEEDED", "limit": "max_depth", "value": 12}}]})
        );
    }
}
