//! What the cache tells others: `Cache-Status` (RFC 9211) with the
//! configured name, none when `status_header: false`, the primary key when
//! `expose_key: true` (host without port, query parameters sorted); the
//! access log's `cache="…"` field; `/metrics`' `covet_cache_requests_total`.

use covet_e2e::{Answer, Client, Host, Origin};
use serde_json::json;

use super::{HOST, cache_status, gateway, get, get_with};

/// The access-log line of request `id`.
async fn access_line(host: &Host, id: &str) -> String {
    let quoted = format!("\"{id}\"");
    let line = host.log_line(&["covet::access", &quoted]).await;
    line.unwrap_or_else(|| panic!("no access line for {id}:\n{}", host.logs()))
}

#[tokio::test]
async fn cache_status_and_the_access_log() {
    let origin = Origin::start().await;
    origin.set("/logged", Answer::cached("max-age=60", "logged"));
    let host = gateway(&origin, json!({ "rules": [{ "header": "x-no-cache", "bypass": true }] })).await;
    let cases = [
        ("miss-1", vec![], "covet; fwd=uri-miss; stored", "miss"),
        ("hit-1", vec![], "covet; hit; ttl=", "hit"),
        ("bypass-1", vec![("x-no-cache", "1")], "covet; fwd=bypass", "bypass"),
    ];
    for (id, extra, status, logged) in cases {
        let mut headers = vec![("x-request-id", id)];
        headers.extend(extra);
        let reply = get_with(&host, "/logged", &headers).await;
        assert!(cache_status(&reply).starts_with(status), "{id}: {}", cache_status(&reply));
        let line = access_line(&host, id).await;
        assert!(line.contains(&format!("cache=\"{logged}\"")), "{id}: {line}");
    }
    let metrics = Client::http1(host.admin_addr()).get("/metrics").await.expect("GET /metrics").text();
    for status in ["hit", "miss", "bypass"] {
        let series = metrics.lines().find(|l| {
            l.starts_with("covet_cache_requests_total{")
                && l.contains(&format!("status=\"{status}\""))
                && l.ends_with(" 1")
        });
        assert!(series.is_some(), "one {status} in covet_cache_requests_total:\n{metrics}");
    }
}

#[tokio::test]
async fn cache_status_name_key_and_switch() {
    let origin = Origin::start().await;
    origin.set("/k", Answer::cached("max-age=60", "k"));
    let named = gateway(&origin, json!({ "cache_name": "edge", "expose_key": true })).await;
    let reply = get_with(&named, "/k?y=2&x=a%20b", &[("host", "Cache.Test:8080")]).await;
    let status = cache_status(&reply);
    assert!(status.starts_with("edge; fwd=uri-miss; stored"), "{status}");
    assert!(
        status.contains(&format!("key=\"{HOST}/k?x=a%20b&y=2\"")),
        "host lower case, no port, sorted query: {status}"
    );
    let hit = get_with(&named, "/k?x=a%20b&y=2", &[("host", HOST)]).await;
    assert!(cache_status(&hit).starts_with("edge; hit"), "the same key: {}", cache_status(&hit));

    let silent = gateway(&origin, json!({ "status_header": false })).await;
    for _ in 0..2 {
        let reply = get(&silent, "/k").await;
        assert_eq!((reply.status.as_u16(), reply.header("cache-status")), (200, None));
    }
    assert_eq!(origin.hits("/k"), 1, "one miss, then a hit");
    assert_eq!(origin.hits("/k?x=a%20b&y=2"), 0, "the reordered query hit the first entry");
}
