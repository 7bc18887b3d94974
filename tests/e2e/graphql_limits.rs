//! GraphQL traffic control end to end: the real covet binary with the
//! `graphql` plugin (`covet-graphql`, native) as a filter (`limits:` only,
//! no schema) in front of the `proxy` plugin to a real upstream
//! ([`TestUpstream`], which echoes the request it got as JSON). The
//! `headers` filter copies the filter's metadata (`graphql.*`) into request
//! headers, so the upstream's echo shows what later plugins see.
//!
//! Covered: the metadata; each limit (depth, aliases, root fields, cost with
//! a list multiplier from a variable) refused with its name, maximum and
//! value, the status and content type per `accept`, and nothing reaching
//! the upstream; a fragment cycle; a mutation over GET; automatic persisted
//! queries (miss, register, hit on POST with the body rewritten, hit on
//! GET, a wrong hash), shared by two hosts through Redis; the allowlist
//! (listed text, a listed hash, refusal of the rest); introspection off.

use covet_e2e::{Host, RedisServer, Reply, TestUpstream, plugin};
use http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The upstream every route proxies to.
const UPSTREAM: &str = "gql";
/// The strict media type: request errors are 400.
const GRAPHQL_JSON: &str = "application/graphql-response+json";

/// The open route's limits: APQ on, every limit set.
fn limits() -> Value {
    json!({
        "max_depth": 4,
        "max_aliases": 2,
        "max_root_fields": 3,
        "max_cost": 50,
        "costs": { "Query.search": 10, "default": 1 },
        "list_arguments": ["first"],
        "apq": { "state": "graphql-apq", "ttl": "1h" },
    })
}

/// The strict route's filter: only the listed operations (from a file next
/// to the manifest), no introspection.
fn strict() -> Value {
    json!({ "allowlist": { "file": "operations.json" }, "introspection": false })
}

/// `/graphql` behind `limits`, `/strict` behind `strict`, both through the
/// metadata-copying headers filter to the proxy; `state` is the manifest's
/// `services.state` (empty: in process).
fn manifest(upstream: &TestUpstream, limits: Value, state: &str) -> String {
    let path = |name: &str| Value::String(plugin(name).display().to_string());
    let (graphql, headers, proxy) = (path("covet-graphql"), path("covet-headers"), path("covet-proxy"));
    let copy = json!({ "request": { "set": {
        "x-gql-name": "{graphql.operation_name}",
        "x-gql-type": "{graphql.operation_type}",
        "x-gql-roots": "{graphql.root_fields}",
        "x-gql-cost": "{graphql.cost}",
        "x-gql-persisted": "{graphql.persisted}",
    }}});
    let (open, strict) = (json!({ "limits": limits }), json!({ "limits": strict() }));
    format!(
        "listen:\n  - addr: 127.0.0.1:0\n{state}\
         upstreams:\n  {UPSTREAM}: {{ endpoints: [\"{addr}\"] }}\n\
         plugins:\n\
         \x20 traffic:\n    kind: native\n    path: {graphql}\n    capabilities: {{ state: [graphql-apq] }}\n    config: {open}\n\
         \x20 strict:\n    kind: native\n    path: {graphql}\n    config: {strict}\n\
         \x20 meta:\n    kind: native\n    path: {headers}\n    config: {copy}\n\
         \x20 proxy:\n    kind: native\n    path: {proxy}\n    capabilities: {{ upstreams: [{UPSTREAM}] }}\n    config: {{ upstream: {UPSTREAM} }}\n\
         routes:\n\
         \x20 - path: /graphql\n    filters: [traffic, meta]\n    handler: proxy\n\
         \x20 - path: /strict\n    filters: [strict, meta]\n    handler: proxy\n",
        addr = upstream.endpoint(),
    )
}

/// The allowlist file: an Apollo persisted-query manifest with two operations.
fn operations_file() -> String {
    let ops: Vec<Value> = [LISTED, LISTED_BY_HASH]
        .iter()
        .map(|body| json!({ "id": sha256(body), "name": "x", "type": "query", "body": body }))
        .collect();
    json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": ops }).to_string()
}

const LISTED: &str = "query Listed { viewer { id } }";
const LISTED_BY_HASH: &str = "query ByHash { viewer { name } }";

/// A host on `manifest`, with the allowlist file, once its plugins are ready.
async fn ready(manifest: String) -> Host {
    let host = Host::builder(manifest).file("operations.json", operations_file()).start();
    host.wait_ready().await;
    host
}

