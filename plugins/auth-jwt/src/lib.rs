//! # covet-auth-jwt
//!
//! A covet filter (`on_request`) that lets a request through only with a valid
//! JWT. It reads the token from `Authorization: Bearer <token>`, verifies the
//! signature with a configured key and the claims (`exp`, `nbf`, `iss`, `aud`,
//! required claims), then copies the claims into request metadata
//! (`jwt.sub`, …) and, if asked, into headers for the upstream handler.
//! Anything else is answered with a 401 and an RFC 6750 challenge.
//!
//! ```yaml
//! plugins:
//!   auth:
//!     kind: native
//!     path: libcovet_auth_jwt.so
//!     config:
//!       keys:
//!         - { kid: hs-1, algorithms: [HS256], secret_env: JWT_SECRET }
//!         - { kid: rsa-1, algorithms: [RS256, PS256], pem_file: keys/rsa.pub.pem }
//!         - { jwks_file: keys/jwks.json }
//!         - { oidc_discovery: https://issuer.example }   # or { jwks_url: https://issuer.example/jwks }
//!       issuer: https://issuer.example
//!       audience: api
//!       leeway: 30s
//!       forward_claims: { sub: x-user-id }
//!       remote_keys: { refresh_interval: 5m, min_refresh_interval: 10s }
//!     capabilities: { outbound_http: [issuer.example] }
//! ```
//!
//! ## Config
//!
//! | field | default | meaning |
//! |---|---|---|
//! | `keys` | required | key entries, see below; at least one |
//! | `issuer` | none | accepted `iss` (string or list); when set, `iss` is required |
//! | `audience` | none | accepted `aud` (string or list); when set, `aud` is required. Unset: `aud` is not checked |
//! | `leeway` | `30s` | clock skew allowed on `exp`/`nbf` (`"30s"`, `"2m"` or seconds; whole seconds count) |
//! | `required_claims` | `[exp]` | claims every token must have (any top-level name) |
//! | `claims_to_metadata` | `true` | every top-level claim into metadata as `jwt.<claim>` (strings as-is, others as JSON) |
//! | `forward_claims` | `{}` | `claim: header` pairs set on the request; the header is removed when the claim is absent |
//! | `header` | `authorization` | the header carrying the token |
//! | `scheme` | `Bearer` | the scheme before the token (case-insensitive); `""` takes the whole value |
//! | `cache.max_entries` | `10000` | verified tokens kept (until their `exp`); `0` disables the cache |
//! | `remote_keys.refresh_interval` | `5m` | the longest a fetched key set is used before it is fetched again |
//! | `remote_keys.min_refresh_interval` | `10s` | the shortest time between two fetches (unknown-kid refreshes, a short `max-age`, first retry) |
//! | `remote_keys.timeout` | `5s` | limit on each HTTP request of a fetch |
//! | `remote_keys.require_keys_at_start` | `false` | fail the load when the first fetch fails |
//!
//! A key entry has exactly one source:
//!
//! - `secret_env: VAR` — an HMAC secret from an environment variable; `algorithms`
//!   from HS256/HS384/HS512; the secret must be at least as long as the hash
//!   (32/48/64 bytes, RFC 7518 §3.2).
//! - `pem_file: path` — a public key (RSA for RS*/PS*, EC P-256/P-384 for
//!   ES256/ES384, Ed25519 for EdDSA). Private keys are refused. RSA keys need
//!   at least 2048 bits.
//! - `jwks_file: path` — a JWK set; every signing key in it, with its `kid`;
//!   its algorithm is the JWK's `alg`, or else the entry's `algorithms` that fit
//!   its key type. `kid` cannot be set on this entry.
//!
//! - `jwks_url: https://…` — a JWK set fetched through the host's outbound
//!   HTTP service and kept fresh (see *Remote key sets*).
//! - `oidc_discovery: https://issuer` — OpenID Connect discovery: `GET
//!   {issuer}/.well-known/openid-configuration`, whose `issuer` must equal the
//!   configured one exactly, then its `jwks_uri` as for `jwks_url`.
//!
//! `kid` is optional; kids must be unique. `algorithms` pins the key: it
//! verifies only those algorithms, all of one family. Relative paths are
//! relative to the manifest's directory.
//!
//! ## Remote key sets
//!
//! Key sets are fetched through the **host's outbound HTTP service**
//! (`config.host().http()`: the host's pooled client, its `services.http`
//! CA, client certificate and timeouts; see docs/host-services.md), never
//! by a client of the plugin's own, and refreshed by a background task the
//! host owns and cancels when the instance shuts down (a swap, a reload,
//! exit).
//!
//! The grant needed is `capabilities: { outbound_http: [...] }` naming the
//! host (any port) or `host:port` of every `jwks_url` and `oidc_discovery`
//! issuer, and of the discovered `jwks_uri` when it lives elsewhere. The
//! configured URLs are checked when the plugin loads, before anything is
//! sent: a missing grant fails the load, and `covet check`, with
//! `keys: https://id.example/jwks cannot be fetched: plugin 'auth' may not
//! use outbound HTTP to host 'id.example:443': add it to the plugin's
//! capabilities: { outbound_http: [...] } in the manifest`. (A discovered
//! `jwks_uri` on an ungranted host is only known at the fetch: it fails
//! like any other fetch, with the same message in the warning.)
//!
//! A complete manifest (`covet check --plugins auth.yaml`, then `covet host
//! --plugins auth.yaml`; the paths are where `cargo build --release` puts
//! the plugins):
//!
//! ```yaml
//! listen:
//!   - addr: 127.0.0.1:8080
//! plugins:
//!   auth:
//!     kind: native
//!     path: target/release/libcovet_auth_jwt.so
//!     config:
//!       keys:
//!         - { oidc_discovery: "https://login.example.com/realms/main" }
//!       issuer: "https://login.example.com/realms/main"
//!       audience: api
//!       remote_keys: { refresh_interval: 10m, timeout: 3s, require_keys_at_start: true }
//!     capabilities:
//!       outbound_http: [login.example.com]
//!   api:
//!     kind: native
//!     path: target/release/libcovet_static_response.so
//!     config: { body: "hello, authenticated caller\n" }
//! routes:
//!   - path: /api
//!     filters: [auth]
//!     handler: api
//! ```
//!
//! The set is fetched when the instance starts,
//! then again every `refresh_interval` (sooner when the response's
//! `Cache-Control: max-age` says so, never sooner than
//! `min_refresh_interval`). A token naming a kid no key has triggers one
//! fetch, at most once per `min_refresh_interval`; concurrent requests wait
//! for the same fetch. So a rotated key is used without a restart, and a key
//! the issuer dropped stops verifying (cached tokens are forgotten) after the
//! next fetch.
//!
//! While the issuer is down, the last good set stays in use; every failed
//! fetch is logged as a warning and counted, and retries back off from
//! `min_refresh_interval` up to `refresh_interval`. Keys of a fetched set this
//! plugin cannot use (another key type, an encryption key, a symmetric `oct`
//! key, RSA under 2048 bits, a repeated kid) are skipped with a warning; a
//! set with no usable key counts as a failed fetch. A JWK without `alg` is
//! pinned to the entry's `algorithms` of its key type.
//!
//! Starting while the issuer is down: by default the load succeeds (a
//! gateway should not refuse to start, or to reload, because an identity
//! provider blinked), and until the first set arrives a token that no local
//! key verifies gets a **503** `SERVICE_UNAVAILABLE` ("signing keys are not
//! available yet", `Retry-After: 1`) rather than a 401, since the token may
//! well be good. With `require_keys_at_start: true` the set is fetched
//! during `init` (which waits on it through the host's `Host::block_on`,
//! each request limited by `timeout`), and the load fails instead, naming
//! the URL and the error; `covet check` fetches it too.
//!
//! A fetch is a `GET` with `Accept: application/json`; anything but a `200`
//! within `timeout` (head and body), or a body over 1 MiB, is a failed
//! fetch. `Cache-Control: max-age` (or `no-cache`/`no-store`, as 0) bounds
//! the next refresh, within the two intervals.
//!
//! ## Which key verifies a token
//!
//! A token with a `kid` is verified only by the key with that kid (else
//! "unknown key id"); a token without one by every key whose `algorithms`
//! include the token's `alg`, in order. `alg: none`, unknown algorithms and
//! headers with `crit` are refused.
//!
//! ## Refusals
//!
//! No token (or another scheme): 401, `WWW-Authenticate: Bearer`. A bad
//! token: 401, `WWW-Authenticate: Bearer error="invalid_token",
//! error_description="<reason>"`. Both carry the JSON body
//! `{"error":{"code":"UNAUTHORIZED","message":<reason>,"details":null,"request_id":<id>}}`.

