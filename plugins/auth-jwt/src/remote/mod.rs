//! Key sets fetched over HTTP (`jwks_url`, `oidc_discovery`): fetched at
//! start, refreshed on a [`Schedule`], and on demand when a token names a kid
//! no key has (at most once per `min_refresh_interval`; concurrent requests
//! wait for the same fetch). A failed fetch keeps the last good set in
//! service, logs a warning and counts a failure; a good one replaces the set
//! whole, so a rotated key is used without a restart.

pub mod discovery;
pub mod fetch;
pub mod jwks;
pub mod schedule;

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{FutureExt, future::Shared};
use jsonwebtoken::Validation;

use crate::{
    config::RemoteSettings,
    error::KeyError,
    keys::{Location, RemoteSource},
    store::{KeySet, Keys},
};
pub use fetch::{BoxFuture, Fetch, Fetched, HostFetch};
use schedule::Schedule;

/// A fetch in progress that several requests may wait for; `true` when every
/// source was fetched.
type Flight = Shared<BoxFuture<bool>>;

/// Why a refresh is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The refresh loop's timer (or the first fetch).
    Schedule,
    /// A token named a kid no key has: rate-limited.
    UnknownKid,
}

/// The first URL fetched for `source`: its JWK set, or its issuer's
/// discovery document (what the plugin's grants must allow at load).
pub fn first_url(source: &RemoteSource) -> String {
    match &source.location {
        Location::Jwks(url) => url.clone(),
        Location::Discovery(issuer) => discovery::configuration_url(issuer),
    }
}

/// Where a message goes: the instance's name, for log lines.
#[derive(Clone)]
pub struct Log {
    instance: String,
}

impl Log {
    /// Log lines for the instance called `instance` in the manifest.
    pub fn new(instance: &str) -> Log {
        Log { instance: instance.to_string() }
    }

    /// Writes one warning (the host keeps plugins' stderr with its log).
    pub fn warn(&self, message: &str) {
        eprintln!("WARN covet-auth-jwt [{}]: {message}", self.instance);
    }
}

struct State {
    schedule: Schedule,
    in_flight: Option<Flight>,
}

/// The remote key sets of one instance and how they are kept fresh.
pub struct RemoteKeys {
    sources: Vec<RemoteSource>,
    /// The `jwks_uri` each discovery source found last (so a refresh is one GET).
    discovered: Mutex<Vec<Option<String>>>,
    keys: Arc<Keys>,
    rules: Validation,
    fetcher: Arc<dyn Fetch>,
    state: Mutex<State>,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Called when a refresh drops a key (the filter forgets cached tokens).
    on_removal: Box<dyn Fn() + Send + Sync>,
    log: Log,
}

/// What [`RemoteKeys`] is built from besides its sources.
pub struct Parts {
    /// The key store the sets are installed into.
    pub keys: Arc<Keys>,
    /// The shared claim rules.
    pub rules: Validation,
    /// The HTTP GET.
    pub fetcher: Arc<dyn Fetch>,
    /// Called when a refresh drops a key.
    pub on_removal: Box<dyn Fn() + Send + Sync>,
    /// Log lines.
    pub log: Log,
}

impl RemoteKeys {
    /// The sources of the remote sets (in `keys:` order), fetched with `parts.fetcher`.
    pub fn new(sources: Vec<RemoteSource>, parts: Parts, settings: &RemoteSettings) -> RemoteKeys {
        let Parts { keys, rules, fetcher, on_removal, log } = parts;
        let schedule = Schedule::new(settings.refresh_interval, settings.min_refresh_interval, Instant::now());
        RemoteKeys {
            discovered: Mutex::new(vec![None; sources.len()]),
            sources,
            keys,
            rules,
            fetcher,
            state: Mutex::new(State { schedule, in_flight: None }),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            on_removal,
            log,
        }
    }

    /// Failed fetches since start (one per source per attempt).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The last fetch error, if any fetch failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a fetch of every source, or joins the one in progress. `None`
    /// when `trigger` is an unknown kid and the last fetch was too recent.
    pub fn refresh(self: &Arc<Self>, trigger: Trigger) -> Option<Flight> {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(flight) = &state.in_flight {
            return Some(flight.clone());
        }
        if trigger == Trigger::UnknownKid && !state.schedule.unknown_kid_may_fetch(now) {
            return None;
        }
        state.schedule.started(now);
        let this = Arc::clone(self);
        let fetch: BoxFuture<bool> = Box::pin(async move {
            let outcome = this.fetch_all().await;
            this.finish(outcome)
        });
        let flight = fetch.shared();
        state.in_flight = Some(flight.clone());
        Some(flight)
    }

