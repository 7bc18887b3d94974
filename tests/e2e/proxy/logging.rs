//! The access log of a proxied request names the upstream, the endpoint
//! that answered and the number of attempts: the proxy sets the request
//! metadata `upstream.name`, `upstream.endpoint` and `upstream.attempts`,
//! which the host prints as `upstream="users" upstream_endpoint="ip:port"
//! upstream_attempts=2`.

use covet_e2e::{Host, TestUpstream};
use http::Method;
use serde_json::json;

use super::{UPSTREAM, answered_by, gateway};

/// The number of `upstream_attempts=N` in `line`.
fn attempts(line: &str) -> u32 {
    let at = line.find("upstream_attempts=").unwrap_or_else(|| panic!("upstream_attempts missing from: {line}"));
    let rest = &line[at + "upstream_attempts=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no attempts count in: {line}"))
}

/// Sends `GET /logged` with request id `id`; returns who answered and its access line.
async fn logged(host: &Host, id: &str) -> (String, String) {
    let reply = host.http1().send(Method::GET, "/logged", &[("x-request-id", id)], "").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let quoted = format!("\"{id}\"");
    let line = host
        .log_line(&["covet::access", &quoted])
        .await
        .unwrap_or_else(|| panic!("no access line for {id}:\n{}", host.logs()));
    (answered_by(&reply), line)
}

#[tokio::test]
async fn the_access_log_names_the_endpoint_and_the_attempts() {
    let (bad, good) = (TestUpstream::start("bad").await, TestUpstream::start("good").await);
    bad.set_status(503);
    let passive = json!({ "consecutive_5xx": 0, "consecutive_gateway_errors": 0 });
    let retries = json!({ "attempts": 1, "budget": "100%", "min_per_sec": 1000, "backoff": "1ms" });
    let host = gateway(&[&bad, &good], json!({ "health": { "passive": passive }, "retries": retries })).await;
    let mut counts = Vec::new();
    for n in 0..4 {
        let (by, line) = logged(&host, &format!("log-{n}")).await;
        assert_eq!(by, "good");
        let endpoint = format!("upstream_endpoint=\"{}\"", good.endpoint());
        assert!(line.contains(&endpoint), "{endpoint} missing from: {line}");
        assert!(line.contains(&format!("upstream=\"{UPSTREAM}\"")), "the upstream's name: {line}");
        counts.push(attempts(&line));
    }
    assert!(counts.iter().all(|&n| n == 1 || n == 2), "{counts:?}");
    assert_eq!(counts.iter().filter(|&&n| n == 2).count(), bad.requests(), "a second attempt for each 503: {counts:?}");
    assert!(bad.requests() >= 1);
}
