//! Unit tests of the load-time checks that need no host service (a grant
//! check needs the host: those are in tests/e2e/graphql.rs).

use std::{collections::BTreeMap, time::Duration};

use covet_plugin_api::host::Host;

use super::*;

fn refusal(sdl: &str, resolvers: &[(&str, &str)]) -> String {
    let host = Host::unavailable();
    let options = Options { host: &host, timeout: Duration::from_secs(1), introspection: true };
    let resolvers: BTreeMap<String, HttpSpec> =
        resolvers.iter().map(|(k, v)| (k.to_string(), serde_json::from_str(v).unwrap())).collect();
    match build(sdl, &resolvers, &options) {
        Ok(_) => panic!("accepted: {sdl}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn refusals_name_the_field_and_the_fix() {
    let cases = [
        ("type Query { a: Nope }", "Query.a: type 'Nope' is not defined"),
        ("type Query { a: String }", "Query.a: a root field needs @http"),
        ("type Query { a: String @htp(url: \"x\") }", "Query.a: unknown directive @htp"),
        ("type Query { a(id: ID): String @http(upstream: \"u\", path: \"/{args.}\") }", "Query.a: path: placeholder {args.}"),
        ("type Query { a: String @http(upstream: \"u\") }", "Query.a: an upstream call needs a `path`"),
        ("type Query { a: String @http(path: \"/x\", bogus: 1) }", "Query.a: @http: unknown field `bogus`"),
        ("type Query { a: String @http(url: \"http://{args.h}/x\") }", "Query.a: url 'http://{args.h}/x': the scheme, host and port must be literal"),
        ("type Query { a: String } type B { c: ID }", "Query.a: a root field needs @http"),
        ("extend type Query { a: String }", "extend type Query"),
        ("schema { query: Q subscription: S } type Q { a: String }", "subscriptions are not served"),
        ("type Query { a: String @http(url: \"http://h/x\") }", "Query.a: url 'http://h/x': no host services"),
        ("type Query { a: String", "schema:"),
    ];
    for (sdl, needle) in cases {
        let message = refusal(sdl, &[]);
        assert!(message.contains(needle), "{needle:?} in {message:?}");
    }
}

#[test]
fn resolvers_entries_must_name_an_object_field_and_not_double_a_directive() {
    let sdl = "type Query { a: String @http(url: \"http://h/x\") }";
    let m = refusal(sdl, &[("Query.b", r#"{"url": "http://h/y"}"#)]);
    assert!(m.contains("resolvers: 'Query.b': type 'Query' has no field 'b'"), "{m}");
    let m = refusal(sdl, &[("Query.a", r#"{"url": "http://h/y"}"#)]);
    assert!(m.contains("Query.a: has both @http and a `resolvers:` entry"), "{m}");
    let m = refusal(sdl, &[("Nope.a", r#"{"url": "http://h/y"}"#)]);
    assert!(m.contains("no type 'Nope'"), "{m}");
}
