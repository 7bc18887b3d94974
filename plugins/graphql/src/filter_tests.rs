use covet_plugin_api::testing::{TestRequest, block_on};
use serde_json::json;

use super::*;
use crate::persisted::sha256_hex;

fn filter(settings: Value) -> Filter {
    let settings: FilterConfig = serde_json::from_value(settings).unwrap();
    Filter::from_settings(&settings, &Host::unavailable(), Path::new(""), true).unwrap()
}

fn post(query: &str) -> GraphQlRequest {
    GraphQlRequest { query: Some(query.into()), ..GraphQlRequest::default() }
}

#[test]
fn a_passing_operation_carries_its_name_type_root_fields_and_cost() {
    let f = filter(json!({"max_depth": 5, "costs": {"Query.search": 10}, "list_arguments": ["first"]}));
    let mut gql = post("query Find($n: Int) { search(first: $n) { title } me: viewer { id } search2: search { id } }");
    gql.variables = json!({"n": 3}).as_object().unwrap().clone();
    let passed = block_on(f.check(&gql)).unwrap();
    assert_eq!((passed.name.as_str(), passed.operation_type, passed.root_fields.as_str()), ("Find", "query", "search,viewer"));
    assert_eq!(passed.cost, 10 + 3 + 2 + 11);
    assert_eq!(passed.outcome, Outcome::Plain);
    assert!(passed.held);
    assert!(Arc::ptr_eq(&DocumentCache::global().get(passed.key).unwrap(), &passed.document));
}

#[test]
fn each_limit_is_refused_with_its_name_and_value() {
    let f = filter(json!({"max_depth": 2, "max_aliases": 1, "max_root_fields": 2, "max_cost": 5}));
    let cases = [
        ("{ a { b { c } } }", "DEPTH_LIMIT_EXCEEDED", "max_depth", 3),
        ("{ x: a y: a }", "ALIAS_LIMIT_EXCEEDED", "max_aliases", 2),
        ("{ a b c }", "ROOT_FIELD_LIMIT_EXCEEDED", "max_root_fields", 3),
        ("{ a { b c d e f } }", "COST_LIMIT_EXCEEDED", "max_cost", 6),
    ];
    for (query, code, limit, value) in cases {
        let refusal = block_on(f.check(&post(query))).unwrap_err();
        let ext = refusal.extensions();
        assert_eq!((refusal.code, ext["limit"].as_str(), ext["value"].as_u64()), (code, Some(limit), Some(value)), "{query}");
    }
}

#[test]
fn introspection_off_refuses_schema_but_not_typename() {
    let off = filter(json!({"introspection": false}));
    let refusal = block_on(off.check(&post("{ __schema { queryType { name } } }"))).unwrap_err();
    assert_eq!(refusal.code, "INTROSPECTION_DISABLED");
    assert!(block_on(off.check(&post("{ __typename }"))).is_ok());
    assert!(block_on(filter(json!({})).check(&post("{ __type(name: \"Q\") { name } }"))).is_ok());
}

#[test]
fn mutations_over_get_are_405_and_parse_errors_are_request_errors() {
    let f = filter(json!({}));
    let mut gql = post("mutation { like(id: 1) { id } }");
    gql.is_get = true;
    let refusal = block_on(f.check(&gql)).unwrap_err();
    assert_eq!(refusal.kind, RefusalKind::MethodNotAllowed);
    let response = respond(&refusal, Format::GraphQlResponse);
    assert_eq!((response.status, response.header("allow")), (405, Some("POST")));
    let parse = block_on(f.check(&post("{ a "))).unwrap_err();
    assert_eq!(parse.code, "GRAPHQL_PARSE_FAILED");
}

#[test]
fn a_request_with_neither_query_nor_hash_is_a_400_in_either_media_type() {
    let refusal = block_on(filter(json!({})).check(&GraphQlRequest::default())).unwrap_err();
    assert_eq!((refusal.code, refusal.kind), ("BAD_REQUEST", RefusalKind::Malformed));
    assert_eq!(respond(&refusal, Format::Json).status, 400);
}

