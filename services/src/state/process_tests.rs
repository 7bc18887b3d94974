//! [`ProcessState`] against a real [`serve_state`] on a Unix socket in a
//! temporary directory, serving a [`MemoryState`]: the same semantics as the
//! memory backend, errors that keep their kind, many tasks on two clients
//! sharing one counter, a server that goes away and comes back, and one
//! that never answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::super::process_wire::{self as wire, Answer, Op, Reply, WireError};
use super::*;
use crate::state::{MemoryState, serve_state};

const NS: &str = "t";
const SECOND: Duration = Duration::from_secs(1);

/// A server on a socket of its own, serving `backend` until dropped.
struct Server {
    dir: tempfile::TempDir,
    backend: Arc<dyn SharedState>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    fn start(backend: Arc<dyn SharedState>) -> Server {
        let mut server = Server { dir: tempfile::tempdir().unwrap(), backend, task: None };
        server.resume();
        server
    }

    fn memory() -> Server {
        Server::start(Arc::new(MemoryState::new()))
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("state.sock")
    }

    fn client(&self) -> Arc<ProcessState> {
        ProcessState::new(self.path(), SECOND)
    }

    /// Stops serving and closes every connection, as the supervisor's exit would.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same path, with the same backend.
    fn resume(&mut self) {
        let _ = std::fs::remove_file(self.path());
        let listener = UnixListener::bind(self.path()).unwrap();
        self.task = Some(tokio::spawn(serve_state(listener, self.backend.clone())));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test]
async fn get_set_and_delete_round_trip() {
    let server = Server::memory();
    let state = server.client();
    assert_eq!(state.backend(), "process");
    assert_eq!(state.get(NS, "k").await.unwrap(), None);
    state.set(NS, "k", b"v1".to_vec(), None).await.unwrap();
    assert_eq!(state.get(NS, "k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    state.set(NS, "k", vec![0, 255, 10], None).await.unwrap();
    assert_eq!(state.get(NS, "k").await.unwrap(), Some(vec![0, 255, 10]), "any bytes, replaced");
    assert_eq!(state.get("other", "k").await.unwrap(), None, "namespaces are apart");
    assert!(state.delete(NS, "k").await.unwrap());
    assert!(!state.delete(NS, "k").await.unwrap(), "already gone");
    assert_eq!(state.get(NS, "k").await.unwrap(), None);
    assert_eq!(server.backend.get(NS, "k").await.unwrap(), None, "the server's backend agrees");
}

#[tokio::test]
async fn incr_creates_increments_and_sets_the_ttl_only_on_create() {
    let server = Server::memory();
    let state = server.client();
    assert_eq!(state.incr(NS, "n", 5, None).await.unwrap(), 5);
    assert_eq!(state.incr(NS, "n", -2, None).await.unwrap(), 3);
    assert_eq!(state.get(NS, "n").await.unwrap().as_deref(), Some(&b"3"[..]), "counters are decimal text");
    assert_eq!(state.incr(NS, "short", 1, Some(Duration::from_millis(400))).await.unwrap(), 1);
    assert_eq!(state.incr(NS, "short", 1, Some(Duration::from_secs(3600))).await.unwrap(), 2);
    assert_eq!(state.incr(NS, "n", 1, Some(Duration::from_millis(50))).await.unwrap(), 4);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state.get(NS, "short").await.unwrap(), None, "the creating call's TTL was kept");
    assert_eq!(state.get(NS, "n").await.unwrap().as_deref(), Some(&b"4"[..]), "no TTL added to an existing key");
}

#[tokio::test]
async fn backend_errors_keep_their_kind_and_message() {
    let server = Server::memory();
    let state = server.client();
    let err = state.eval(NS, "return 1", &["k".into()], &[]).await.unwrap_err();
    assert!(matches!(&err, ServiceError::Unsupported(what) if what == "eval (Lua scripts)"), "{err:?}");
    assert_eq!(err.to_string(), "eval (Lua scripts) is not supported by this backend");
    state.set(NS, "text", b"abc".to_vec(), None).await.unwrap();
    let err = state.incr(NS, "text", 1, None).await.unwrap_err();
    assert!(matches!(&err, ServiceError::Backend(m) if m.contains("not an integer")), "{err:?}");
}

#[tokio::test]
async fn compare_and_set_has_the_memory_semantics() {
    let server = Server::memory();
    let state = server.client();
    assert!(state.compare_and_set(NS, "c", None, Some(b"1".to_vec()), None).await.unwrap(), "absent as expected");
    assert!(!state.compare_and_set(NS, "c", None, Some(b"x".to_vec()), None).await.unwrap(), "present now");
    assert!(!state.compare_and_set(NS, "c", Some(b"0"), Some(b"x".to_vec()), None).await.unwrap(), "wrong value");
    assert_eq!(state.get(NS, "c").await.unwrap().as_deref(), Some(&b"1"[..]), "failed swaps change nothing");
    assert!(state.compare_and_set(NS, "c", Some(b"1"), Some(b"2".to_vec()), None).await.unwrap());
    assert_eq!(state.get(NS, "c").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert!(!state.compare_and_set(NS, "gone", Some(b"2"), None, None).await.unwrap(), "absent is not a value");
    assert!(state.compare_and_set(NS, "c", Some(b"2"), None, None).await.unwrap(), "None deletes");
    assert_eq!(state.get(NS, "c").await.unwrap(), None);
    let ttl = Some(Duration::from_millis(100));
    assert!(state.compare_and_set(NS, "t", None, Some(b"1".to_vec()), ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(state.get(NS, "t").await.unwrap(), None, "the swap's TTL expired the key");
    assert!(state.compare_and_set(NS, "t", None, Some(b"again".to_vec()), None).await.unwrap(), "expired is absent");
}

#[tokio::test]
async fn set_ttl_expires_the_key() {
    let server = Server::memory();
    let state = server.client();
    state.set(NS, "s", b"v".to_vec(), Some(Duration::from_millis(400))).await.unwrap();
    state.set(NS, "kept", b"v".to_vec(), None).await.unwrap();
    assert!(state.get(NS, "s").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state.get(NS, "s").await.unwrap(), None);
    assert!(!state.delete(NS, "s").await.unwrap(), "an expired key does not count as deleted");
    assert!(state.get(NS, "kept").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_increments_from_two_clients_share_one_counter() {
    let server = Server::memory();
    let clients = [server.client(), server.client()];
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let client = clients[i % 2].clone();
            tokio::spawn(async move { client.incr(NS, "hits", 1, None).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=1000).collect::<Vec<i64>>(), "each increment saw its own value");
    assert_eq!(clients[1].get(NS, "hits").await.unwrap().as_deref(), Some(&b"1000"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_from_plain_threads_are_counted_too() {
    let server = Server::memory();
    let client = server.client();
    let runtime = tokio::runtime::Handle::current();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (client, runtime) = (client.clone(), runtime.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    runtime.block_on(client.incr(NS, "threads", 1, None)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
    }
    assert_eq!(client.get(NS, "threads").await.unwrap().as_deref(), Some(&b"200"[..]));
}

#[tokio::test]
async fn a_server_that_goes_away_fails_operations_until_it_is_back() {
    let mut server = Server::memory();
    let state = server.client();
    state.set(NS, "k", b"before".to_vec(), None).await.unwrap();
    server.stop().await;
    let err = state.get(NS, "k").await.unwrap_err();
    assert!(matches!(err, ServiceError::Connect { .. }), "{err:?}");
    let err = state.incr(NS, "n", 1, None).await.unwrap_err();
    assert!(matches!(err, ServiceError::Connect { .. }), "still gone: {err:?}");
    server.resume();
    assert_eq!(state.get(NS, "k").await.unwrap().as_deref(), Some(&b"before"[..]), "reconnected");
    assert_eq!(state.incr(NS, "n", 1, None).await.unwrap(), 1, "the failed increment never happened");
}

#[tokio::test]
async fn operations_in_flight_when_the_connection_breaks_fail_with_connect() {
    let gated = Gated::new();
    let mut server = Server::start(gated.clone());
    let state = server.client();
    let stuck = tokio::spawn({
        let state = state.clone();
        async move { state.get(NS, "slow").await }
    });
    gated.arrived.notified().await;
    server.stop().await;
    let err = stuck.await.unwrap().unwrap_err();
    assert!(matches!(&err, ServiceError::Connect { reason, .. } if reason.contains("closed")), "{err:?}");
    server.resume();
    state.set(NS, "k", b"v".to_vec(), None).await.unwrap();
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mute.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Accepts and reads, never replies.
    let mute = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    let limit = Duration::from_millis(100);
    let state = ProcessState::new(path, limit);
    let started = Instant::now();
    let err = state.incr(NS, "n", 1, None).await.unwrap_err();
    let expected = |what: &str, after: &Duration| what == "state server INCR" && *after == limit;
    let timed_out = matches!(&err, ServiceError::Timeout { what, after } if expected(what, after));
    assert!(timed_out, "{err:?}");
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
    mute.abort();
}

/// A backend whose `get` of `slow` signals `arrived`, then waits for `gate`.
struct Gated {
    inner: MemoryState,
    arrived: Notify,
    gate: Notify,
}

impl Gated {
    fn new() -> Arc<Gated> {
        Arc::new(Gated { inner: MemoryState::new(), arrived: Notify::new(), gate: Notify::new() })
    }
}

impl SharedState for Gated {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            if key == "slow" {
                self.arrived.notify_one();
                self.gate.notified().await;
            }
            self.inner.get(ns, key).await
        })
    }
    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StateResult<'a, ()> {
        self.inner.set(ns, key, value, ttl)
    }
    fn incr<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64, ttl: Option<Duration>) -> StateResult<'a, i64> {
        self.inner.incr(ns, key, delta, ttl)
    }
    fn compare_and_set<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<Vec<u8>>,
        ttl: Option<Duration>,
    ) -> StateResult<'a, bool> {
        self.inner.compare_and_set(ns, key, expected, new, ttl)
    }
    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> StateResult<'a, bool> {
        self.inner.delete(ns, key)
    }
    fn eval<'a>(
        &'a self,
        ns: &'a str,
        script: &'a str,
        keys: &'a [String],
        args: &'a [String],
    ) -> StateResult<'a, Value> {
        self.inner.eval(ns, script, keys, args)
    }
    fn backend(&self) -> &'static str {
        "gated"
    }
}

