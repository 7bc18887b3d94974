//! The `graphql` handler (plugins/graphql) end to end: a schema over two
//! REST services started by the test (`graphql/services.rs`; `posts`
//! answers slowly), resolved through the host's upstreams by the real
//! covet binary. Concurrency, deduplication and batching are asserted on
//! what the services saw (calls in flight at once, calls per path), never
//! on a wall clock. Also: partial errors, metadata-driven headers (auth-jwt
//! in front), the field cache in shared state, load refusals naming the
//! field, a schema swap under load, and the `graphql-http` server audits.

mod services;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use covet_e2e::{Client, Host, Reply, plugin, workspace_root};
use hyper::Method;
use serde_json::{Value, json};

use crate::{
    swap::swap,
    tokens::{SECRET, SECRET_VAR, auth_config, bearer, claims, hs256},
};

/// The schema every test serves (`version` differs between the swap's two schemas).
const SCHEMA: &str = r#"
type Query {
  user(id: ID!): User @http(upstream: "users", path: "/users/{args.id}")
  post(id: ID!): Post @http(upstream: "posts", path: "/posts/{args.id}")
  posts: [Post!]! @http(upstream: "posts", path: "/posts")
  me: User @http(upstream: "users", path: "/me", headers: [{name: "x-user", value: "{meta.jwt.sub}"}])
  slow: User @http(upstream: "users", path: "/slow", timeout: "300ms")
  cached(id: ID!): User @http(upstream: "users", path: "/users/{args.id}?cached=1", cache_ttl: "60s")
}
type Post {
  id: ID!
  title: String
  authorId: ID
  author: User @http(upstream: "users", path: "/users/{parent.authorId}")
  writer: User @http(upstream: "users", path: "/users?ids={batch.keys}", batch: {key: "{parent.authorId}"})
  strict: User! @http(upstream: "users", path: "/users/404")
}
type User { id: ID! name: String }
"#;

/// The manifest: upstreams `users` and `posts`, the graphql plugin on
/// `/graphql` with `config`, auth-jwt in front when `auth`.
fn manifest(users: SocketAddr, posts: SocketAddr, config: &Value, auth: bool) -> String {
    let graphql = Value::String(plugin("covet-graphql").display().to_string());
    let mut out = format!(
        "listen:\n  - addr: 127.0.0.1:0\nlog:\n  access: false\n\
         upstreams:\n  users: {{ endpoints: [\"{users}\"] }}\n  posts: {{ endpoints: [\"{posts}\"] }}\n\
         plugins:\n  api:\n    kind: native\n    path: {graphql}\n\
         \x20   capabilities: {{ upstreams: [users, posts], state: [graphql] }}\n    config: {config}\n"
    );
    if auth {
        let path = Value::String(plugin("covet-auth-jwt").display().to_string());
        out += &format!("  auth:\n    kind: native\n    path: {path}\n    config: {}\n", auth_config());
    }
    let filters = if auth { "\n    filters: [auth]" } else { "" };
    out += &format!("routes:\n  - path: /graphql\n    methods: [GET, POST]{filters}\n    handler: api\n");
    out
}

/// Both services, and a host serving [`SCHEMA`].
async fn start(auth: bool) -> (Host, Arc<services::Service>, Arc<services::Service>) {
    let ((users_addr, users), (posts_addr, posts)) = (services::users().await, services::posts().await);
    let yaml = manifest(users_addr, posts_addr, &json!({ "schema": SCHEMA }), auth);
    let host = Host::builder(yaml).env(SECRET_VAR, SECRET).start();
    host.wait_ready().await;
    (host, users, posts)
}

/// POSTs `query` with `headers`; returns the reply and its JSON.
async fn post(client: &Client, query: &str, headers: &[(&str, &str)]) -> (Reply, Value) {
    let mut all = vec![("content-type", "application/json"), ("accept", "application/graphql-response+json")];
    all.extend_from_slice(headers);
    let body = json!({ "query": query }).to_string();
    let reply = client.send(Method::POST, "/graphql", &all, body).await.expect("POST /graphql");
    let json = reply.json();
    (reply, json)
}

