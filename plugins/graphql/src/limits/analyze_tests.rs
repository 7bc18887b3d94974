use super::*;
use crate::limits::{CostModel, DocumentCache};

/// Root fields, root field count, depth, aliases, cost, introspection, `type:name`.
type Summary = (Vec<String>, u64, u64, u64, u64, bool, String);

fn run(query: &str, name: Option<&str>) -> Result<Summary, Refusal> {
    let costs = [("Query.search", 10), ("author", 2)].iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let model = CostModel::new(&costs, &["first".into(), "last".into()]).unwrap();
    run_with(query, name, &model, &|v| (v == "n").then_some(7))
}

fn run_with(
    query: &str,
    name: Option<&str>,
    model: &CostModel,
    vars: &dyn Fn(&str) -> Option<i64>,
) -> Result<Summary, Refusal> {
    let doc = async_graphql_parser::parse_query(query).unwrap();
    let a = analyze(&doc, name, model, vars)?;
    let label = format!("{}:{}", type_name(a.operation_type), a.operation_name.unwrap_or(""));
    Ok((a.root_fields.iter().map(|s| s.to_string()).collect(), a.root_field_count, a.depth, a.aliases, a.cost, a.introspection, label))
}

#[test]
fn figures_of_a_plain_query() {
    let (roots, count, depth, aliases, cost, intro, label) =
        run("query Q { me: viewer { name } search(first: 3) { title author { name } } other: viewer { id } }", None).unwrap();
    assert_eq!(roots, ["viewer", "search"]);
    assert_eq!((count, depth, aliases, intro), (3, 3, 2, false));
    // viewer 1+1, search 10 + 3*(1 + 2 + 1), viewer 1+1
    assert_eq!(cost, 2 + 10 + 3 * 4 + 2);
    assert_eq!(label, "query:Q");
}

#[test]
fn variables_and_their_defaults_set_list_sizes() {
    let cost = |q: &str| run(q, None).unwrap().4;
    assert_eq!(cost("query($n: Int) { search(first: $n) { a } }"), 10 + 7);
    assert_eq!(cost("query($m: Int = 4) { search(last: $m) { a } }"), 10 + 4);
    assert_eq!(cost("query($z: Int) { search(first: $z) { a } }"), 10 + 1);
    assert_eq!(cost("{ search(first: -5) { a } }"), 10);
}

#[test]
fn fragments_count_where_spread_and_carry_depth_and_type() {
    let q = "query { ...Top viewer { ...U ... on User { x: name } } }
             fragment Top on Query { search { title } }
             fragment U on User { id friends { ...Leaf } }
             fragment Leaf on User { a: name b: name }";
    let (roots, count, depth, aliases, cost, _, _) = run(q, None).unwrap();
    assert_eq!(roots, ["search", "viewer"]);
    assert_eq!(count, 2);
    assert_eq!(depth, 3, "viewer > friends > name, through U and Leaf");
    assert_eq!(aliases, 3);
    // search 10+1, viewer 1 + (id 1 + friends 1 + 2) + name 1
    assert_eq!(cost, 11 + 1 + 4 + 1);
}

#[test]
fn a_fragment_bomb_counts_every_spread_without_walking_each() {
    let mut q = String::from("{ ...F0 }\n");
    for i in 0..40 {
        q.push_str(&format!("fragment F{i} on Query {{ ...F{} ...F{} }}\n", i + 1, i + 1));
    }
    q.push_str("fragment F40 on Query { a }\n");
    let (_, count, _, _, cost, _, _) = run(&q, None).unwrap();
    assert_eq!(count, 1 << 40);
    assert_eq!(cost, 1 << 40);
}

#[test]
fn cycles_and_unknown_fragments_are_refused_by_name() {
    let cycle = run("{ ...A } fragment A on Query { b { ...B } } fragment B on X { ...A }", None).unwrap_err();
    assert_eq!(cycle.code, "FRAGMENT_CYCLE");
    assert!(cycle.message.contains("\"A\""), "{}", cycle.message);
    let unknown = run("{ a { ...Nope } }", None).unwrap_err();
    assert_eq!((unknown.code, unknown.extensions()["fragment"].as_str()), ("UNKNOWN_FRAGMENT", Some("Nope")));
}

#[test]
fn operations_are_chosen_by_name() {
    let doc = "query A { a } mutation B { b(x: 1) { id } }";
    assert_eq!(run(doc, Some("B")).unwrap().6, "mutation:B");
    assert_eq!(run(doc, None).unwrap_err().code, "OPERATION_NAME_REQUIRED");
    assert_eq!(run(doc, Some("C")).unwrap_err().code, "OPERATION_NOT_FOUND");
    assert_eq!(run("query Only { a }", None).unwrap().6, "query:Only");
    assert_eq!(run("subscription { s }", Some("ignored")).unwrap().6, "subscription:");
}

#[test]
fn introspection_is_seen_anywhere_but_typename_is_not_introspection() {
    assert!(run("{ __schema { types { name } } }", None).unwrap().5);
    assert!(run("{ ...F } fragment F on Query { __type(name: \"X\") { name } }", None).unwrap().5);
    assert!(!run("{ __typename viewer { __typename } }", None).unwrap().5);
}

#[test]
fn nesting_past_the_hard_bound_is_refused() {
    // Each fragment nests one field deeper than the last: the chain is
    // deeper than the walk allows, though each definition is shallow.
    let n = MAX_NESTING;
    let mut q = String::from("{ ...F0 }\n");
    for i in 0..n {
        q.push_str(&format!("fragment F{i} on Query {{ a {{ ...F{} }} }}\n", i + 1));
    }
    q.push_str(&format!("fragment F{n} on Query {{ a }}\n"));
    let refusal = run(&q, None).unwrap_err();
    assert_eq!(refusal.code, "DOCUMENT_TOO_DEEP");
    let _ = DocumentCache::new(1);
}
