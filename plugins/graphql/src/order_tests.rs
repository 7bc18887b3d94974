//! Unit tests of putting `data` in the order of the operation.

use async_graphql::Value;
use serde_json::json;

use super::*;

const SDL: &str = "type Query { a: A b: B list: [A] node: Node }
                   interface Node { id: ID }
                   type A implements Node { id: ID x: String y: String a: A }
                   type B implements Node { id: ID z: String w: String }";

fn types() -> Nullability {
    use async_graphql_parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql_parser::parse_schema(SDL).unwrap();
    let mut n = Nullability::new("Query", None);
    for def in &doc.definitions {
        if let TypeSystemDefinition::Type(t) = def
            && let TypeKind::Object(o) = &t.node.kind
        {
            for i in &o.implements {
                n.add_possible(i.node.as_str(), t.node.name.node.as_str());
            }
            for f in &o.fields {
                n.add(
                    t.node.name.node.as_str(),
                    f.node.name.node.as_str(),
                    f.node.ty.node.clone(),
                );
            }
        }
    }
    n
}

/// Reorders `data` for `query` and returns its JSON text (keys in map order).
fn ordered(query: &str, data: serde_json::Value, variables: serde_json::Value) -> String {
    let mut value = Value::from_json(data).unwrap();
    let doc = async_graphql_parser::parse_query(query).unwrap();
    let Some(vars) = variables.as_object().cloned() else {
        panic!("variables are an object")
    };
    reorder(&mut value, &types(), &doc, None, &vars);
    serde_json::to_string(&value).unwrap()
}

#[test]
fn keys_follow_the_document_with_aliases_fragments_and_merges() {
    let query = "{ b { w z } first: a { ...F y } a { ... on A { x } } list { y x } } fragment F on A { x id a { y x } }";
    let data = json!({
        "list": [{"x": "1", "y": "2"}, null],
        "a": {"x": "3"},
        "b": {"z": "4", "w": "5"},
        "first": {"y": "6", "a": {"x": "7", "y": "8"}, "id": "9", "x": "10"},
    });
    // serde_json without preserve_order sorts its own maps, so build the text from async-graphql's Value.
    assert_eq!(
        ordered(query, data, json!({})),
        r#"{"b":{"w":"5","z":"4"},"first":{"x":"10","id":"9","a":{"y":"8","x":"7"},"y":"6"},"a":{"x":"3"},"list":[{"y":"2","x":"1"},null]}"#
    );
}

#[test]
fn a_repeated_key_stays_at_its_first_position_with_merged_selections() {
    let query = "{ a { y } b { z } a { x y } }";
    let data = json!({"b": {"z": "1"}, "a": {"x": "2", "y": "3"}});
    assert_eq!(
        ordered(query, data, json!({})),
        r#"{"a":{"y":"3","x":"2"},"b":{"z":"1"}}"#
    );
}

#[test]
fn skip_and_include_decide_what_is_collected() {
    let query =
        "query($s: Boolean = true, $i: Boolean!) { a { x @skip(if: $s) y x @include(if: $i) } }";
    let data = json!({"a": {"x": "1", "y": "2"}});
    assert_eq!(
        ordered(query, data.clone(), json!({"i": true})),
        r#"{"a":{"y":"2","x":"1"}}"#
    );
    assert_eq!(
        ordered(query, data, json!({"s": false, "i": false})),
        r#"{"a":{"x":"1","y":"2"}}"#
    );
}

#[test]
fn an_abstract_type_orders_by_its_runtime_type() {
    let query = "{ node { ... on A { x id } ... on B { id z } } }";
    // B: id before z; A: x before id; the runtime type is read from the keys.
    assert_eq!(
        ordered(query, json!({"node": {"z": "1", "id": "2"}}), json!({})),
        r#"{"node":{"id":"2","z":"1"}}"#
    );
    assert_eq!(
        ordered(query, json!({"node": {"id": "2", "x": "1"}}), json!({})),
        r#"{"node":{"x":"1","id":"2"}}"#
    );
    let typed = "{ node { t: __typename ... on B { z id } ... on A { id x } } }";
    let data = json!({"node": {"id": "2", "t": "A", "x": "1"}});
    assert_eq!(
        ordered(typed, data, json!({})),
        r#"{"node":{"t":"A","id":"2","x":"1"}}"#
    );
}