#[tokio::test]
async fn a_slow_operation_does_not_hold_up_the_others_on_its_connection() {
    let gated = Gated::new();
    let server = Server::start(gated.clone());
    let state = server.client();
    state.set(NS, "slow", b"late".to_vec(), None).await.unwrap();
    let slow = tokio::spawn({
        let state = state.clone();
        async move { state.get(NS, "slow").await }
    });
    gated.arrived.notified().await;
    for i in 1..=10 {
        assert_eq!(state.incr(NS, "fast", 1, None).await.unwrap(), i, "answered while `slow` waits");
    }
    assert!(!slow.is_finished());
    gated.gate.notify_one();
    assert_eq!(slow.await.unwrap().unwrap().as_deref(), Some(&b"late"[..]));
}

#[tokio::test]
async fn frames_over_the_limit_are_refused_on_both_sides() {
    let server = Server::memory();
    let state = server.client();
    let err = state.set(NS, "big", vec![7; wire::MAX_FRAME / 2], None).await.unwrap_err();
    assert!(matches!(&err, ServiceError::Backend(m) if m.contains("exceeds the limit of 16777216 bytes")), "{err:?}");
    state.set(NS, "small", b"ok".to_vec(), None).await.unwrap();
    // A raw client announcing a 1 GiB frame: the server closes the connection unread.
    let mut raw = UnixStream::connect(server.path()).await.unwrap();
    raw.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(SECOND, raw.read_to_end(&mut rest)).await.expect("the server kept the connection");
    assert_eq!(read.unwrap(), 0, "closed without a reply");
    assert_eq!(state.get(NS, "small").await.unwrap().as_deref(), Some(&b"ok"[..]), "other clients are unaffected");
}