mod bearer;
mod cache;
mod claims;
mod config;
mod error;
mod keys;
mod remote;
mod store;
mod verify;

use std::sync::Arc;

use covet_plugin_api::{AsyncPlugin, Config, Flow, Phases, Request, export_plugin, host::Host};

pub use claims::Verified;
pub use error::{ConfigError, KeyError};
pub use remote::{BoxFuture, Fetch, Fetched};
pub use verify::{Claims, Rejection};

use crate::{
    bearer::TokenSource,
    cache::TokenCache,
    claims::Outputs,
    config::Settings,
    keys::RemoteSource,
    remote::{HostFetch, Log, Parts, RemoteKeys, Trigger},
    store::{KeySet, Keys},
    verify::{Verifier, base_validation},
};

/// The auth-jwt filter: one instance per configured plugin.
pub struct AuthJwt {
    source: TokenSource,
    verifier: Verifier,
    outputs: Outputs,
    cache: Arc<TokenCache>,
    remote: Option<Arc<RemoteKeys>>,
}

impl AuthJwt {
    /// Builds the filter from its JSON config, checking everything (local
    /// keys are read and validated here, never per request). Remote key sets
    /// are fetched with `fetcher`; the caller starts [`AuthJwt::refresh_loop`].
    pub fn from_config(config: Config<'_>, fetcher: Option<Arc<dyn Fetch>>) -> Result<AuthJwt, ConfigError> {
        AuthJwt::build(config, |_, _| Ok(fetcher)).map(|(auth, _)| auth)
    }

