//! Request coalescing: concurrent misses on one key send one request to the
//! origin (the leader's), and every waiter is answered from its stored
//! result; with `coalesce: false` each miss goes to the origin. A response
//! that is not storable sends the waiters to the origin themselves.

use std::time::Duration;

use covet_e2e::{Answer, Host, Origin, Reply};
use serde_json::{Value, json};

use super::{cache_status, gateway, get};

const CLIENTS: usize = 100;

/// `CLIENTS` concurrent `GET path`, each on its own connection.
async fn storm(host: &Host, path: &'static str) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let client = host.http1();
        tasks.spawn(async move { client.send(http::Method::GET, path, &[("host", super::HOST)], "").await });
    }
    let mut replies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        replies.push(done.expect("client task").unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", host.logs())));
    }
    replies
}

/// A host with `config` in front of an origin answering `/hot` slowly with `cache_control`.
async fn slow_origin(cache_control: &str, config: Value) -> (Origin, Host) {
    let origin = Origin::start().await;
    origin.set("/hot", Answer::cached(cache_control, "hot object").delay(Duration::from_millis(300)));
    let host = gateway(&origin, config).await;
    (origin, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_misses_make_one_origin_request() {
    let (origin, host) = slow_origin("max-age=60", json!({})).await;
    let replies = storm(&host, "/hot").await;
    for reply in &replies {
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "hot object".to_owned()), "{}", cache_status(reply));
    }
    assert_eq!(origin.hits("/hot"), 1, "one leader went to the origin");
    assert_eq!(get(&host, "/hot").await.text(), "hot object");
    assert_eq!(origin.hits("/hot"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_coalescing_each_miss_goes_to_the_origin() {
    let (origin, host) = slow_origin("max-age=60", json!({ "coalesce": false })).await;
    let replies = storm(&host, "/hot").await;
    assert!(replies.iter().all(|r| r.status == 200 && r.text() == "hot object"));
    assert!(origin.hits("/hot") > 1, "concurrent misses each went to the origin: {}", origin.hits("/hot"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_go_to_the_origin_when_the_answer_is_not_storable() {
    let (origin, host) = slow_origin("no-store", json!({})).await;
    let replies = storm(&host, "/hot").await;
    assert!(replies.iter().all(|r| r.status == 200 && r.text() == "hot object"));
    assert_eq!(origin.hits("/hot"), CLIENTS, "nothing to share: every request reached the origin");
}