#[tokio::test]
async fn an_unreadable_operation_gets_a_backend_error_reply() {
    let server = Server::memory();
    let mut raw = UnixStream::connect(server.path()).await.unwrap();
    let body = br#"{"id":42,"op":{"op":"flush_all"}}"#;
    raw.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
    raw.write_all(body).await.unwrap();
    let frame = wire::read_frame(&mut raw).await.unwrap().expect("a reply");
    let reply: Reply = serde_json::from_slice(&frame).unwrap();
    assert_eq!(reply.id, 42);
    assert!(matches!(reply.result, Err(WireError::Backend(m)) if m.contains("cannot read this request")));
}

#[test]
fn every_error_variant_survives_the_wire() {
    let errors = [
        ServiceError::Denied { plugin: "p".into(), what: "shared state namespace 'x'".into(), grant: "state" },
        ServiceError::Timeout { what: "redis GET".into(), after: Duration::from_millis(30) },
        ServiceError::Connect { target: "/run/s.sock".into(), reason: "refused".into() },
        ServiceError::Tls("bad cert".into()),
        ServiceError::Http("bad url".into()),
        ServiceError::Unsupported("eval (Lua scripts)".into()),
        ServiceError::Backend("boom".into()),
        ServiceError::Config("bad".into()),
        ServiceError::ShutDown,
        ServiceError::Unavailable { upstream: "u".into(), reason: "down".into() },
        ServiceError::Overloaded { upstream: "u".into(), retry_after: Duration::from_secs(2) },
    ];
    for error in errors {
        let (kind, text) = (error.kind(), error.to_string());
        let json = serde_json::to_vec(&WireError::from(error)).unwrap();
        let back = ServiceError::from(serde_json::from_slice::<WireError>(&json).unwrap());
        assert_eq!((back.kind(), back.to_string()), (kind, text));
    }
}

#[test]
fn frames_are_a_big_endian_length_then_json() {
    let frame = wire::encode(&Reply { id: 7, result: Ok(Answer::Int(3)) }).unwrap();
    let json = br#"{"id":7,"result":{"Ok":{"int":3}}}"#;
    assert_eq!(&frame[..4], &(json.len() as u32).to_be_bytes());
    assert_eq!(&frame[4..], json);
    let op = Op::Get { ns: "a".into(), key: "b".into() };
    assert_eq!(serde_json::to_string(&op).unwrap(), r#"{"op":"get","ns":"a","key":"b"}"#);
}