#[tokio::test]
async fn calls_of_one_request_run_at_once_and_identical_calls_are_made_once() {
    let (host, users, posts) = start(false).await;
    posts.gate.store(3, Ordering::SeqCst);
    let query = r#"{
        a: post(id: "1") { title author { name } }
        b: post(id: "2") { title author { name } }
        c: post(id: "3") { title author { name } }
        again: post(id: "1") { title }
        u1: user(id: "1") { name }
        u2: user(id: "1") { id }
    }"#;
    let (reply, body) = post(&host.http1(), query, &[]).await;
    assert_eq!(reply.status, 200, "{body}");
    assert!(body.get("errors").is_none(), "no errors: {body}");
    assert_eq!(body["data"]["c"]["title"], "post 3");
    assert_eq!(body["data"]["a"]["author"]["name"], "user 1");
    // The slow service held each call until three were in flight: they overlapped.
    assert_eq!(posts.max_in_flight(), 3, "the three post calls were in flight together");
    // post 1 was asked twice, user 1 five times (two root fields, three authors): one call each.
    assert_eq!((posts.calls("/posts/1"), posts.total()), (1, 3), "posts deduplicated");
    assert_eq!((users.calls("/users/1"), users.total()), (1, 1), "users deduplicated");
    // Deduplication is per request: the same query again calls again.
    posts.gate.store(0, Ordering::SeqCst);
    let (_, body) = post(&host.http1(), r#"{ u1: user(id: "1") { name } }"#, &[]).await;
    assert_eq!(body["data"]["u1"]["name"], "user 1");
    assert_eq!(users.calls("/users/1"), 2);
}

#[tokio::test]
async fn batched_keys_of_sibling_fields_go_in_one_call() {
    let (host, users, _posts) = start(false).await;
    let (reply, body) = post(&host.http1(), "{ posts { id writer { id name } } }", &[]).await;
    assert_eq!(reply.status, 200, "{body}");
    let writers: Vec<&Value> = body["data"]["posts"].as_array().unwrap().iter().map(|p| &p["writer"]["name"]).collect();
    assert_eq!(writers, [&json!("user 1"), &json!("user 2"), &json!("user 1")], "{body}");
    assert_eq!(users.calls("/users?ids=1,2"), 1, "one call with both keys");
    assert_eq!(users.total(), 1, "and no other");
}

#[tokio::test]
async fn a_failing_field_is_null_with_a_coded_error_and_the_rest_is_kept() {
    let (host, _users, _posts) = start(false).await;
    let query = r#"{ ok: user(id: "7") { name } missing: user(id: "404") { name } garbled: user(id: "garbled") { name } slow { name }
                     p: post(id: "9") { title strict { name } } }"#;
    let (reply, body) = post(&host.http1(), query, &[]).await;
    assert_eq!(reply.status, 200, "data is present: {body}");
    assert_eq!(reply.header("content-type"), Some("application/graphql-response+json; charset=utf-8"));
    assert_eq!(body["data"]["ok"]["name"], "user 7");
    for field in ["missing", "garbled", "slow", "p"] {
        assert!(body["data"][field].is_null(), "{field} is null: {body}");
    }
    let errors = body["errors"].as_array().expect("errors");
    let error = |field: &str| {
        errors.iter().find(|e| e["path"][0] == field).unwrap_or_else(|| panic!("an error at [{field}]: {body}"))
    };
    assert_eq!(error("missing")["extensions"]["code"], "UPSTREAM_ERROR");
    assert_eq!(error("missing")["extensions"]["status"], 404);
    assert!(error("missing")["message"].as_str().unwrap().contains("/users/404"), "{body}");
    assert_eq!(error("garbled")["extensions"]["code"], "BAD_RESPONSE");
    assert_eq!(error("slow")["extensions"]["code"], "UPSTREAM_TIMEOUT");
    // A non-null field's failure nulls its nearest nullable parent (`p`), with one error at the field.
    assert_eq!(error("p")["path"], json!(["p", "strict"]), "{body}");
    assert_eq!(errors.len(), 4, "{body}");
}

