//! Background runs of `Flow::RespondAndContinue` (a cache's
//! stale-while-revalidate): the client is answered at once with the
//! filter's response ([`crate::pipeline`] treats it as `Respond`), and the
//! rest of the chain runs in a task of its own on a copy of the request:
//!
//! ```text
//! on_request(later filters…) → handle(h) → on_response(later filters, reverse) → on_response(issuer)
//! ```
//!
//! then the response body is read to its end and dropped (a cache tees it
//! into its store as it streams).
//!
//! - **The copy.** Method, target, version, headers and metadata as the
//!   issuing filter left them, the client's address, the route and its
//!   params, request id `<id>-bg`; no body and no span (its plugin calls are
//!   not traced).
//! - **When.** Only for a request without a body, and only while fewer than
//!   `limits.background_max` runs are in flight; past it the run is dropped
//!   (the client's answer is the same either way).
//! - **Instances.** The task holds the live instances (`Arc<Instance>`) the
//!   request started on: a swap meanwhile leaves the run on them, and the old
//!   instance retires after it.
//! - **Where.** `tokio::spawn` on the runtime the request runs on: a worker of
//!   the multi-thread runtime (epoll), or the thread's own runtime (io_uring;
//!   a request offloaded to the main runtime because a `blocking` plugin is
//!   live spawns there, where `block_in_place` works). The request's future
//!   is `Send`, so its copy is too.
//! - **Bound.** A run (its phases and the body) ends after
//!   `limits.idle_timeout` at most: nobody waits for it, so nothing else would
//!   end one stuck on a plugin or a trickling body. Running out is a fault.
//!
//! `/metrics` counts `covet_background_runs_total{result="ok|fault|dropped"}`:
//! `fault` is a plugin fault in any phase of the run, a broken body, or the
//! bound reached.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::HeaderValue;
use http_body_util::BodyExt;

use crate::{
    exchange::{Exchange, HostResponse},
    manifest::Limits,
    pipeline::{self, Early, Live},
    registry::Instance,
};

/// The part of a chain a background run needs, on the request's live instances.
pub struct Rest {
    /// The filter that answered with `RespondAndContinue` (its `on_response` runs last).
    pub issuer: Arc<Instance>,
    /// The filters after it, in manifest order.
    pub later: Vec<Arc<Instance>>,
    /// The handler.
    pub handler: Arc<Instance>,
}

/// What became of background runs since the host started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Runs that finished without a fault.
    pub ok: u64,
    /// Runs with a plugin fault, a broken body, or out of time.
    pub fault: u64,
    /// Runs not started: `limits.background_max` were in flight.
    pub dropped: u64,
}

/// The host-wide counters and settings (one host per process).
struct State {
    max: AtomicUsize,
    bound_ms: AtomicU64,
    in_flight: AtomicUsize,
    ok: AtomicU64,
    fault: AtomicU64,
    dropped: AtomicU64,
}

static STATE: State = State {
    max: AtomicUsize::new(64),
    bound_ms: AtomicU64::new(60_000),
    in_flight: AtomicUsize::new(0),
    ok: AtomicU64::new(0),
    fault: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
};