    /// The filter as the host loads it: remote key sets fetched through the
    /// host's outbound HTTP service (their URLs checked against the plugin's
    /// grants first), refreshed by a task of the instance, and with
    /// `require_keys_at_start` fetched before this returns.
    pub fn with_host(config: Config<'_>, host: Host) -> Result<AuthJwt, ConfigError> {
        let fetcher = |settings: &Settings, sources: &[RemoteSource]| {
            if sources.is_empty() {
                return Ok(None);
            }
            for url in sources.iter().map(remote::first_url) {
                host.http().check(&url).map_err(|e| ConfigError::NotGranted { url, reason: e.to_string() })?;
            }
            Ok(Some(Arc::new(HostFetch::new(host.clone(), settings.remote_keys.timeout)) as Arc<dyn Fetch>))
        };
        let (auth, required) = AuthJwt::build(config, fetcher)?;
        if let Some(remote) = &auth.remote {
            if required {
                let first = Arc::clone(remote).fetch_now();
                host.block_on(first).map_err(ConfigError::Host)?.map_err(ConfigError::FirstFetch)?;
            }
            let sleeper = host.clone();
            let sleep = move |wait| {
                let host = sleeper.clone();
                // Past shutdown the task is being dropped: never wake again.
                async move {
                    if host.sleep(wait).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            host.spawn(Arc::clone(remote).run(sleep)).map_err(ConfigError::Host)?;
        }
        Ok(auth)
    }

    /// Builds the filter, with the fetcher `fetcher` makes for the remote
    /// sources (none: no fetcher); also whether the keys are required at start.
    fn build(
        config: Config<'_>,
        fetcher: impl FnOnce(&Settings, &[RemoteSource]) -> Result<Option<Arc<dyn Fetch>>, ConfigError>,
    ) -> Result<(AuthJwt, bool), ConfigError> {
        let mut settings: Settings = config.parse().map_err(ConfigError::Parse)?;
        settings.check()?;
        for key in &mut settings.keys {
            key.pem_file = key.pem_file.take().map(|p| config.resolve(p));
            key.jwks_file = key.jwks_file.take().map(|p| config.resolve(p));
        }
        let loaded = keys::load_all(&settings.keys)?;
        let rules = base_validation(&settings);
        let keys = Arc::new(Keys::new(KeySet::new(loaded.local, &rules), loaded.remote.len()));
        let cache = Arc::new(TokenCache::new(settings.cache.max_entries));
        let fetcher = fetcher(&settings, &loaded.remote)?;
        let remote = match (loaded.remote.is_empty(), fetcher) {
            (true, _) => None,
            (false, None) => return Err(ConfigError::NoHttpService),
            (false, Some(fetcher)) => {
                let cache = Arc::clone(&cache);
                let on_removal = Box::new(move || cache.clear());
                let log = Log::new(config.instance());
                let parts = Parts { keys: Arc::clone(&keys), rules, fetcher, on_removal, log };
                Some(Arc::new(RemoteKeys::new(loaded.remote, parts, &settings.remote_keys)))
            }
        };
        let auth = AuthJwt {
            source: TokenSource::new(&settings.header, &settings.scheme),
            verifier: Verifier::new(keys, &settings),
            outputs: Outputs {
                claims_to_metadata: settings.claims_to_metadata,
                forward: settings.forward_claims.into_iter().collect(),
            },
            cache,
            remote,
        };
        Ok((auth, settings.remote_keys.require_keys_at_start))
    }

    /// Verifies one token with the keys at hand, from the cache when it was
    /// seen before. Never waits.
    pub fn authenticate(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        if let Some(hit) = self.cache.get(token) {
            return Ok(hit);
        }
        let verified = Arc::new(self.outputs.prepare(self.verifier.verify(token)?));
        self.cache.insert(token, &verified);
        Ok(verified)
    }

    /// [`AuthJwt::authenticate`], and when the token names a kid no key has
    /// (or no remote set has arrived yet), one refresh of the remote key sets
    /// (rate-limited, shared with concurrent requests) and a second try.
    pub async fn authenticate_fetching(&self, token: &str) -> Result<Arc<Verified>, Rejection> {
        let first = self.authenticate(token);
        let Err(Rejection::UnknownKid | Rejection::KeysUnavailable) = first else { return first };
        let Some(flight) = self.remote.as_ref().and_then(|r| r.refresh(Trigger::UnknownKid)) else { return first };
        flight.await;
        self.authenticate(token)
    }

    /// The refresh loop of the remote key sets (`None` without any): it
    /// fetches at once, then on schedule; `sleep` is the host's timer. The
    /// host runs it as a task of the instance, cancelled at shutdown.
    pub fn refresh_loop<S, F>(&self, sleep: S) -> Option<impl Future<Output = ()> + Send + 'static>
    where
        S: Fn(std::time::Duration) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        self.remote.clone().map(|remote| remote.run(sleep))
    }

    /// Fetches every remote key set now, for `require_keys_at_start`: the
    /// first error, if any source failed.
    pub async fn fetch_now(&self) -> Result<(), String> {
        match &self.remote {
            Some(remote) => Arc::clone(remote).fetch_now().await,
            None => Ok(()),
        }
    }

    /// Failed key fetches since start (0 without remote key sets).
    pub fn key_fetch_failures(&self) -> u64 {
        self.remote.as_ref().map_or(0, |r| r.failures())
    }

    /// The filter without waiting: `None` only when the token names a kid no
    /// key has (or no remote key set has arrived yet) and a remote set could
    /// be refreshed: that case goes to [`AuthJwt::filter`], which waits.
    fn filter_now(&self, req: &mut Request<'_>) -> Option<Flow> {
        let outcome = match self.source.token(req) {
            Some(token) => self.authenticate(token),
            None => return Some(Flow::Respond(self.source.missing(req.request_id()))),
        };
        if matches!(outcome, Err(Rejection::UnknownKid | Rejection::KeysUnavailable)) && self.remote.is_some() {
            return None;
        }
        Some(self.decide(outcome, req))
    }

    fn decide(&self, outcome: Result<Arc<Verified>, Rejection>, req: &mut Request<'_>) -> Flow {
        match outcome {
            Ok(verified) => {
                self.outputs.apply(&verified, req);
                Flow::Continue
            }
            Err(Rejection::KeysUnavailable) => {
                Flow::Respond(self.source.unavailable(&Rejection::KeysUnavailable.reason(), req.request_id()))
            }
            Err(rejection) => Flow::Respond(self.source.invalid(&rejection.reason(), req.request_id())),
        }
    }

    async fn filter(&self, req: &mut Request<'_>) -> Flow {
        let outcome = match self.source.token(req) {
            Some(token) => self.authenticate_fetching(token).await,
            None => return Flow::Respond(self.source.missing(req.request_id())),
        };
        self.decide(outcome, req)
    }
}

impl AsyncPlugin for AuthJwt {
    const PHASES: Phases = Phases::ON_REQUEST;

    fn init(config: Config<'_>) -> Result<Self, String> {
        let host = config.host();
        AuthJwt::with_host(config, host).map_err(|e| e.to_string())
    }

    /// Known keys (the common case) decide here, with no future.
    fn on_request_now(&self, req: &mut Request<'_>) -> Option<Flow> {
        self.filter_now(req)
    }

    fn on_request(&self, req: &mut Request<'_>) -> impl Future<Output = Flow> + Send {
        self.filter(req)
    }

    fn shutdown(&self) {
        if let Some(remote) = &self.remote {
            remote.close();
        }
    }
}

export_plugin!(async AuthJwt);