#[tokio::test]
async fn fields_come_in_query_order_whatever_order_they_finish_in() {
    let (host, _users, _posts) = start(false).await;
    // `slow` (the posts service waits 50 ms) is asked first, the fast users after; inside
    // `slow`, `author` is a call while the fragment's fields are read at once; `slow` is
    // selected twice (merged at its first position) and `inline` sits in an inline fragment.
    let query = r#"query Ordered {
        slow: post(id: "5") { author { name } ...PostFields n: title }
        fast: user(id: "2") { name id }
        ... on Query { inline: user(id: "3") { id name } }
        slow: post(id: "5") { authorId }
    }
    fragment PostFields on Post { id title }"#;
    let (reply, _) = post(&host.http1(), query, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The raw text: serde_json's map (no `preserve_order`) would sort the keys.
    let expected = concat!(
        r#"{"data":{"slow":{"author":{"name":"user 1"},"id":"5","title":"post 5","n":"post 5","authorId":"1"},"#,
        r#""fast":{"name":"user 2","id":"2"},"inline":{"id":"3","name":"user 3"}}}"#
    );
    assert_eq!(reply.text(), expected, "keys in the order of the query");
}

#[tokio::test]
async fn headers_of_a_call_come_from_request_metadata() {
    let (host, users, _posts) = start(true).await;
    let token = hs256(&claims("alice-7", json!({})));
    let (reply, body) = post(&host.http1(), "{ me { id name } }", &[("authorization", &bearer(&token))]).await;
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(body["data"]["me"], json!({ "id": "alice-7", "name": "me: alice-7" }), "the service saw x-user");
    let (reply, _) = post(&host.http1(), "{ me { id } }", &[]).await;
    assert_eq!(reply.status, 401, "auth-jwt still guards the route");
    assert_eq!(users.calls("/me"), 1);
}

