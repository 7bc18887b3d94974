//! Shared state semantics, the same for both backends: the in-process
//! `MemoryState` and `RedisState` against a real redis-server.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use covet_services::ServiceError;
use covet_services::state::{MemoryState, RedisConfig, RedisState, SharedState, StateHandle, Value};

/// get/set/incr/cas/delete as the trait documents them.
async fn semantics(state: &dyn SharedState) {
    assert_eq!(state.get("ns", "k").await.unwrap(), None);
    state.set("ns", "k", b"v1".to_vec(), None).await.unwrap();
    assert_eq!(state.get("ns", "k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(state.get("other", "k").await.unwrap(), None, "namespaces are separate");

    assert_eq!(state.incr("ns", "n", 5, None).await.unwrap(), 5);
    assert_eq!(state.incr("ns", "n", -2, None).await.unwrap(), 3);
    assert_eq!(state.get("ns", "n").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert!(matches!(state.incr("ns", "k", 1, None).await, Err(ServiceError::Backend(_))), "incr of a non-integer");

    assert!(!state.compare_and_set("ns", "k", Some(b"nope"), Some(b"v2".to_vec()), None).await.unwrap());
    assert!(state.compare_and_set("ns", "k", Some(b"v1"), Some(b"v2".to_vec()), None).await.unwrap());
    assert_eq!(state.get("ns", "k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(!state.compare_and_set("ns", "k", None, Some(b"v3".to_vec()), None).await.unwrap(), "present, absent expected");
    assert!(state.compare_and_set("ns", "fresh", None, Some(b"x".to_vec()), None).await.unwrap());
    assert!(state.compare_and_set("ns", "fresh", Some(b"x"), None, None).await.unwrap(), "None new deletes");
    assert_eq!(state.get("ns", "fresh").await.unwrap(), None);

    assert!(state.delete("ns", "k").await.unwrap());
    assert!(!state.delete("ns", "k").await.unwrap());
    assert_eq!(state.get("ns", "k").await.unwrap(), None);
}

/// On the real clock: a paused one needs tokio's `test-util`, which would
/// give the workspace's tokio a feature set of its own under `cargo test`,
/// and every crate above tokio a second build in CI.
#[tokio::test]
async fn memory_semantics_and_ttl() {
    const TTL: Duration = Duration::from_secs(3);
    let state = MemoryState::new();
    semantics(&state).await;

    state.set("ns", "gone", b"x".to_vec(), Some(Duration::from_millis(500))).await.unwrap();
    let created = Instant::now();
    state.set("ns", "t", b"x".to_vec(), Some(TTL)).await.unwrap();
    assert_eq!(state.incr("ns", "c", 1, Some(TTL)).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A later incr does not extend the TTL set when the key was created.
    assert_eq!(state.incr("ns", "c", 1, Some(TTL)).await.unwrap(), 2);
    assert!(state.get("ns", "t").await.unwrap().is_some(), "alive {:?} into its {TTL:?}", created.elapsed());
    tokio::time::sleep_until((created + TTL + Duration::from_millis(300)).into()).await;
    assert_eq!(state.get("ns", "t").await.unwrap(), None, "expired");
    assert_eq!(state.incr("ns", "c", 1, None).await.unwrap(), 1, "the counter expired and starts again");
    assert!(state.compare_and_set("ns", "t", None, Some(b"y".to_vec()), None).await.unwrap(), "expired counts as absent");
    assert_eq!(state.sweep(), 1, "the sweep removes the expired entry nobody read");
}

#[tokio::test]
async fn memory_refuses_eval() {
    let state = MemoryState::new();
    let result = state.eval("ns", "return 1", &[], &[]).await;
    assert!(matches!(result, Err(ServiceError::Unsupported(_))), "{result:?}");
}

#[tokio::test]
async fn memory_incr_is_atomic_under_concurrency() {
    let state = Arc::new(MemoryState::new());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    state.incr("ns", "c", 1, None).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(state.get("ns", "c").await.unwrap().as_deref(), Some(&b"4000"[..]));
}

#[tokio::test]
async fn handle_denies_ungranted_namespaces() {
    let handle = StateHandle::new(Arc::new(MemoryState::new()), "limiter", vec!["limits".into()]);
    let ns = handle.namespace("limits").unwrap();
    assert_eq!(ns.incr("a", 1, None).await.unwrap(), 1);
    let Err(denied) = handle.namespace("sessions") else { panic!("ungranted namespace allowed") };
    let text = denied.to_string();
    assert!(text.contains("limiter") && text.contains("sessions") && text.contains("state"), "{text}");
}

async fn redis(server: &support::RedisServer) -> RedisState {
    let config = RedisConfig { url: server.url(), timeout: Duration::from_secs(2), prefix: "test:".into() };
    let state = RedisState::connect(config).await.unwrap();
    state.ping().await.unwrap();
    state
}

#[tokio::test]
async fn redis_semantics_ttl_and_eval() {
    let Some(server) = support::RedisServer::start() else { return };
    let state = redis(&server).await;
    semantics(&state).await;

    // TTLs: read back with PTTL from a plain client on the same server (keys are `{prefix}{ns}:{key}`).
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let pttl = async |raw: &mut redis::aio::MultiplexedConnection, key: &str| -> i64 {
        redis::cmd("PTTL").arg(key).query_async(raw).await.unwrap()
    };
    state.set("ns", "t", b"x".to_vec(), Some(Duration::from_secs(60))).await.unwrap();
    assert!(pttl(&mut raw, "test:ns:t").await > 0);
    state.set("ns", "t", b"x".to_vec(), None).await.unwrap();
    assert_eq!(pttl(&mut raw, "test:ns:t").await, -1, "set without TTL clears it");
    state.incr("ns", "c", 1, Some(Duration::from_secs(60))).await.unwrap();
    assert!(pttl(&mut raw, "test:ns:c").await > 0, "incr sets the TTL on creation");
    redis::cmd("PERSIST").arg("test:ns:c").query_async::<()>(&mut raw).await.unwrap();
    state.incr("ns", "c", 1, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(pttl(&mut raw, "test:ns:c").await, -1, "incr of an existing key leaves its TTL alone");
    assert!(state.compare_and_set("ns", "cas", None, Some(b"1".to_vec()), Some(Duration::from_secs(60))).await.unwrap());
    assert!(pttl(&mut raw, "test:ns:cas").await > 0);

    // eval: keys are namespaced, and the script is loaded by EVAL then run by EVALSHA.
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), 7, false}";
    for _ in 0..2 {
        let value = state.eval("ns", script, &["e".into()], &["hello".into()]).await.unwrap();
        assert_eq!(value, Value::Array(vec![Value::Bytes(b"hello".to_vec()), Value::Int(7), Value::Nil]));
    }
    assert_eq!(state.get("ns", "e").await.unwrap().as_deref(), Some(&b"hello"[..]));
    let error = state.eval("ns", "return redis.call('NOSUCHCOMMAND')", &[], &[]).await.unwrap_err();
    assert!(matches!(error, ServiceError::Backend(_)), "{error:?}");
}

#[tokio::test]
async fn redis_down_is_an_error_not_a_hang() {
    let Some(server) = support::RedisServer::start() else { return };
    let url = server.url();
    drop(server);
    let config = RedisConfig { url, timeout: Duration::from_millis(200), prefix: "test:".into() };
    let state = RedisState::connect(config).await.expect("connecting is lazy");
    let error = state.incr("ns", "c", 1, None).await.unwrap_err();
    assert!(matches!(error, ServiceError::Connect { .. } | ServiceError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn redis_bad_url_is_a_config_error() {
    let config = RedisConfig { url: "http://nope".into(), ..RedisConfig::default() };
    let Err(error) = RedisState::connect(config).await else { panic!("accepted a non-redis URL") };
    assert!(matches!(error, ServiceError::Config(_)), "{error:?}");
}