/// Takes `limits.background_max` and the bound (`limits.idle_timeout`);
/// called once at start (a change of `limits` needs a restart).
pub fn configure(limits: &Limits) {
    STATE.max.store(limits.background_max, Ordering::Relaxed);
    STATE.bound_ms.store(u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The counters, for `/metrics`.
pub fn totals() -> Totals {
    Totals {
        ok: STATE.ok.load(Ordering::Relaxed),
        fault: STATE.fault.load(Ordering::Relaxed),
        dropped: STATE.dropped.load(Ordering::Relaxed),
    }
}

/// Starts the background run after filter `issuer` of `live` answered `ex`
/// with `RespondAndContinue`; does nothing when the request has a body, and
/// counts a dropped run when the limit is reached.
pub fn start(live: &Live, issuer: usize, ex: &Exchange) {
    if !ex.body.is_empty() || ex.body_stream.is_some() {
        return;
    }
    let Some(slot) = Slot::take() else {
        STATE.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(request_id = ex.id(), "background run dropped: limits.background_max runs in flight");
        return;
    };
    let rest = live.rest(issuer);
    let copy = copy(ex);
    let bound = Duration::from_millis(STATE.bound_ms.load(Ordering::Relaxed));
    drop(tokio::spawn(async move {
        let _slot = slot;
        let finished = tokio::time::timeout(bound, run(&rest, copy)).await;
        let ok = match finished {
            Ok(ok) => ok,
            Err(_) => {
                tracing::warn!(plugin = %rest.issuer.name, "background run stopped after {bound:?} (limits.idle_timeout)");
                false
            }
        };
        let counter = if ok { &STATE.ok } else { &STATE.fault };
        counter.fetch_add(1, Ordering::Relaxed);
    }));
}

/// A place among the runs in flight, given back on drop (also when the
/// runtime drops the task at shutdown).
struct Slot;

impl Slot {
    fn take() -> Option<Slot> {
        let max = STATE.max.load(Ordering::Relaxed);
        STATE
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        STATE.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bodiless copy of `ex` the run works on.
fn copy(ex: &Exchange) -> Exchange {
    let mut metadata = crate::metadata::Metadata::default();
    ex.metadata.iter().for_each(|(key, value)| metadata.set(key, value));
    Exchange {
        method: ex.method.clone(),
        uri: ex.uri.clone(),
        version: ex.version,
        headers: ex.headers.clone(),
        client: ex.client.clone(),
        route: ex.route.clone(),
        params: ex.params.clone(),
        body: bytes::Bytes::new(),
        body_stream: None,
        metadata,
        request_id: background_id(&ex.request_id),
        span: None,
    }
}

/// `<id>-bg` (the id is visible ASCII, so this is too).
fn background_id(id: &HeaderValue) -> HeaderValue {
    let mut bytes = Vec::with_capacity(id.len() + 3);
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(b"-bg");
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| id.clone())
}

/// The rest of the chain, then the body to its end; whether nothing faulted.
/// A later filter answering (`Respond`, or `RespondAndContinue`: no run
/// within a run) stops it as in a request: the filters that passed, then
/// the issuer, run `on_response` on its answer.
async fn run(rest: &Rest, mut ex: Exchange) -> bool {
    let (mut timings, mut clock) = (None, crate::clock::now_ns());
    let (passed, early) = pipeline::request_phase(&rest.later, &mut ex, &mut timings, None, &mut clock).await;
    let (mut resp, mut faulted) = match early {
        None => pipeline::handle_phase(&rest.handler, &mut ex, &mut timings, None, &mut clock).await,
        Some(Early::Respond(resp) | Early::Background(resp)) => (resp, false),
        Some(Early::Fault(resp)) => (resp, true),
    };
    for filter in rest.later[..passed].iter().rev().chain(std::iter::once(&rest.issuer)) {
        faulted |= pipeline::response_phase(filter, &mut ex, &mut resp, &mut timings, None, &mut clock).await;
    }
    if let Err(e) = drain(resp).await {
        tracing::warn!(plugin = %rest.issuer.name, request_id = ex.id(), "background run: the response body broke off: {e}");
        faulted = true;
    }
    !faulted
}

/// Reads the response body to its end, chunk by chunk, keeping nothing.
async fn drain(resp: HostResponse) -> Result<(), crate::exchange::BodyError> {
    let HostResponse { body, stream, .. } = resp;
    let Some(source) = stream.and_then(|s| s.take()) else { return Ok(()) };
    let mut body = crate::service::Body::streaming(body, Some(source));
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_background_id_ends_with_bg() {
        let id = HeaderValue::from_static("01HZX-abc");
        assert_eq!(background_id(&id), "01HZX-abc-bg");
    }

    #[test]
    fn the_copy_keeps_the_request_but_not_its_body() {
        let mut ex = Exchange {
            method: http::Method::GET,
            uri: "/a?b=1".parse().unwrap(),
            version: http::Version::HTTP_2,
            headers: http::HeaderMap::new(),
            client: Arc::from("127.0.0.1:1"),
            route: Arc::from("/a"),
            params: vec![("id".into(), "7".into())],
            body: bytes::Bytes::from_static(b"x"),
            body_stream: None,
            metadata: Default::default(),
            request_id: HeaderValue::from_static("r1"),
            span: None,
        };
        ex.headers.insert("x-k", HeaderValue::from_static("v"));
        ex.metadata.set("cache.key", "example.com/a?b=1");
        let copy = copy(&ex);
        assert_eq!((copy.method.clone(), copy.uri.to_string(), copy.version), (http::Method::GET, "/a?b=1".to_owned(), http::Version::HTTP_2));
        assert_eq!(copy.headers["x-k"], "v");
        assert_eq!(copy.metadata.get("cache.key"), Some("example.com/a?b=1"));
        assert_eq!((&*copy.client, &*copy.route, &copy.params[..]), ("127.0.0.1:1", "/a", &[("id".to_owned(), "7".to_owned())][..]));
        assert!(copy.body.is_empty() && copy.body_stream.is_none());
        assert_eq!(copy.id(), "r1-bg");
    }

    #[test]
    fn slots_stop_at_the_limit_and_come_back_on_drop() {
        // The only test touching the process-wide state.
        STATE.max.store(2, Ordering::Relaxed);
        let (a, b) = (Slot::take(), Slot::take());
        assert!(a.is_some() && b.is_some());
        assert!(Slot::take().is_none(), "a third run past background_max 2");
        drop(a);
        assert!(Slot::take().is_some(), "a slot given back is free again");
        STATE.max.store(64, Ordering::Relaxed);
    }
}
