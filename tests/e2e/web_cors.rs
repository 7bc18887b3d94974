//! The cors plugin behind the real host, over HTTP/1.1 and h2c: preflights
//! answered 204 or refused 403 (or passed on to the handler), exact,
//! pattern and `*` origins, credentials echoed, `vary`, no CORS headers for
//! a disallowed origin, and `*` with credentials refused by `covet check`.

use covet_e2e::{Client, Host, Manifest, Reply, Route};
use http::Method;
use serde_json::{Value, json};

use crate::common::{PATIENCE, assert_problem};

const APP: &str = "https://app.example.com";

/// cors → static-response (`ok`, with `vary: accept-encoding`) on `/api/{*rest}`.
fn gateway(cors: Value) -> Manifest {
    let api = json!({ "body": "ok", "headers": { "vary": "accept-encoding" } });
    Manifest::new()
        .plugin("cors", "covet-cors", cors)
        .plugin("api", "covet-static-response", api)
        .route(Route::new("/api/{*rest}").filters(["cors"]).handler("api"))
}

fn strict() -> Value {
    json!({
        "allow_origins": [APP, "https://*.example.org"],
        "allow_methods": ["GET", "PUT"],
        "allow_headers": ["content-type", "x-api-key"],
        "expose_headers": ["x-request-id"],
        "allow_credentials": true,
        "max_age": "10m",
    })
}

async fn preflight(client: &Client, origin: &str, method: &str, headers: Option<&str>) -> Reply {
    let mut sent = vec![("origin", origin), ("access-control-request-method", method)];
    if let Some(h) = headers {
        sent.push(("access-control-request-headers", h));
    }
    client.send(Method::OPTIONS, "/api/items", &sent, "").await.expect("preflight")
}

async fn get(client: &Client, origin: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = origin.into_iter().map(|o| ("origin", o)).collect();
    client.send(Method::GET, "/api/items", &headers, "").await.expect("GET")
}

fn vary(reply: &Reply) -> Vec<&str> {
    reply.headers.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect()
}

