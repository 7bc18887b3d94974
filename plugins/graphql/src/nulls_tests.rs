//! Unit tests of settling field errors (null placement and propagation).

use async_graphql::{Pos, Response, ServerError, Value};
use async_graphql_parser::types::{TypeKind, TypeSystemDefinition};
use serde_json::json;

use super::*;

const SDL: &str = "type Query { a: A b: B! list: [C!] }
                   type A { x: String! y: String }
                   type B { z: String! }
                   type C { w: Int! }";

fn nullability() -> Nullability {
    let doc = async_graphql_parser::parse_schema(SDL).unwrap();
    let mut n = Nullability::new("Query", None);
    for def in &doc.definitions {
        if let TypeSystemDefinition::Type(t) = def
            && let TypeKind::Object(o) = &t.node.kind
        {
            for f in &o.fields {
                n.add(t.node.name.node.as_str(), f.node.name.node.as_str(), f.node.ty.node.clone());
            }
        }
    }
    n
}

fn error(message: &str, path: serde_json::Value) -> ServerError {
    let mut e = ServerError::new(message, Some(Pos { line: 1, column: 1 }));
    e.path = serde_json::from_value(path).unwrap();
    e
}

fn settle(query: &str, data: serde_json::Value, errors: Vec<ServerError>) -> (serde_json::Value, usize) {
    let mut response = Response::new(Value::from_json(data).unwrap());
    response.errors = errors;
    nullability().settle(&mut response, query, None);
    (response.data.into_json().unwrap(), response.errors.len())
}

#[test]
fn a_failed_nullable_field_is_null_in_place() {
    let (data, n) = settle("{ a { x y } }", json!({ "a": { "x": "1" } }), vec![error("boom", json!(["a", "y"]))]);
    assert_eq!(data, json!({ "a": { "x": "1", "y": null } }));
    assert_eq!(n, 1);
}

#[test]
fn a_failed_non_null_field_nulls_its_nearest_nullable_parent() {
    let q = "{ al: a { x y } list { w } }";
    let data = json!({ "al": { "y": "2" }, "list": [{ "w": 1 }, {}] });
    let errors = vec![
        error("boom", json!(["al", "x"])),
        error(NON_NULL_MISSING, json!(["al", "x"])),
        error("bad item", json!(["list", 1, "w"])),
    ];
    let (data, n) = settle(q, data, errors);
    assert_eq!(data, json!({ "al": null, "list": null }), "through the alias; [C!] items are non-null");
    assert_eq!(n, 2, "the executor's duplicate non-null error is dropped");
}

#[test]
fn a_failure_under_a_non_null_root_field_nulls_data() {
    let (data, _) = settle("{ b { z } a { y } }", json!({ "b": {}, "a": { "y": "1" } }), vec![error("boom", json!(["b", "z"]))]);
    assert_eq!(data, json!(null));
}

#[test]
fn fragments_are_followed_and_unknown_paths_only_get_their_null() {
    let q = "query { ...F } fragment F on Query { a { ... on A { x } } }";
    let (data, _) = settle(q, json!({ "a": {} }), vec![error("boom", json!(["a", "x"]))]);
    assert_eq!(data, json!({ "a": null }));
    let (data, _) = settle("{ a { y } }", json!({ "a": {} }), vec![error("boom", json!(["a", "nope"]))]);
    assert_eq!(data, json!({ "a": { "nope": null } }));
}
