//! Remote key sets through the filter, with the HTTP GET replaced by a table
//! of documents (the e2e tests in `tests/e2e/auth_jwks.rs` fetch from a real
//! server through the host): first fetch, rotation on an unknown kid, the
//! rate limit, one shared fetch for concurrent requests, the last good set
//! while the issuer fails, OIDC discovery and its issuer check.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use covet_auth_jwt::{AuthJwt, BoxFuture, Fetch, Fetched};
use covet_plugin_api::{Config, Flow, testing::block_on};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::{claims, fixture, send, token};

const JWKS: &str = "https://id.example/keys";
const ISSUER: &str = "https://id.example";
const DISCOVERY: &str = "https://id.example/.well-known/openid-configuration";

/// Documents by URL; a missing URL is a failed fetch. Counts GETs; an
/// optional gate holds every GET until opened.
#[derive(Default)]
struct Table {
    docs: Mutex<HashMap<String, String>>,
    gets: AtomicUsize,
    gate: Option<Arc<Gate>>,
}

impl Table {
    fn serve(&self, url: &str, doc: &Value) {
        self.docs.lock().unwrap().insert(url.to_string(), doc.to_string());
    }

    fn fail_all(&self) {
        self.docs.lock().unwrap().clear();
    }

    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}

struct Shared(Arc<Table>);

impl Fetch for Shared {
    fn get(&self, url: &str) -> BoxFuture<Result<Fetched, String>> {
        let table = Arc::clone(&self.0);
        let url = url.to_string();
        Box::pin(async move {
            if let Some(gate) = &table.gate {
                GateWait(Arc::clone(gate)).await;
            }
            table.gets.fetch_add(1, Ordering::SeqCst);
            match table.docs.lock().unwrap().get(&url) {
                Some(doc) => Ok(Fetched { body: doc.clone().into_bytes(), max_age: None }),
                None => Err("connection refused".to_string()),
            }
        })
    }
}

/// A latch futures wait on until [`Gate::open`].
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.waiters.lock().unwrap().drain(..).for_each(Waker::wake);
    }
}

struct GateWait(Arc<Gate>);

impl Future for GateWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.open.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.0.waiters.lock().unwrap().push(cx.waker().clone());
        Poll::Pending
    }
}

/// The public JWK of fixture key `kid` (`rsa-1`, `ec256-1`, `ec384-1`, `ed25519-1`).
fn jwk(kid: &str) -> Value {
    let set: Value = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap().clone()
}

fn jwks(kids: &[&str]) -> Value {
    json!({ "keys": kids.iter().map(|k| jwk(k)).collect::<Vec<_>>() })
}

fn filter(table: &Arc<Table>, config: Value) -> AuthJwt {
    let fetcher: Arc<dyn Fetch> = Arc::new(Shared(Arc::clone(table)));
    AuthJwt::from_config(Config::from_json(&config.to_string()), Some(fetcher)).unwrap_or_else(|e| panic!("{e}"))
}

fn remote_config(min_refresh: &str) -> Value {
    json!({ "keys": [{ "jwks_url": JWKS }], "remote_keys": { "min_refresh_interval": min_refresh, "refresh_interval": "2h" } })
}

fn rsa_token() -> String {
    token(Algorithm::RS256, Some("rsa-1"), &claims(json!({})))
}

fn ec_token() -> String {
    token(Algorithm::ES256, Some("ec256-1"), &claims(json!({})))
}

#[test]
fn first_token_fetches_the_set_and_a_rotated_key_is_fetched_on_its_unknown_kid() {
    let table = Arc::new(Table::default());
    table.serve(JWKS, &jwks(&["rsa-1"]));
    let auth = filter(&table, remote_config("1ms"));
    send(&auth, &rsa_token()).assert_continues();
    assert_eq!(table.gets(), 1);
    send(&auth, &rsa_token()).assert_continues();
    assert_eq!(table.gets(), 1, "a known kid fetches nothing");
    table.serve(JWKS, &jwks(&["ec256-1"]));
    std::thread::sleep(Duration::from_millis(2));
    send(&auth, &ec_token()).assert_continues();
    assert_eq!(table.gets(), 2);
    send(&auth, &rsa_token()).assert_refused("unknown key id");
    assert_eq!(table.gets(), 3, "the removed kid is refused (not served from the cache) after one more fetch");
}

