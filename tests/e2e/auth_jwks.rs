//! auth-jwt with remote keys, behind the real host: a local hyper server
//! (port 0) serves an OIDC discovery document and a JWK set the test can
//! rotate or take down; the plugin fetches them through the host's outbound
//! HTTP service. A rotated key is accepted without a restart (on an unknown
//! kid, and by the scheduled refresh), the last good set keeps serving while
//! the issuer is down, `require_keys_at_start` fetches during init (in the
//! host and in `covet check`), and a URL the manifest does not grant fails
//! the load — and `covet check` — with a clear error.

use std::{
    convert::Infallible,
    time::{Duration, Instant},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use covet_e2e::{Host, Reply};
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::{body::Bytes, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    common::{PATIENCE, labelled},
    tokens::{bearer, key_file, now, signed},
};

/// What the issuer serves: the key set (by kid from the fixture set) and a hit count.
struct Issuer {
    addr: SocketAddr,
    kids: Arc<Mutex<Vec<&'static str>>>,
    jwks_hits: Arc<AtomicUsize>,
    server: JoinHandle<()>,
}

impl Issuer {
    /// Starts serving `kids` on 127.0.0.1:0.
    async fn start(kids: &[&'static str]) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kids = Arc::new(Mutex::new(kids.to_vec()));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let state = (Arc::clone(&kids), Arc::clone(&jwks_hits), format!("http://{addr}"));
        let server = tokio::spawn(serve(listener, state));
        Issuer { addr, kids, jwks_hits, server }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `kids` from now on (a key rotation).
    fn rotate(&self, kids: &[&'static str]) {
        *self.kids.lock().unwrap() = kids.to_vec();
    }

    /// Stops accepting and drops every open connection.
    fn stop(&self) {
        self.server.abort();
    }
}

type State = (Arc<Mutex<Vec<&'static str>>>, Arc<AtomicUsize>, String);

/// Accepts connections until aborted; aborting drops the connections too.
async fn serve(listener: TcpListener, state: State) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| answer(req, state.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    (kids, hits, base): State,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.uri().path() {
        "/.well-known/openid-configuration" => json!({ "issuer": base, "jwks_uri": format!("{base}/jwks") }),
        "/jwks" => {
            hits.fetch_add(1, Ordering::SeqCst);
            let kids = kids.lock().unwrap().clone();
            json!({ "keys": kids.iter().map(|kid| fixture_jwk(kid)).collect::<Vec<_>>() })
        }
        _ => return Ok(Response::builder().status(404).body(Full::default()).unwrap()),
    };
    let resp = Response::builder().header("content-type", "application/json").body(Full::from(body.to_string()));
    Ok(resp.unwrap())
}

/// The public JWK `kid` of `tests/fixtures/keys/jwks.json`.
fn fixture_jwk(kid: &str) -> Value {
    let set: Value = serde_json::from_str(&std::fs::read_to_string(key_file("jwks.json")).unwrap()).unwrap();
    set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).cloned().unwrap()
}

/// A manifest: auth with `keys`, granted `outbound` hosts, in front of an echo handler.
fn manifest(keys: Value, issuer: &str, outbound: &[String], extra: Value) -> String {
    let mut config = json!({ "keys": keys, "issuer": issuer, "remote_keys": { "min_refresh_interval": "1ms" } });
    config["remote_keys"].as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let auth = covet_e2e::plugin("covet-auth-jwt").display().to_string();
    let echo = covet_e2e::plugin("covet-test-plugin").display().to_string();
    format!(
        "listen:\n  - addr: 127.0.0.1:0\nplugins:\n  auth:\n    kind: native\n    path: {auth:?}\n    config: {config}\n    \
         capabilities: {{ outbound_http: {outbound:?} }}\n  echo:\n    kind: native\n    path: {echo:?}\n    config: {}\n\
         routes:\n  - path: /me\n    filters: [auth]\n    handler: echo\n",
        labelled("echo")
    )
}

async fn start(manifest: String) -> Host {
    let host = Host::builder(manifest).start();
    host.wait_ready().await;
    host
}

/// A token for `sub` from `issuer`, signed by fixture key `kid` (`rsa-1` or `ec256-1`).
fn token(issuer: &str, kid: &str, sub: &str) -> String {
    let claims = json!({ "sub": sub, "iss": issuer, "iat": now(), "exp": now() + 600 });
    let (alg, key) = match kid {
        "rsa-1" => (Algorithm::RS256, EncodingKey::from_rsa_pem(&std::fs::read(key_file("rsa.pem")).unwrap())),
        _ => (Algorithm::ES256, EncodingKey::from_ec_pem(&std::fs::read(key_file("ec-p256.pem")).unwrap())),
    };
    signed(alg, Some(kid), &claims, &key.unwrap())
}

async fn get_me(host: &Host, token: &str) -> Reply {
    host.http1().send(Method::GET, "/me", &[("authorization", &bearer(token))], "").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_accepted_without_a_restart_through_discovery() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let iss = issuer.url();
    let host = start(manifest(json!([{ "oidc_discovery": iss }]), &iss, &[issuer.addr.to_string()], json!({}))).await;

    let reply = get_me(&host, &token(&iss, "rsa-1", "alice")).await;
    assert_eq!(reply.status, 200, "{}\nlogs:\n{}", reply.text(), host.logs());
    assert_eq!(reply.json()["metadata"]["jwt.sub"], "alice");

    issuer.rotate(&["ec256-1"]);
    let before = issuer.jwks_hits.load(Ordering::SeqCst);
    let reply = get_me(&host, &token(&iss, "ec256-1", "bob")).await;
    assert_eq!(reply.status, 200, "the new kid: {}\nlogs:\n{}", reply.text(), host.logs());
    assert!(issuer.jwks_hits.load(Ordering::SeqCst) > before, "the unknown kid fetched the set again");

    let reply = get_me(&host, &token(&iss, "rsa-1", "carol")).await;
    assert_eq!(reply.status, 401, "the rotated-out key no longer verifies: {}", reply.text());
    assert_eq!(reply.json()["error"]["message"], "unknown key id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_key_set_keeps_serving_while_the_issuer_is_down() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let iss = issuer.url();
    let keys = json!([{ "jwks_url": format!("{iss}/jwks") }]);
    let host = start(manifest(keys, &iss, &[issuer.addr.to_string()], json!({}))).await;
    let reply = get_me(&host, &token(&iss, "rsa-1", "alice")).await;
    assert_eq!(reply.status, 200, "{}\nlogs:\n{}", reply.text(), host.logs());

    issuer.stop();
    let reply = get_me(&host, &token(&iss, "ec256-1", "mallory")).await;
    assert_eq!(reply.status, 401, "an unknown kid while the issuer is down: {}", reply.text());
    let warning = host.log_line(&["auth", "key refresh failed", "the last good key set stays in use"]).await;
    assert!(warning.is_some(), "no warning for the failed fetch; logs:\n{}", host.logs());

    let reply = get_me(&host, &token(&iss, "rsa-1", "bob")).await;
    assert_eq!(reply.status, 200, "a known kid while the issuer is down: {}", reply.text());
    assert_eq!(reply.json()["metadata"]["jwt.sub"], "bob");
}

#[test]
fn a_jwks_url_the_manifest_does_not_grant_fails_the_load() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = runtime.block_on(Issuer::start(&["rsa-1"]));
    let iss = issuer.url();
    let keys = json!([{ "jwks_url": format!("{iss}/jwks") }]);
    let strict = json!({ "require_keys_at_start": true });
    let exited = Host::builder(manifest(keys, &iss, &["example.com".to_string()], strict)).run_to_exit(PATIENCE);
    assert!(!exited.status.success(), "the host started:\n{}", exited.stderr);
    assert!(exited.stderr.contains(&format!("{iss}/jwks")), "the error names the URL:\n{}", exited.stderr);
    assert!(exited.stderr.contains("outbound_http"), "the error names the grant:\n{}", exited.stderr);
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 0, "a denied request never left the host");
}

/// Waits (up to [`PATIENCE`]) until the issuer has served the key set `n` times.
async fn wait_for_hits(issuer: &Issuer, n: usize) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let hits = issuer.jwks_hits.load(Ordering::SeqCst);
        if hits >= n || Instant::now() > deadline {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_refresh_fetches_without_requests_and_drops_a_rotated_out_key() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let iss = issuer.url();
    let keys = json!([{ "jwks_url": format!("{iss}/jwks") }]);
    let schedule = json!({ "refresh_interval": "20ms" });
    let host = start(manifest(keys, &iss, &[issuer.addr.to_string()], schedule)).await;
    let hits = wait_for_hits(&issuer, 3).await;
    assert!(hits >= 3, "the set was fetched {hits} times with no request; logs:\n{}", host.logs());

    issuer.rotate(&["ec256-1"]);
    let rotated_at = issuer.jwks_hits.load(Ordering::SeqCst);
    let hits = wait_for_hits(&issuer, rotated_at + 2).await;
    assert!(hits >= rotated_at + 2, "no scheduled fetch after the rotation; logs:\n{}", host.logs());
    let reply = get_me(&host, &token(&iss, "rsa-1", "carol")).await;
    assert_eq!(reply.status, 401, "the rotated-out key still verifies: {}", reply.text());
    let reply = get_me(&host, &token(&iss, "ec256-1", "dave")).await;
    assert_eq!(reply.status, 200, "{}\nlogs:\n{}", reply.text(), host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_required_at_start_are_fetched_before_the_host_serves() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let iss = issuer.url();
    let keys = json!([{ "oidc_discovery": iss }]);
    let strict = json!({ "require_keys_at_start": true, "refresh_interval": "1h" });
    let host = start(manifest(keys, &iss, &[issuer.addr.to_string()], strict)).await;
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 1, "init fetched the set once; logs:\n{}", host.logs());
    let reply = get_me(&host, &token(&iss, "rsa-1", "alice")).await;
    assert_eq!(reply.status, 200, "{}\nlogs:\n{}", reply.text(), host.logs());
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 1, "the request needed no fetch of its own");
}

#[test]
fn keys_required_at_start_from_an_issuer_that_is_down_fail_the_load() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = runtime.block_on(Issuer::start(&["rsa-1"]));
    issuer.stop();
    let iss = issuer.url();
    let keys = json!([{ "jwks_url": format!("{iss}/jwks") }]);
    let strict = json!({ "require_keys_at_start": true });
    let exited = Host::builder(manifest(keys, &iss, &[issuer.addr.to_string()], strict)).run_to_exit(PATIENCE);
    assert!(!exited.status.success(), "the host started:\n{}", exited.stderr);
    assert!(exited.stderr.contains("require_keys_at_start"), "the error names the setting:\n{}", exited.stderr);
    assert!(exited.stderr.contains(&format!("{iss}/jwks")), "the error names the URL:\n{}", exited.stderr);
}

#[test]
fn covet_check_fetches_required_keys_and_reports_an_ungranted_url() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let issuer = runtime.block_on(Issuer::start(&["rsa-1"]));
    let iss = issuer.url();
    let keys = json!([{ "oidc_discovery": iss }]);
    let strict = json!({ "require_keys_at_start": true });
    let checked = Host::builder(manifest(keys.clone(), &iss, &[issuer.addr.to_string()], strict)).check(PATIENCE);
    assert!(checked.status.success(), "check failed:\n{}", checked.stderr);
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 1, "check ran init's fetch:\n{}", checked.stderr);

    let checked = Host::builder(manifest(keys, &iss, &["example.com".to_string()], json!({}))).check(PATIENCE);
    assert!(!checked.status.success(), "check passed an ungranted issuer:\n{}", checked.stdout);
    let discovery = format!("{iss}/.well-known/openid-configuration");
    assert!(checked.stderr.contains(&discovery), "the error names the URL:\n{}", checked.stderr);
    assert!(checked.stderr.contains("outbound_http"), "the error names the grant:\n{}", checked.stderr);
    assert_eq!(issuer.jwks_hits.load(Ordering::SeqCst), 1, "nothing was fetched for the ungranted issuer");
}