#[tokio::test]
async fn cached_fields_are_served_from_shared_state_until_their_ttl() {
    let (host, users, _posts) = start(false).await;
    for round in 0..3 {
        let (reply, body) = post(&host.http1(), r#"{ cached(id: "5") { name } }"#, &[]).await;
        assert_eq!(reply.status, 200, "{body}");
        assert_eq!(body["data"]["cached"]["name"], "user 5", "round {round}");
    }
    assert_eq!(users.calls("/users/5?cached=1"), 1, "one call, then two cache hits");
    let (_, body) = post(&host.http1(), r#"{ cached(id: "6") { name } }"#, &[]).await;
    assert_eq!(body["data"]["cached"]["name"], "user 6", "another key is another entry");
    assert_eq!(users.calls("/users/6?cached=1"), 1);
}

/// `covet check` on a config with `schema`; returns its stderr after asserting exit 2.
fn refused(schema: &str) -> String {
    let yaml = manifest("127.0.0.1:9".parse().unwrap(), "127.0.0.1:9".parse().unwrap(), &json!({ "schema": schema }), false);
    let exited = Host::builder(yaml).check(Duration::from_secs(30));
    assert_eq!(exited.status.code(), Some(2), "refused; stderr: {}", exited.stderr);
    exited.stderr
}

#[test]
fn a_bad_schema_or_template_refuses_the_load_naming_the_field() {
    let cases = [
        ("type Query { user(id: ID!): User @http(upstream: \"users\", path: \"/u/{args.idd}\") } type User { id: ID }", "Query.user"),
        ("type Query { user: User @http(upstream: \"nope\", path: \"/u\") } type User { id: ID }", "upstream 'nope'"),
        ("type Query { user: User } type User { id: ID }", "Query.user: a root field needs @http"),
        ("type Query { user: Usr @http(upstream: \"users\", path: \"/u\") }", "type 'Usr' is not defined"),
        ("type Query { p: P @http(upstream: \"users\", path: \"/p\") } type P { a: ID b: ID @http(upstream: \"users\", path: \"/x/{parent.c}\") }", "P.b"),
        ("type Query { user: User @http(upstream: \"users\", path: \"/u/{meta}\") } type User { id: ID }", "{meta}"),
        ("type Query { user( }", "schema:"),
    ];
    for (schema, needle) in cases {
        let stderr = refused(schema);
        assert!(stderr.contains(needle), "{needle:?} in the refusal of {schema}: {stderr}");
    }
}

/// The second schema for the swap: `User.email` exists only there.
fn schema_v2() -> String {
    SCHEMA.replace("type User { id: ID! name: String }", "type User { id: ID! name: String email: String }")
}

/// One keep-alive connection asking for a user until `stop`, counting failures.
async fn load(client: Client, stop: Arc<AtomicBool>, ok: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let (reply, body) = post(&client, r#"{ user(id: "3") { id name } }"#, &[]).await;
        if reply.status == 200 && body["data"]["user"]["name"] == "user 3" && body.get("errors").is_none() {
            ok.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("failed: {} {body}", reply.status);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_to_a_new_schema_under_load_fails_no_request() {
    let (host, _users, _posts) = start(false).await;
    let (stop, ok, failed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..16)
        .map(|_| tokio::spawn(load(Client::http1(host.addr()), stop.clone(), ok.clone(), failed.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let probe = host.http1();
    for i in 0..10 {
        let v2 = i % 2 == 0;
        let schema = if v2 { schema_v2() } else { SCHEMA.to_owned() };
        let reply = swap(&host, "api", json!({ "config": { "schema": schema } })).await;
        assert_eq!(reply.status, 200, "swap {i}: {}", reply.text());
        let (_, body) = post(&probe, r#"{ user(id: "1") { email } }"#, &[]).await;
        assert_eq!(body.get("data").is_some(), v2, "swap {i}: the new schema is live when the swap returns: {body}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
    assert!(ok.load(Ordering::Relaxed) > 100, "the load ran: {} requests", ok.load(Ordering::Relaxed));
}

#[tokio::test]
async fn get_requests_run_queries_and_refuse_mutations() {
    let (host, _users, _posts) = start(false).await;
    let client = host.http1();
    let reply = client.get("/graphql?query=%7Buser(id%3A%222%22)%7Bname%7D%7D").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json; charset=utf-8"), "no Accept: JSON");
    assert_eq!(reply.json()["data"]["user"]["name"], "user 2");
    let reply = client.get("/graphql?query=mutation%7B__typename%7D").await.unwrap();
    assert_eq!(reply.status, 405, "{}", reply.text());
    let reply = client.send(Method::POST, "/graphql", &[("content-type", "application/json")], "{ \"not json").await.unwrap();
    assert_eq!(reply.status, 400);
    let reply = client.get("/graphql").await.unwrap();
    assert_eq!(reply.status, 400, "no query, GraphiQL off: {}", reply.text());
}

#[tokio::test]
async fn graphiql_is_served_to_browsers_only_when_on() {
    let ((users_addr, _), (posts_addr, _)) = (services::users().await, services::posts().await);
    let yaml = manifest(users_addr, posts_addr, &json!({ "schema": SCHEMA, "graphiql": true }), false);
    let host = Host::builder(yaml).start();
    host.wait_ready().await;
    let page = host.http1().send(Method::GET, "/graphql", &[("accept", "text/html,*/*")], "").await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.text().contains("GraphiQL.createFetcher({ url: \"/graphql\" })"), "{}", page.text());
    // A query in the URL is run even from a browser.
    let reply = host.http1().send(Method::GET, "/graphql?query=%7B__typename%7D", &[("accept", "text/html")], "").await.unwrap();
    assert_eq!(reply.status, 406, "a browser that accepts no JSON: {}", reply.text());
    let reply = host.http1().send(Method::GET, "/graphql?query=%7B__typename%7D", &[("accept", "text/html,application/json")], "").await.unwrap();
    assert_eq!(reply.json()["data"]["__typename"], "Query");
}

#[tokio::test]
async fn graphql_http_server_audits_pass() {
    let dir = workspace_root().join("tests/e2e/graphql");
    if !dir.join("node_modules/graphql-http").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI runs scripts/test.sh, which installs graphql-http");
        eprintln!("skipped: run `npm ci --prefix tests/e2e/graphql` (scripts/test.sh does) for the graphql-http audits");
        return;
    }
    let (host, _users, _posts) = start(false).await;
    let url = format!("http://{}/graphql", host.addr());
    let out = tokio::process::Command::new("node").arg(dir.join("audit.mjs")).arg(&url).output().await.expect("run node");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(report.lines().last().unwrap_or("")).expect("a JSON summary line");
    assert_eq!(summary["error"], 0, "audits that failed: {summary}");
    assert_eq!(summary["warn"], 0, "audits that warned: {summary}");
    assert!(summary["ok"].as_u64().unwrap() >= 40, "{summary}");
    assert!(out.status.success());
}