#[test]
fn refusals_follow_the_negotiated_media_type() {
    let refusal = Refusal::new("COST_LIMIT_EXCEEDED", "too costly").with("value", 7);
    let strict = respond(&refusal, Format::GraphQlResponse);
    assert_eq!(strict.status, 400);
    assert_eq!(strict.header("content-type"), Some("application/graphql-response+json; charset=utf-8"));
    let legacy = respond(&refusal, Format::Json);
    assert_eq!(legacy.status, 200);
    let body: Value = serde_json::from_slice(&legacy.body).unwrap();
    assert_eq!(body["errors"][0]["extensions"], json!({"code": "COST_LIMIT_EXCEEDED", "value": 7}));
    assert!(body.get("data").is_none());
}

#[test]
fn apq_through_the_filter_registers_once_it_passes() {
    let f = filter(json!({"apq": true, "max_depth": 1}));
    let deep = "{ a { b } }";
    let mut gql = post(deep);
    gql.extensions = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(deep)}}).as_object().unwrap().clone();
    assert_eq!(block_on(f.check(&gql)).unwrap_err().code, "DEPTH_LIMIT_EXCEEDED");
    let ok = "{ a }";
    gql.query = Some(ok.into());
    gql.extensions = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(ok)}}).as_object().unwrap().clone();
    let passed = block_on(f.check(&gql)).unwrap();
    assert_eq!(passed.outcome, Outcome::Register(sha256_hex(ok)));
}

#[test]
fn unknown_keys_in_the_block_are_refused() {
    let config = covet_plugin_api::Config::from_json("{}");
    let err = Filter::new(&json!({"max_dept": 3}), &config, true).err().unwrap();
    assert!(err.contains("max_dept"), "{err}");
    let err = Filter::new(&json!({"costs": {"a.b.c": 1}}), &config, true).err().unwrap();
    assert!(err.contains("limits.costs"), "{err}");
}

#[test]
fn on_request_sets_the_metadata_or_answers_the_refusal() {
    let f = filter(json!({"max_depth": 2}));
    let mut ok = TestRequest::get("/graphql?query=query%20Q%20%7B%20a%20%7B%20b%20%7D%20%7D");
    assert!(matches!(block_on(f.on_request(&mut ok.view())), Flow::Continue));
    assert_eq!(ok.get_metadata(META_OPERATION_NAME), Some("Q"));
    assert_eq!(ok.get_metadata(META_ROOT_FIELDS), Some("a"));
    assert_eq!(ok.get_metadata(META_COST), Some("2"));
    let key = ok.get_metadata(META_DOCUMENT).unwrap().to_owned();
    assert_eq!(&*DocumentCache::global().get_text(&key).unwrap().query, "query Q { a { b } }");

    let mut deep = TestRequest::get("/graphql?query=%7Ba%7Bb%7Bc%7D%7D%7D").header("accept", "application/graphql-response+json");
    let Flow::Respond(response) = block_on(f.on_request(&mut deep.view())) else { panic!("a refusal") };
    assert_eq!(response.status, 400);
    assert!(deep.get_metadata(META_OPERATION_TYPE).is_none());
}

#[test]
fn a_browser_opening_the_endpoint_passes_to_the_page() {
    let f = filter(json!({"max_depth": 2}));
    let mut page = TestRequest::get("/graphql").header("accept", "text/html,application/xhtml+xml");
    assert!(matches!(block_on(f.on_request(&mut page.view())), Flow::Continue));
    assert!(page.get_metadata(META_OPERATION_TYPE).is_none());
    let mut bare = TestRequest::get("/graphql");
    assert!(matches!(block_on(f.on_request(&mut bare.view())), Flow::Respond(_)), "no query and no page wanted");
}
