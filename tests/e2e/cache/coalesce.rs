//! Request coalescing: concurrent misses on one key send one request to the
//! origin (the leader's), and every waiter is answered from its stored
//! result; with `coalesce: false` each miss goes to the origin. A response
//! that is not storable sends the waiters to the origin themselves, and so
//! does a leader slower than `lock_timeout`.

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

/// Ten concurrent `GET /hot` in the background, answered once the test releases the origin.
fn background_storm(host: &Host) -> tokio::task::JoinHandle<Vec<Result<Reply, String>>> {
    let client = host.http1();
    tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let client = client.clone();
            tasks.spawn(async move { client.send(http::Method::GET, "/hot", &[("host", super::HOST)], "").await });
        }
        tasks.join_all().await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_stop_waiting_after_lock_timeout() {
    for (lock_timeout, gives_up) in [("100ms", true), ("60s", false)] {
        let origin = Origin::start().await;
        origin.set("/hot", Answer::cached("max-age=60", "hot object"));
        let host = gateway(&origin, json!({ "lock_timeout": lock_timeout })).await;
        // The leader's answer is held: past lock_timeout the waiters give up and go to the origin themselves.
        origin.hold();
        let storm = background_storm(&host);
        if gives_up {
            super::eventually("waiters past lock_timeout reach the origin", || async { origin.hits("/hot") > 1 }).await;
        } else {
            super::eventually("the leader reaches the origin", || async { origin.hits("/hot") >= 1 }).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(origin.hits("/hot"), 1, "within lock_timeout the waiters wait for the leader\n{}", host.logs());
        }
        origin.release();
        let replies = storm.await.expect("the storm");
        assert!(replies.iter().all(|r| r.as_ref().is_ok_and(|r| r.status == 200 && r.text() == "hot object")));
    }
}