    /// Records a finished fetch: `Some(max_age)` when every source succeeded.
    fn finish(&self, outcome: Result<Option<Duration>, ()>) -> bool {
        let mut state = self.state();
        state.in_flight = None;
        match outcome {
            Ok(max_age) => state.schedule.succeeded(Instant::now(), max_age),
            Err(()) => state.schedule.failed(Instant::now()),
        }
        outcome.is_ok()
    }

    /// Fetches every source; the shortest `max-age` of them, or `Err` if any failed.
    async fn fetch_all(&self) -> Result<Option<Duration>, ()> {
        let mut outcome = Ok(None);
        for index in 0..self.sources.len() {
            match self.fetch_source(index).await {
                Ok(Some(age)) => {
                    outcome = outcome.map(|shortest: Option<Duration>| Some(shortest.map_or(age, |s| s.min(age))))
                }
                Ok(None) => {}
                Err(error) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    let kept = if self.keys.current().pending() {
                        "no keys yet"
                    } else {
                        "the last good key set stays in use"
                    };
                    self.log.warn(&format!("key refresh failed ({kept}): {error}"));
                    *self.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error.to_string());
                    outcome = Err(());
                }
            }
        }
        outcome
    }

    /// Fetches one source and installs its set; its `max-age`.
    async fn fetch_source(&self, index: usize) -> Result<Option<Duration>, KeyError> {
        let url = self.jwks_url(index).await?;
        let fetched = self.get(&url).await;
        if fetched.is_err() {
            self.discovered_mut()[index] = None;
        }
        let fetched = fetched?;
        let parsed = jwks::parse(&url, &fetched.body, &self.sources[index].listed)?;
        for line in &parsed.skipped {
            self.log.warn(&format!("{url}: {line}"));
        }
        if self.keys.install(index, KeySet::new(parsed.keys, &self.rules)) {
            (self.on_removal)();
        }
        Ok(fetched.max_age)
    }

    /// The JWK set URL of a source, discovering it if needed.
    async fn jwks_url(&self, index: usize) -> Result<String, KeyError> {
        let issuer = match &self.sources[index].location {
            Location::Jwks(url) => return Ok(url.clone()),
            Location::Discovery(issuer) => issuer,
        };
        if let Some(url) = self.discovered_mut()[index].clone() {
            return Ok(url);
        }
        let config_url = discovery::configuration_url(issuer);
        let document = self.get(&config_url).await?;
        let url = discovery::jwks_uri(&config_url, issuer, &document.body)?;
        self.discovered_mut()[index] = Some(url.clone());
        Ok(url)
    }

    /// Fetches every source now (joining a fetch in progress): the first
    /// error when one failed. For `require_keys_at_start`.
    pub async fn fetch_now(self: Arc<Self>) -> Result<(), String> {
        let fetched = match self.refresh(Trigger::Schedule) {
            Some(flight) => flight.await,
            None => false,
        };
        match fetched {
            true => Ok(()),
            false => Err(self.last_error().unwrap_or_else(|| "the key fetch failed".to_string())),
        }
    }

    /// Forgets a fetch in progress (at the instance's shutdown): the flight
    /// holds this value, so keeping it would keep both alive once the host
    /// has dropped the refresh task.
    pub fn close(&self) {
        self.state().in_flight = None;
    }

    fn discovered_mut(&self) -> std::sync::MutexGuard<'_, Vec<Option<String>>> {
        self.discovered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn get(&self, url: &str) -> Result<Fetched, KeyError> {
        self.fetcher.get(url).await.map_err(|reason| KeyError::Fetch { url: url.to_string(), reason })
    }

    /// The refresh loop: fetch when due, then sleep until the next one (with
    /// `sleep`, the host's timer). Runs until the instance is shut down.
    pub async fn run<S, F>(self: Arc<Self>, sleep: S)
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        loop {
            let wait = self.state().schedule.wait(Instant::now());
            if !wait.is_zero() {
                // An unknown-kid fetch may have moved the due time meanwhile: look again.
                sleep(wait).await;
            } else if let Some(flight) = self.refresh(Trigger::Schedule) {
                flight.await;
            }
        }
    }
}