#[test]
fn unknown_kids_fetch_at_most_once_per_min_refresh_interval() {
    let table = Arc::new(Table::default());
    table.serve(JWKS, &jwks(&["rsa-1"]));
    let auth = filter(&table, remote_config("1h"));
    send(&auth, &rsa_token()).assert_continues();
    for _ in 0..5 {
        send(&auth, &ec_token()).assert_refused("unknown key id");
    }
    assert_eq!(table.gets(), 1, "the unknown kid was rate-limited");
}

#[test]
fn concurrent_unknown_kid_requests_share_one_fetch() {
    let gate = Arc::new(Gate::default());
    let table = Arc::new(Table { gate: Some(Arc::clone(&gate)), ..Table::default() });
    table.serve(JWKS, &jwks(&["rsa-1", "ec256-1"]));
    let auth = filter(&table, remote_config("1h"));
    let (a, b) = (rsa_token(), ec_token());
    let request = |t: &str| {
        let mut req = covet_plugin_api::testing::TestRequest::get("/").header("authorization", &format!("Bearer {t}"));
        let auth = &auth;
        async move { matches!(auth_flow(auth, &mut req).await, Flow::Continue) }
    };
    let opener = async {
        gate.open();
    };
    let (ok_a, ok_b, ()) = block_on(futures_util::future::join3(request(&a), request(&b), opener));
    assert!(ok_a && ok_b);
    assert_eq!(table.gets(), 1);
}

async fn auth_flow(auth: &AuthJwt, req: &mut covet_plugin_api::testing::TestRequest) -> Flow {
    use covet_plugin_api::AsyncPlugin;
    auth.on_request(&mut req.view()).await
}

#[test]
fn the_last_good_set_keeps_serving_while_fetches_fail() {
    let table = Arc::new(Table::default());
    table.serve(JWKS, &jwks(&["rsa-1"]));
    let auth = filter(&table, remote_config("1ms"));
    block_on(auth.fetch_now()).unwrap();
    table.fail_all();
    std::thread::sleep(Duration::from_millis(2));
    assert!(block_on(auth.fetch_now()).unwrap_err().contains("connection refused"));
    assert_eq!(auth.key_fetch_failures(), 1);
    std::thread::sleep(Duration::from_millis(2));
    send(&auth, &ec_token()).assert_refused("unknown key id");
    assert_eq!(auth.key_fetch_failures(), 2, "the unknown kid tried once more");
    send(&auth, &rsa_token()).assert_continues();
}

#[test]
fn without_any_fetched_set_a_token_gets_503() {
    let table = Arc::new(Table::default());
    let auth = filter(&table, remote_config("1h"));
    let outcome = send(&auth, &rsa_token());
    let Flow::Respond(resp) = &outcome.flow else { panic!("the request went on without keys") };
    assert_eq!(resp.status, 503);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"]["message"], "signing keys are not available yet");
    assert_eq!(auth.key_fetch_failures(), 1);
}

#[test]
fn discovery_finds_the_set_and_checks_the_issuer() {
    let table = Arc::new(Table::default());
    table.serve(DISCOVERY, &json!({ "issuer": ISSUER, "jwks_uri": JWKS }));
    table.serve(JWKS, &jwks(&["ed25519-1"]));
    let config = json!({ "keys": [{ "oidc_discovery": ISSUER }] });
    let auth = filter(&table, config.clone());
    send(&auth, &token(Algorithm::EdDSA, Some("ed25519-1"), &claims(json!({})))).assert_continues();
    assert_eq!(table.gets(), 2, "discovery, then the set");

    table.serve(DISCOVERY, &json!({ "issuer": "https://evil.example", "jwks_uri": JWKS }));
    let auth = filter(&table, config);
    let err = block_on(auth.fetch_now()).unwrap_err();
    assert_eq!(err, format!("{DISCOVERY} names the issuer `https://evil.example`, not the configured `{ISSUER}`"));
}

#[test]
fn remote_entries_need_the_hosts_http_service_and_a_url() {
    let config = json!({ "keys": [{ "jwks_url": JWKS }] });
    let err = AuthJwt::from_config(Config::from_json(&config.to_string()), None).err().unwrap().to_string();
    assert!(err.contains("outbound HTTP service"), "{err}");
    let config = json!({ "keys": [{ "jwks_url": JWKS, "kid": "x" }] });
    let table = Arc::new(Table::default());
    let fetcher: Arc<dyn Fetch> = Arc::new(Shared(table));
    let err = AuthJwt::from_config(Config::from_json(&config.to_string()), Some(fetcher)).err().unwrap().to_string();
    assert!(err.contains("`kid` cannot be set"), "{err}");
}