async fn start(upstream: &TestUpstream) -> Host {
    ready(manifest(upstream, limits(), "")).await
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST path` with a JSON GraphQL request and `accept`.
async fn post(host: &Host, path: &str, accept: &str, body: Value) -> Reply {
    let headers = [("content-type", "application/json"), ("accept", accept)];
    let body = body.to_string();
    host.http1()
        .send(Method::POST, path, &headers, body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}\nlogs:\n{}", host.logs()))
}

/// `GET path?query-string` with `accept`.
async fn get(host: &Host, path: &str, params: &[(&str, &str)]) -> Reply {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    let target = format!("{path}?{}", query.join("&"));
    host.http1()
        .send(Method::GET, &target, &[("accept", "application/json")], "")
        .await
        .unwrap_or_else(|e| panic!("GET {target}: {e}\nlogs:\n{}", host.logs()))
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The upstream's echo of a request that passed (status 200 from the upstream).
fn echoed(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-upstream"), Some(UPSTREAM), "the upstream answered: {}", reply.text());
    reply.json()
}

/// The one GraphQL error of a refusal: status 400 and the strict media type
/// (the client accepts it), no `data`.
fn refused(reply: &Reply, code: &str) -> Value {
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/graphql-response+json; charset=utf-8"));
    assert!(reply.header("x-upstream").is_none(), "the upstream was not asked");
    let body = reply.json();
    assert!(body.get("data").is_none(), "{body}");
    let error = body["errors"][0].clone();
    assert_eq!(error["extensions"]["code"], code, "{body}");
    error
}

fn apq(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[tokio::test]
async fn the_operations_name_type_root_fields_and_cost_reach_later_plugins() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = start(&upstream).await;
    let query = "query Home($n: Int) { viewer { id } search(first: $n) { title } other: viewer { name } }";
    let reply = post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": query, "variables": { "n": 3 } })).await;
    let headers = &echoed(&reply)["headers"];
    assert_eq!(headers["x-gql-name"], "Home");
    assert_eq!(headers["x-gql-type"], "query");
    assert_eq!(headers["x-gql-roots"], "viewer,search");
    // viewer 1+1, search 10 + 3 × 1, viewer 1+1
    assert_eq!(headers["x-gql-cost"], "17");
    assert!(headers.get("x-gql-persisted").is_none(), "not a persisted query: {headers}");

    let mutation = "mutation { like(id: 1) { id } }";
    let reply = post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": mutation })).await;
    let headers = &echoed(&reply)["headers"];
    assert_eq!(headers["x-gql-type"], "mutation");
    assert_eq!(headers["x-gql-roots"], "like");
    assert!(headers.get("x-gql-name").is_none(), "anonymous: no name header: {headers}");
}

#[tokio::test]
async fn each_limit_is_refused_naming_the_limit_its_maximum_and_the_value() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = start(&upstream).await;
    let cases = [
        ("{ a { b { c { d { e } } } } }", json!({}), "DEPTH_LIMIT_EXCEEDED", "max_depth", 4, 5),
        ("{ a { x: b y: b z: b } }", json!({}), "ALIAS_LIMIT_EXCEEDED", "max_aliases", 2, 3),
        ("{ a b ...F } fragment F on Query { c d }", json!({}), "ROOT_FIELD_LIMIT_EXCEEDED", "max_root_fields", 3, 4),
        // search 10 + 20 × (title 1 + author 1 + name 1)
        (
            "query($n: Int) { search(first: $n) { title author { name } } }",
            json!({ "n": 20 }),
            "COST_LIMIT_EXCEEDED",
            "max_cost",
            50,
            70,
        ),
    ];
    for (query, variables, code, limit, max, value) in cases {
        let reply = post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": query, "variables": variables })).await;
        let error = refused(&reply, code);
        let ext = &error["extensions"];
        assert_eq!((&ext["limit"], &ext["max"], &ext["value"]), (&json!(limit), &json!(max), &json!(value)), "{query}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(&format!("{limit} = {max}")) && message.contains(&value.to_string()), "{message}");
    }
    assert_eq!(upstream.requests(), 0, "no refused operation reached the upstream");

    // The legacy media type: the same error with 200, as GraphQL-over-HTTP says.
    let reply = post(&host, "/graphql", "application/json", json!({ "query": "{ a { x: b y: b z: b } }" })).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(reply.json()["errors"][0]["extensions"]["code"], "ALIAS_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn malformed_documents_cycles_and_mutations_over_get_are_refused() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = start(&upstream).await;
    let cycle = "{ ...A } fragment A on Query { a { ...B } } fragment B on Thing { ...A }";
    let error = refused(&post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": cycle })).await, "FRAGMENT_CYCLE");
    assert_eq!(error["extensions"]["fragment"], "A");
    refused(&post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": "{ a " })).await, "GRAPHQL_PARSE_FAILED");
    let batch = host
        .http1()
        .send(Method::POST, "/graphql", &[("content-type", "application/json")], "[{\"query\":\"{ a }\"}]")
        .await
        .unwrap();
    assert_eq!(batch.status, 400, "a batch cannot be analysed, so it does not pass: {}", batch.text());

    let reply = get(&host, "/graphql", &[("query", "mutation { like(id: 1) { id } }")]).await;
    assert_eq!(reply.status, 405, "{}", reply.text());
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = get(&host, "/graphql", &[("query", "query Q { viewer { id } }")]).await;
    assert_eq!(echoed(&reply)["headers"]["x-gql-name"], "Q");
    assert_eq!(upstream.requests(), 1, "only the GET query went through");
}

#[tokio::test]
async fn automatic_persisted_queries_miss_register_and_hit() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = start(&upstream).await;
    let query = "query Saved { viewer { id name } }";
    let hash = sha256(query);

    // Miss: Apollo's PersistedQueryNotFound, as clients expect it (200 with application/json).
    let reply = post(&host, "/graphql", "application/json", json!({ "extensions": apq(&hash) })).await;
    assert_eq!(reply.status, 200);
    let error = &reply.json()["errors"][0];
    assert_eq!((&error["message"], &error["extensions"]["code"]), (&json!("PersistedQueryNotFound"), &json!("PERSISTED_QUERY_NOT_FOUND")));

    // A hash that is not the query's is refused and registers nothing.
    let wrong = post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": query, "extensions": apq(&sha256("{ x }")) })).await;
    refused(&wrong, "PROVIDED_SHA_DOESNT_MATCH");

    // Register: the query with its hash runs and is kept.
    let reply = post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": query, "extensions": apq(&hash) })).await;
    assert_eq!(echoed(&reply)["headers"]["x-gql-persisted"], "registered");

    // Hit over POST: the upstream gets the query written into the body.
    let hit = json!({ "extensions": apq(&hash) }).to_string();
    let reply = post(&host, "/graphql", GRAPHQL_JSON, json!({ "extensions": apq(&hash) })).await;
    let echo = echoed(&reply);
    assert_eq!(echo["headers"]["x-gql-persisted"], "hit");
    assert_eq!(echo["headers"]["x-gql-name"], "Saved");
    let received = echo["received"].as_u64().unwrap();
    assert!(received as usize > hit.len() + query.len(), "the body grew by the query: {received} bytes");
    assert_eq!(echo["headers"]["content-length"], received.to_string(), "content-length follows the new body");

    // Hit over GET (what CDNs cache): checked and passed on as it came.
    let extensions = apq(&hash).to_string();
    let reply = get(&host, "/graphql", &[("extensions", &extensions)]).await;
    let echo = echoed(&reply);
    assert_eq!((&echo["headers"]["x-gql-persisted"], &echo["method"]), (&json!("hit"), &json!("GET")));
}

#[tokio::test]
async fn a_fleet_shares_persisted_queries_through_redis() {
    let redis = RedisServer::start();
    let upstream = TestUpstream::start(UPSTREAM).await;
    let state = format!("services:\n  state: {{ backend: redis, url: {}, timeout: 1s }}\n", Value::String(redis.url()));
    let manifest = manifest(&upstream, limits(), &state);
    let first = ready(manifest.clone()).await;
    let second = ready(manifest).await;
    let query = "query Fleet { viewer { id } }";
    let hash = sha256(query);

    let reply = post(&first, "/graphql", GRAPHQL_JSON, json!({ "query": query, "extensions": apq(&hash) })).await;
    assert_eq!(echoed(&reply)["headers"]["x-gql-persisted"], "registered");
    assert_eq!(redis.get(&format!("covet:graphql-apq:{hash}")), query, "registered in the shared state");

    let reply = post(&second, "/graphql", GRAPHQL_JSON, json!({ "extensions": apq(&hash) })).await;
    let echo = echoed(&reply);
    assert_eq!((&echo["headers"]["x-gql-persisted"], &echo["headers"]["x-gql-name"]), (&json!("hit"), &json!("Fleet")));
}

#[tokio::test]
async fn the_allowlist_runs_listed_operations_only() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = start(&upstream).await;
    let reply = post(&host, "/strict", GRAPHQL_JSON, json!({ "query": LISTED })).await;
    assert_eq!(echoed(&reply)["headers"]["x-gql-name"], "Listed");

    // A listed document by its hash alone: the upstream gets its text.
    let reply = post(&host, "/strict", GRAPHQL_JSON, json!({ "extensions": apq(&sha256(LISTED_BY_HASH)) })).await;
    let echo = echoed(&reply);
    assert_eq!((&echo["headers"]["x-gql-persisted"], &echo["headers"]["x-gql-name"]), (&json!("listed"), &json!("ByHash")));

    // Anything else, as text or by hash, even a whitespace change of a listed one.
    for body in [
        json!({ "query": "query Other { viewer { id } }" }),
        json!({ "query": "query Listed {  viewer { id } }" }),
        json!({ "extensions": apq(&sha256("{ secret }")) }),
    ] {
        let error = refused(&post(&host, "/strict", GRAPHQL_JSON, body.clone()).await, "PERSISTED_QUERY_NOT_ALLOWED");
        assert_eq!(error["extensions"]["sha256Hash"].as_str().map(str::len), Some(64), "{body}");
    }
    assert_eq!(upstream.requests(), 2);
}

#[tokio::test]
async fn introspection_can_be_switched_off_but_typename_stays() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = start(&upstream).await;
    let introspection = "{ __schema { queryType { name } } }";
    // The open route allows it (the default).
    echoed(&post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": introspection })).await);
    // A filter with introspection off.
    let host = ready(manifest(&upstream, json!({ "introspection": false }), "")).await;
    refused(&post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": introspection })).await, "INTROSPECTION_DISABLED");
    let typename = "{ __typename viewer { __typename id } }";
    echoed(&post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": typename })).await);
    let typed = "{ viewer { ... on Query { __type(name: \"User\") { name } } } }";
    refused(&post(&host, "/graphql", GRAPHQL_JSON, json!({ "query": typed })).await, "INTROSPECTION_DISABLED");
}

/// One graphql instance as both filter and handler of `/api`: a schema whose
/// one field asks the upstream (its echo's `uri` and `upstream`), and limits.
fn handler_manifest(upstream: &TestUpstream) -> String {
    let graphql = Value::String(plugin("covet-graphql").display().to_string());
    let config = json!({
        "schema": "type Query { echo: Echo @http(upstream: \"gql\", path: \"/echo\") }\n\
                   type Echo { method: String uri: String upstream: String }",
        "limits": { "max_root_fields": 1, "apq": true },
    });
    format!(
        "listen:\n  - addr: 127.0.0.1:0\n\
         upstreams:\n  {UPSTREAM}: {{ endpoints: [\"{addr}\"] }}\n\
         plugins:\n  api:\n    kind: native\n    path: {graphql}\n    capabilities: {{ upstreams: [{UPSTREAM}] }}\n    config: {config}\n\
         routes:\n  - path: /api\n    filters: [api]\n    handler: api\n",
        addr = upstream.endpoint(),
    )
}

#[tokio::test]
async fn in_front_of_covets_handler_the_handler_runs_the_filters_document() {
    let upstream = TestUpstream::start(UPSTREAM).await;
    let host = ready(handler_manifest(&upstream)).await;
    let query = "query E { echo { uri upstream } }";
    let hash = sha256(query);

    let reply = post(&host, "/api", GRAPHQL_JSON, json!({ "query": query, "extensions": apq(&hash) })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"]["echo"], json!({ "uri": "/echo", "upstream": UPSTREAM }));

    // A GET with the hash alone: no text reaches the handler but the filter's document.
    let extensions = apq(&hash).to_string();
    let reply = get(&host, "/api", &[("extensions", &extensions)]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"]["echo"]["uri"], "/echo");

    let two = "{ a: echo { uri } b: echo { uri } }";
    let error = refused(&post(&host, "/api", GRAPHQL_JSON, json!({ "query": two })).await, "ROOT_FIELD_LIMIT_EXCEEDED");
    assert_eq!(error["extensions"]["value"], 2);
    assert_eq!(upstream.requests(), 2, "the refused operation resolved nothing");
}
