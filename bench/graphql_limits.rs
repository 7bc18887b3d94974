//! What the GraphQL traffic-control filter costs per operation, on
//! operations of typical size (10–30 fields, with fragments, aliases,
//! variables and list arguments), with every limit, per-field costs and
//! introspection off configured. Run by `bench/graphql_limits.sh` (release
//! build); prints nanoseconds per operation, the median of several rounds.
//!
//! Rows:
//! - `on_request`: the whole filter phase on an in-memory POST request
//!   (`covet_plugin_api::testing::TestRequest`, the plugin API's own view
//!   of a request): GraphQL-over-HTTP parsing of the JSON body, the
//!   document from the process's cache, analysis, limits, and five
//!   metadata values set. What a request pays once its document was seen.
//! - `check`: the same without the HTTP request (from an already-read
//!   GraphQL request): the limits filter alone.
//! - `check, APQ hit`: a request naming its query by hash (in-process store).
//! - `first sight`: a document not seen before: `async-graphql-parser`'s
//!   parse plus the analysis (what each new document costs once).

use std::{
    hint::black_box,
    path::Path,
    time::{Duration, Instant},
};

use covet_graphql::{
    filter::{Filter, FilterConfig},
    limits::{CostModel, analyze},
    persisted::sha256_hex,
    transport::{GraphQlRequest, from_json_body},
};
use covet_plugin_api::{Flow, host::Host, testing::{TestRequest, block_on}};
use serde_json::{Value, json};

/// Operations of typical size: (label, fields, document, variables).
const OPERATIONS: [(&str, usize, &str, &str); 3] = [
    (
        "profile",
        12,
        "query Profile($id: ID!) { user(id: $id) { id name email avatarUrl(size: 64) createdAt \
         settings { theme locale } team { id name } } }",
        r#"{"id": "u1"}"#,
    ),
    (
        "dashboard",
        23,
        "query Dashboard($n: Int = 10) { viewer { id login name } \
         search(query: \"rust\", first: $n) { totalCount edges { cursor node { ...Repo } } } \
         notifications: viewer { unread: notificationsCount(state: UNREAD) } \
         rateLimit { cost remaining resetAt } } \
         fragment Repo on Repository { id name stargazerCount owner { login avatarUrl } \
         ... on Repository { isPrivate updatedAt } }",
        r#"{"n": 20}"#,
    ),
    (
        "orders",
        30,
        "query Orders($first: Int!, $after: String) { shop { id name } \
         orders(first: $first, after: $after) { pageInfo { hasNextPage endCursor } \
         edges { node { id number total { amount currency } customer { ...Person } \
         lines(first: 5) { edges { node { id quantity product { id title price { amount currency } } } } } } } } } \
         fragment Person on Customer { id firstName lastName email }",
        r#"{"first": 25}"#,
    ),
];

fn config() -> FilterConfig {
    serde_json::from_value(json!({
        "max_depth": 12,
        "max_aliases": 20,
        "max_root_fields": 10,
        "max_cost": 100000,
        "costs": { "Query.search": 10, "Query.orders": 5, "default": 1 },
        "list_arguments": ["first", "last", "limit"],
        "introspection": false,
        "apq": true,
    }))
    .expect("bench config")
}

fn request(query: Option<&str>, variables: &str, extensions: Value) -> GraphQlRequest {
    GraphQlRequest {
        query: query.map(str::to_owned),
        variables: serde_json::from_str(variables).expect("variables"),
        extensions: extensions.as_object().cloned().unwrap_or_default(),
        ..GraphQlRequest::default()
    }
}

/// Nanoseconds per call of `f`: the median of `rounds` rounds of `iters` calls.
fn time(rounds: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[rounds / 2]
}

fn main() {
    let iters: u32 = std::env::var("ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let filter = Filter::from_settings(&config(), &Host::unavailable(), Path::new(""), false).expect("filter");
    let model = CostModel::new(&config().costs, &config().list_arguments).expect("model");
    println!("{:<10} {:>6} {:>12} {:>12} {:>16} {:>14}", "operation", "fields", "on_request", "check", "check, APQ hit", "first sight");
    let mut worst = Duration::ZERO;
    for (label, fields, query, variables) in OPERATIONS {
        let body = json!({ "query": query, "variables": serde_json::from_str::<Value>(variables).unwrap() }).to_string();
        let mut http = TestRequest::get("/graphql");
        http.method = "POST".into();
        http.headers.push(("content-type".into(), "application/json".into()));
        http.body = body.clone().into_bytes();
        let on_request = time(7, iters, || {
            http.metadata.clear();
            let flow = block_on(filter.on_request(&mut http.view()));
            assert!(matches!(flow, Flow::Continue), "{label} passes");
        });
        assert_eq!(http.get_metadata("graphql.operation_type"), Some("query"));

        let gql = from_json_body(body.as_bytes()).expect("a GraphQL request");
        let check = time(7, iters, || {
            black_box(block_on(filter.check(black_box(&gql))).expect("passes"));
        });

        let hash = sha256_hex(query);
        let register = request(Some(query), variables, json!({"persistedQuery": {"version": 1, "sha256Hash": hash}}));
        let mut registering = http.clone();
        registering.metadata.clear();
        registering.body = serde_json::to_vec(&json!({ "query": query, "extensions": register.extensions })).unwrap();
        assert!(matches!(block_on(filter.on_request(&mut registering.view())), Flow::Continue));
        let hit = request(None, variables, json!({"persistedQuery": {"version": 1, "sha256Hash": hash}}));
        let apq = time(7, iters, || {
            black_box(block_on(filter.check(black_box(&hit))).expect("an APQ hit"));
        });

        let vars = serde_json::from_str::<serde_json::Map<String, Value>>(variables).unwrap();
        let cold = time(5, iters / 10, || {
            let doc = async_graphql_parser::parse_query(black_box(query)).expect("parses");
            let analysis = analyze(&doc, None, &model, &|v| vars.get(v).and_then(Value::as_i64)).expect("analysis");
            black_box(analysis.cost);
        });
        worst = worst.max(Duration::from_nanos(check as u64));
        println!("{label:<10} {fields:>6} {on_request:>9.0} ns {check:>9.0} ns {apq:>13.0} ns {cold:>11.0} ns");
    }
    println!("limits filter alone (check), worst of the three: {:.2} us per operation (target <= 5 us)", worst.as_secs_f64() * 1e6);
}