fn cors_headers(reply: &Reply) -> Vec<&str> {
    reply.headers.keys().map(|k| k.as_str()).filter(|k| k.starts_with("access-control-")).collect()
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_204_by_the_filter() {
    let host = Host::start(gateway(strict())).await;
    for client in [host.http1(), host.http2()] {
        for origin in [APP, "https://eu.shop.example.org"] {
            let reply = preflight(&client, origin, "PUT", Some("content-type,x-api-key")).await;
            assert_eq!(reply.status, 204, "{origin}: {}", reply.text());
            assert!(reply.body.is_empty(), "the handler did not answer");
            assert_eq!(reply.header("access-control-allow-origin"), Some(origin), "origin echoed");
            assert_eq!(reply.header("access-control-allow-methods"), Some("GET, PUT"));
            assert_eq!(reply.header("access-control-allow-headers"), Some("content-type, x-api-key"));
            assert_eq!(reply.header("access-control-max-age"), Some("600"));
            assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
            assert_eq!(vary(&reply), ["origin, access-control-request-method, access-control-request-headers"]);
        }
    }
}

#[tokio::test]
async fn a_disallowed_preflight_is_refused_403_naming_what_was_refused() {
    let host = Host::start(gateway(strict())).await;
    let client = host.http1();
    let cases = [
        ("https://example.org", "GET", None, json!({ "origin": "https://example.org" })),
        ("https://evil.test", "GET", None, json!({ "origin": "https://evil.test" })),
        (APP, "DELETE", None, json!({ "origin": APP, "method": "DELETE" })),
        (APP, "PUT", Some("content-type,x-debug"), json!({ "origin": APP, "header": "x-debug" })),
    ];
    for (origin, method, headers, details) in cases {
        let reply = preflight(&client, origin, method, headers).await;
        let error = assert_problem(&reply, 403, "CORS_FORBIDDEN");
        assert_eq!(error["details"], details);
        assert!(cors_headers(&reply).is_empty(), "{origin}: {:?}", cors_headers(&reply));
    }
}

#[tokio::test]
async fn a_disallowed_preflight_can_be_passed_on_without_cors_headers() {
    let config = json!({ "allow_origins": APP, "disallowed_preflight": "pass" });
    let host = Host::start(gateway(config)).await;
    let reply = preflight(&host.http1(), "https://evil.test", "GET", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok", "the handler answered");
    assert!(cors_headers(&reply).is_empty(), "{:?}", cors_headers(&reply));
    let allowed = preflight(&host.http1(), APP, "GET", None).await;
    assert_eq!(allowed.status, 204, "allowed preflights are still answered by the filter");
}

#[tokio::test]
async fn with_preflight_pass_the_handler_answers_and_the_filter_adds_the_headers() {
    let config = json!({ "allow_origins": APP, "preflight": "pass", "allow_headers": "*" });
    let host = Host::start(gateway(config)).await;
    let reply = preflight(&host.http2(), APP, "POST", Some("x-anything")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(reply.header("access-control-allow-methods"), Some("GET, HEAD, POST"));
    assert_eq!(reply.header("access-control-allow-headers"), Some("x-anything"), "`*` mirrors the request");
    assert_eq!(vary(&reply), ["accept-encoding", "origin, access-control-request-method, access-control-request-headers"]);
    let refused = preflight(&host.http2(), "https://evil.test", "POST", None).await;
    assert_problem(&refused, 403, "CORS_FORBIDDEN");
}

#[tokio::test]
async fn actual_requests_from_allowed_origins_get_the_origin_credentials_and_vary() {
    let host = Host::start(gateway(strict())).await;
    for client in [host.http1(), host.http2()] {
        for origin in [APP, "https://a.b.example.org"] {
            let reply = get(&client, Some(origin)).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.text(), "ok");
            assert_eq!(reply.header("access-control-allow-origin"), Some(origin));
            assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
            assert_eq!(reply.header("access-control-expose-headers"), Some("x-request-id"));
            assert_eq!(reply.header("access-control-allow-methods"), None, "preflight headers only on preflights");
            assert_eq!(vary(&reply), ["accept-encoding", "origin"], "origin appended once to the handler's vary");
        }
    }
}

#[tokio::test]
async fn disallowed_origins_and_plain_requests_get_no_cors_headers_but_vary_origin() {
    let host = Host::start(gateway(strict())).await;
    let client = host.http1();
    for origin in [Some("https://evil.test"), Some("http://app.example.com"), Some("https://example.org"), None] {
        let reply = get(&client, origin).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "ok", "the request itself is served");
        assert!(cors_headers(&reply).is_empty(), "{origin:?}: {:?}", cors_headers(&reply));
        assert_eq!(vary(&reply), ["accept-encoding", "origin"], "{origin:?}: caches must key on origin");
    }
}

#[tokio::test]
async fn vary_origin_already_set_by_the_handler_is_not_repeated() {
    let api = json!({ "body": "ok", "headers": { "vary": "Origin" } });
    let manifest = Manifest::new()
        .plugin("cors", "covet-cors", json!({ "allow_origins": APP }))
        .plugin("api", "covet-static-response", api)
        .route(Route::new("/api/{*rest}").filters(["cors"]).handler("api"));
    let host = Host::start(manifest).await;
    let reply = get(&host.http1(), Some(APP)).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(vary(&reply), ["Origin"]);
}

#[tokio::test]
async fn star_origins_answer_star_without_vary() {
    let host = Host::start(gateway(json!({ "allow_origins": "*" }))).await;
    let reply = get(&host.http1(), Some("https://anyone.test")).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);
    assert_eq!(vary(&reply), ["accept-encoding"], "the answer does not depend on the origin");
    let reply = preflight(&host.http1(), "null", "POST", None).await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn star_origins_with_credentials_are_refused_at_load() {
    let manifest = gateway(json!({ "allow_origins": "*", "allow_credentials": true }));
    let checked = Host::builder(manifest).check(PATIENCE);
    assert!(!checked.status.success(), "check passed:\n{}", checked.stdout);
    assert!(
        checked.stderr.contains("allow_origins `*` cannot be combined with allow_credentials: true"),
        "{}",
        checked.stderr
    );
    let manifest = gateway(json!({ "allow_origins": ["https://app.test/"] }));
    let checked = Host::builder(manifest).check(PATIENCE);
    assert!(checked.stderr.contains("`https://app.test/` is not an origin"), "{}", checked.stderr);
}
