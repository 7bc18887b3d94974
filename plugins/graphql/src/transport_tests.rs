//! Unit tests of the GraphQL-over-HTTP parsing and negotiation.

use serde_json::json;

use super::*;

#[test]
fn accept_picks_the_first_json_type() {
    assert_eq!(negotiate(None), Ok(Format::Json));
    assert_eq!(negotiate(Some("*/*")), Ok(Format::Json));
    assert_eq!(negotiate(Some("application/graphql-response+json, application/json")), Ok(Format::GraphQlResponse));
    assert_eq!(negotiate(Some("application/json;q=0.9, application/graphql-response+json")), Ok(Format::Json));
    assert_eq!(negotiate(Some("application/graphql-response+json;q=0, application/json")), Ok(Format::Json));
    assert_eq!(negotiate(Some("text/plain")).unwrap_err().status, 406);
}

#[test]
fn post_bodies_are_checked_parameter_by_parameter() {
    let ok = from_json_body(br#"{"query":"{a}","operationName":null,"variables":{"x":1},"extensions":null}"#).unwrap();
    assert_eq!(ok.query.as_deref(), Some("{a}"));
    assert_eq!(ok.variables.get("x"), Some(&json!(1)));
    for bad in [
        &br#"{ "not a JSON"#[..],
        br#"[]"#,
        br#"["{a}", null, null, null]"#,
        br#" ["{a}"]"#,
        br#"{"query":0}"#,
        br#"{"query":"{a}","operationName":false}"#,
        br#"{"query":"{a}","variables":"x"}"#,
        br#"{"query":"{a}","extensions":["a"]}"#,
        b"",
    ] {
        assert_eq!(from_json_body(bad).unwrap_err().status, 400, "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(from_json_body(br#"{"qeury":"{a}"}"#).unwrap().require_query().unwrap_err().status, 400);
    // Other members are ignored; a member given twice counts once, the last (as a JSON map reads it).
    let twice = from_json_body(br#" {"other":[1],"query":"{a}","query":"{b}","variables":null}"#).unwrap();
    assert_eq!((twice.query.as_deref(), twice.variables.len()), (Some("{b}"), 0));
    let named = from_json_body(br#"{"query":"{a}","operationName":"A","extensions":{"e":true}}"#).unwrap();
    assert_eq!((named.operation_name.as_deref(), named.extensions.get("e")), (Some("A"), Some(&json!(true))));
}

#[test]
fn post_needs_a_json_content_type() {
    assert_eq!(from_post(None, b"{}").unwrap_err().status, 415);
    assert_eq!(from_post(Some("text/plain"), b"{}").unwrap_err().status, 415);
    assert!(from_post(Some("application/json; charset=utf-8"), br#"{"query":"{a}"}"#).is_ok());
    assert_eq!(from_post(Some("application/graphql"), b"{a}").unwrap().query.as_deref(), Some("{a}"));
}

#[test]
fn get_reads_the_query_string() {
    let r = from_query("query=query%20T(%24n%3AString!)%7Ba%7D&variables=%7B%22n%22%3A%22x%22%7D&operationName=T").unwrap();
    assert_eq!(r.query.as_deref(), Some("query T($n:String!){a}"));
    assert_eq!(r.variables.get("n"), Some(&json!("x")));
    assert_eq!(r.operation_name.as_deref(), Some("T"));
    assert!(r.is_get);
    assert_eq!(from_query("query=%7Ba%7D&variables=%5B%5D").unwrap_err().status, 400);
}

#[test]
fn mutations_over_get_are_refused() {
    assert_eq!(check_get_operation("mutation { __typename }", None).unwrap_err().status, 405);
    assert_eq!(check_get_operation("query A {a} mutation B {b}", Some("B")).unwrap_err().status, 405);
    assert!(check_get_operation("query A {a} mutation B {b}", Some("A")).is_ok());
    assert!(check_get_operation("{ a }", None).is_ok());
    assert!(check_get_operation("{", None).is_ok(), "a parse error is left to execution");
}

#[test]
fn the_answer_is_written_as_serde_writes_the_response() {
    use async_graphql::{Name, Number, Value, indexmap::IndexMap};
    let mut inner = IndexMap::new();
    inner.insert(Name::new("text"), Value::String("a \"quoted\"\nline ü".into()));
    inner.insert(Name::new("n"), Value::Number(Number::from_f64(1.5).unwrap()));
    inner.insert(Name::new("i"), Value::Number((-7).into()));
    inner.insert(Name::new("yes"), Value::Boolean(true));
    inner.insert(Name::new("none"), Value::Null);
    inner.insert(Name::new("kind"), Value::Enum(Name::new("ADMIN")));
    inner.insert(Name::new("list"), Value::List(vec![Value::Boolean(false), Value::List(vec![]), Value::Object(IndexMap::new())]));
    let mut data = IndexMap::new();
    data.insert(Name::new("z"), Value::Object(inner));
    data.insert(Name::new("a"), Value::Null);
    let mut response = async_graphql::Response::new(Value::Object(data));
    response.errors.push(async_graphql::ServerError::new("boom", None));
    response.extensions.insert("cost".into(), Value::Number(3.into()));
    assert_eq!(response_json(&response).unwrap(), serde_json::to_vec(&response).unwrap());
    let plain = async_graphql::Response::new(Value::Null);
    assert_eq!(response_json(&plain).unwrap(), serde_json::to_vec(&plain).unwrap());
}
