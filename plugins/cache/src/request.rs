//! `on_request`: the method and the rules, the primary key, the lookup, and
//! then either an answer from the cache (a hit, a 304 to a conditional
//! client, a stale answer while the entry is refreshed in the background,
//! 504 for `only-if-cached`) or a forward to the origin (a miss, a
//! revalidation, a client's `no-cache`), coalesced with concurrent misses.
//!
//! A fresh L1 hit is decided in [`Cache::request_now`], without a future;
//! waiting on a coalesced leader and the shared tier's read take the
//! `async` path, [`Cache::request_waiting`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covet_plugin_api::{Flow, Request, Response};

use crate::{
    Cache, META_FWD, META_KEY, META_STATUS, META_TOKEN,
    coalesce::{self, Role},
    conditional::{self, Conditions},
    directives::{Directives, pragma_no_cache},
    freshness::{Ask, Use, evaluate},
    key,
    pending::{Fwd, Pending},
    serve::{self, Labels},
    settings::Rule,
    status::Outcome,
    store::Entry,
};

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the request asks of the cache, read once.
pub struct Ctx {
    /// The primary key.
    pub primary: String,
    /// The rule's (or config's) `ttl`.
    pub ttl: Option<Duration>,
    /// What the request's `Cache-Control` asks.
    pub ask: Ask,
    /// `no-cache` (or `Pragma: no-cache`).
    pub no_cache: bool,
    /// `only-if-cached`.
    pub only_if_cached: bool,
    /// The response may be stored (GET, no `no-store`, no `Range`).
    pub storable: bool,
    /// The request carries `Authorization`.
    pub authorized: bool,
}

/// What the lookup found.
pub enum Found {
    /// Nothing under the key.
    Nothing,
    /// The key varies and this variant is not stored (the variant's key).
    OtherVariant(String),
    /// The entry for this request.
    Entry(Entry),
}

/// What the cache does with the request.
enum Step {
    /// Decided.
    Flow(Flow),
    /// A leader is fetching this key: wait for it (async only).
    Wait(std::sync::Arc<coalesce::Flight>),
    /// The lookup needs the shared tier (async only).
    Shared,
}

impl Cache {
    /// `on_request` without a future: everything but waiting (`None`).
    pub fn request_now(&self, req: &mut Request<'_>) -> Option<Flow> {
        let ctx = match self.prepare(req) {
            Ok(ctx) => ctx,
            Err(flow) => return Some(flow),
        };
        match self.step(req, ctx, true, false) {
            Step::Flow(flow) => Some(flow),
            Step::Wait(_) | Step::Shared => None,
        }
    }

    /// `on_request` that may wait: the shared tier, a coalesced leader.
    pub async fn request_waiting(&self, req: &mut Request<'_>) -> Flow {
        let ctx = match self.prepare(req) {
            Ok(ctx) => ctx,
            Err(flow) => return flow,
        };
        let step = if self.settings.shared {
            match self.find_shared(req, &ctx.primary).await {
                Found::Nothing => self.step(req, ctx, false, true),
                found => self.decide(req, ctx, found, true, now_ms()),
            }
        } else {
            self.step(req, ctx, false, true)
        };
        match step {
            Step::Flow(flow) => flow,
            Step::Shared => unreachable!("the shared tier was read"),
            Step::Wait(flight) => {
                coalesce::wait(&flight, self.settings.lock_timeout, self.host.as_ref()).await;
                let Ok(ctx) = self.prepare(req) else { unreachable!("prepared once") };
                let found = self.find_local(req, &ctx.primary);
                match self.decide(req, ctx, found, false, now_ms()) {
                    Step::Flow(flow) => flow,
                    Step::Wait(_) | Step::Shared => unreachable!("a request that waited does not lead, so never waits again"),
                }
            }
        }
    }

    /// The lookup and the decision, or what to wait for.
    fn step(&self, req: &mut Request<'_>, ctx: Ctx, sync: bool, shared_read: bool) -> Step {
        let found = self.find_local(req, &ctx.primary);
        let now = now_ms();
        if sync && self.settings.shared && matches!(found, Found::Nothing) && !shared_read {
            return Step::Shared;
        }
        if let Found::Entry(e) = &found {
            // A stale entry being revalidated by another request: wait for its result too.
            let revalidating = self.settings.coalesce && ctx.storable && !ctx.no_cache;
            if revalidating
                && matches!(evaluate(&e.meta.policy, e.meta.stored_at_ms, now, &ctx.ask), Use::Revalidate { .. })
                && let Some(Role::Wait(flight)) = self.would_wait(&e.meta.key)
            {
                return Step::Wait(flight);
            }
        }
        if let Some(flight_key) = self.coalesced_key(&ctx, &found)
            && let Some(Role::Wait(flight)) = self.would_wait(&flight_key)
        {
            return Step::Wait(flight);
        }
        self.decide(req, ctx, found, true, now)
    }

    /// Steps aside (bypass, method) or reads what the request asks.
    fn prepare(&self, req: &mut Request<'_>) -> Result<Ctx, Flow> {
        let method = req.method();
        let head = method == "HEAD";
        if method != "GET" && !head {
            let unsafe_method = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE");
            if unsafe_method {
                let primary = key::primary(req, &self.settings);
                req.set_metadata(META_KEY, &primary);
            }
            req.set_metadata(META_STATUS, "bypass");
            req.set_metadata(META_FWD, if unsafe_method { "invalidate" } else { "method" });
            return Err(Flow::Continue);
        }
        let rule = self.settings.rules.iter().find(|r| rule_matches(r, req));
        if rule.is_some_and(|r| r.bypass) {
            req.set_metadata(META_STATUS, "bypass");
            req.set_metadata(META_FWD, "bypass");
            return Err(Flow::Continue);
        }
        let primary = key::primary(req, &self.settings);
        let (d, no_cache) = match req.header("cache-control") {
            Some(cc) => {
                let d = Directives::parse(cc);
                let no_cache = d.no_cache;
                (d, no_cache)
            }
            None => (Directives::default(), req.header("pragma").is_some_and(pragma_no_cache)),
        };
        // `Range` and `Authorization` matter only to a forward: read there (see `forwarding`).
        let storable = !head && !d.no_store;
        Ok(Ctx {
            primary,
            ttl: rule.and_then(|r| r.ttl.map(|t| t.0)).or(self.settings.ttl),
            ask: Ask::from(&d),
            no_cache,
            only_if_cached: d.only_if_cached,
            storable,
            authorized: false,
        })
    }

    /// `ctx` completed with what only a forward needs (kept off the hit path).
    fn forwarding(req: &Request<'_>, mut ctx: Ctx) -> Ctx {
        ctx.authorized = req.header("authorization").is_some();
        ctx.storable &= req.header("range").is_none();
        ctx
    }

    /// The L1 lookup: the primary entry, then the variant it points to.
    pub fn find_local(&self, req: &Request<'_>, primary: &str) -> Found {
        let Some(entry) = self.store.get_local(primary) else { return Found::Nothing };
        self.resolve(req, primary, entry, |key| self.store.get_local(key))
    }

    /// The shared-tier lookup (which fills L1). Holds no reference to the
    /// request across a wait (the request view is not `Sync`).
    async fn find_shared(&self, req: &mut Request<'_>, primary: &str) -> Found {
        let Some(entry) = self.store.get(primary).await else { return Found::Nothing };
        if self.invalidated.covers(primary, entry.meta.stored_at_ms) {
            return Found::Nothing;
        }
        if !entry.meta.policy.is_vary_marker() {
            return Found::Entry(entry);
        }
        let variant = key::variant(primary, &entry.meta.policy.vary, req);
        match self.store.get(&variant).await {
            Some(v) if !self.invalidated.covers(primary, v.meta.stored_at_ms) => Found::Entry(v),
            _ => Found::OtherVariant(variant),
        }
    }

    fn resolve(&self, req: &Request<'_>, primary: &str, entry: Entry, get: impl Fn(&str) -> Option<Entry>) -> Found {
        if self.invalidated.covers(primary, entry.meta.stored_at_ms) {
            return Found::Nothing;
        }
        if !entry.meta.policy.is_vary_marker() {
            return Found::Entry(entry);
        }
        let variant = key::variant(primary, &entry.meta.policy.vary, req);
        match get(&variant) {
            Some(v) if !self.invalidated.covers(primary, v.meta.stored_at_ms) => Found::Entry(v),
            _ => Found::OtherVariant(variant),
        }
    }

    /// The key a miss would coalesce on, when it would.
    fn coalesced_key(&self, ctx: &Ctx, found: &Found) -> Option<String> {
        if !self.settings.coalesce || !ctx.storable || ctx.no_cache {
            return None;
        }
        match found {
            Found::Nothing => Some(ctx.primary.clone()),
            Found::OtherVariant(variant) => Some(variant.clone()),
            Found::Entry(_) => None,
        }
    }

    fn would_wait(&self, key: &str) -> Option<Role> {
        if self.flights.in_flight(key, self.settings.lock_timeout) {
            return Some(self.flights.join(key, self.settings.lock_timeout));
        }
        None
    }

    /// The answer for what the lookup found. `lead`: a miss may become the
    /// coalescing leader (not after a wait that timed out).
    /// `Step::Wait` when another request became the leader after this one's
    /// lookup (only when `lead`).
    fn decide(&self, req: &mut Request<'_>, ctx: Ctx, found: Found, lead: bool, now: u64) -> Step {
        if ctx.no_cache {
            let entry = match found {
                Found::Entry(e) if e.meta.policy.has_validator() => Some(e),
                _ => None,
            };
            return self.forward(req, ctx, Fwd::Request, entry, false, None);
        }
        let entry = match found {
            Found::Entry(entry) => entry,
            Found::Nothing | Found::OtherVariant(_) if ctx.only_if_cached => return Step::Flow(Flow::Respond(gateway_timeout(req))),
            Found::Nothing => {
                let key = lead.then(|| ctx.primary.clone());
                return self.forward(req, ctx, Fwd::UriMiss, None, false, key);
            }
            Found::OtherVariant(variant) => return self.forward(req, ctx, Fwd::VaryMiss, None, false, lead.then_some(variant)),
        };
        match evaluate(&entry.meta.policy, entry.meta.stored_at_ms, now, &ctx.ask) {
            Use::Fresh { age_secs, ttl_secs } => Step::Flow(self.answer(req, &ctx, &entry, age_secs, Outcome::Hit { ttl: ttl_secs })),
            Use::StaleWhileRevalidate { age_secs, stale_secs } => Step::Flow(self.stale_while_revalidate(req, ctx, entry, age_secs, stale_secs)),
            Use::Revalidate { .. } if ctx.only_if_cached => Step::Flow(Flow::Respond(gateway_timeout(req))),
            Use::Revalidate { if_error, .. } => {
                let key = lead.then(|| entry.meta.key.clone());
                self.forward(req, ctx, Fwd::Stale, Some(entry), if_error, key)
            }
        }
    }

    /// Answers from `entry` (a 304 when the client's condition holds).
    fn answer(&self, req: &mut Request<'_>, ctx: &Ctx, entry: &Entry, age_secs: u64, outcome: Outcome) -> Flow {
        Flow::Respond(self.answer_response(req, ctx, entry, age_secs, outcome))
    }

    fn answer_response(&self, req: &mut Request<'_>, ctx: &Ctx, entry: &Entry, age_secs: u64, outcome: Outcome) -> Response {
        let labels = self.labels(&ctx.primary);
        let inm = req.header("if-none-match");
        let ims = req.header("if-modified-since");
        let resp = if (inm.is_some() || ims.is_some()) && conditional::not_modified(inm, ims, &entry.meta.policy) {
            serve::not_modified(entry, age_secs, outcome, &labels)
        } else {
            serve::full(entry, age_secs, outcome, &labels)
        };
        req.set_metadata(META_STATUS, outcome.metadata());
        req.set_metadata(META_KEY, &ctx.primary);
        resp
    }

    /// Answers stale now; one request per key refreshes it in the background.
    fn stale_while_revalidate(&self, req: &mut Request<'_>, ctx: Ctx, entry: Entry, age_secs: u64, stale_secs: u64) -> Flow {
        let outcome = Outcome::StaleWhileRevalidate { stale: stale_secs };
        let resp = self.answer_response(req, &ctx, &entry, age_secs, outcome);
        if !ctx.storable {
            return Flow::Respond(resp); // HEAD or no-store: a refresh could store nothing
        }
        let Some(refresh) = self.refreshes.start(&entry.meta.key, self.settings.lock_timeout.max(Duration::from_secs(30))) else {
            return Flow::Respond(resp);
        };
        let ctx = Self::forwarding(req, ctx);
        // The background copy of this request carries our validators, not the client's.
        req.remove_header("if-none-match");
        req.remove_header("if-modified-since");
        conditional::add_validators(req, &entry.meta.policy);
        let pending = self.pending_for(&ctx, Fwd::Stale, Some(entry), false, Conditions::default(), None, Some(refresh));
        let token = self.pending.put(pending);
        req.set_metadata(META_TOKEN, &token.to_string());
        Flow::RespondAndContinue(resp)
    }

    /// Sends the request on, leaving what `on_response` needs; or waits for
    /// the leader that started between this request's lookup and its `join`
    /// (it would otherwise be a second origin request for the key).
    fn forward(&self, req: &mut Request<'_>, ctx: Ctx, fwd: Fwd, entry: Option<Entry>, if_error: bool, flight_key: Option<String>) -> Step {
        let ctx = Self::forwarding(req, ctx);
        let lead = match flight_key {
            Some(key) if self.settings.coalesce && ctx.storable && !ctx.no_cache => match self.flights.join(&key, self.settings.lock_timeout) {
                Role::Lead(l) => match entry.is_none().then(|| self.stored_meanwhile(req, &ctx)).flatten() {
                    Some(found) => {
                        drop(l); // a leader stored it after our lookup: answer from it
                        return self.decide(req, ctx, found, false, now_ms());
                    }
                    None => Some(l),
                },
                Role::Wait(flight) => return Step::Wait(flight),
            },
            _ => None,
        };
        let conditions = Conditions::of(req);
        if let Some(e) = &entry {
            conditional::add_validators(req, &e.meta.policy);
        }
        req.set_metadata(META_STATUS, "miss");
        req.set_metadata(META_KEY, &ctx.primary);
        let pending = self.pending_for(&ctx, fwd, entry, if_error, conditions, lead, None);
        let token = self.pending.put(pending);
        req.set_metadata(META_TOKEN, &token.to_string());
        Step::Flow(Flow::Continue)
    }

    /// What a miss's new leader finds stored after all (its key, or the
    /// variant of it, through the usual lookup): the previous leader may
    /// have stored its answer and ended its flight between this request's
    /// lookup and its `join` (seen as a second origin request in a storm of
    /// 100 concurrent misses).
    fn stored_meanwhile(&self, req: &Request<'_>, ctx: &Ctx) -> Option<Found> {
        let found = self.find_local(req, &ctx.primary);
        matches!(found, Found::Entry(_)).then_some(found)
    }

    #[allow(clippy::too_many_arguments)]
    fn pending_for(
        &self,
        ctx: &Ctx,
        fwd: Fwd,
        entry: Option<Entry>,
        if_error: bool,
        conditions: Conditions,
        lead: Option<coalesce::Lead>,
        refresh: Option<coalesce::Refresh>,
    ) -> Pending {
        Pending {
            created: std::time::Instant::now(),
            primary: ctx.primary.clone(),
            fwd,
            request_time_ms: now_ms(),
            entry,
            if_error,
            conditions,
            storable: ctx.storable,
            ttl: ctx.ttl,
            authorized: ctx.authorized,
            lead,
            refresh,
        }
    }

    /// How responses are labelled.
    pub fn labels<'a>(&'a self, primary: &'a str) -> Labels<'a> {
        Labels {
            status_header: self.settings.status_header,
            name: &self.settings.cache_name,
            key: self.settings.expose_key.then_some(primary),
        }
    }
}

/// Whether every condition `rule` gives holds for `req`.
fn rule_matches(rule: &Rule, req: &Request<'_>) -> bool {
    rule.path_prefix.as_ref().is_none_or(|p| req.path().starts_with(p.as_str()))
        && rule.header.as_ref().is_none_or(|h| req.header(h).is_some())
        && rule.cookie.as_ref().is_none_or(|c| has_cookie(req.header("cookie"), c))
}

/// Whether a `Cookie` header has a cookie named `name`.
pub fn has_cookie(cookie: Option<&str>, name: &str) -> bool {
    cookie.is_some_and(|c| c.split(';').any(|pair| pair.split_once('=').map_or(pair, |(n, _)| n).trim() == name))
}

/// RFC 9111 §5.2.1.7: `only-if-cached` with nothing usable stored.
fn gateway_timeout(req: &Request<'_>) -> Response {
    let details = covet_plugin_api::JsonValue::Null;
    Response::error(504, "NOT_CACHED", "only-if-cached: no stored response can answer this request", details, req.request_id())
}

#[cfg(test)]
mod tests {
    use covet_plugin_api::Flow;

    use super::{Found, Step, now_ms};
    use crate::tests::{cache, exchange, get, ok};

    #[test]
    fn a_miss_that_becomes_leader_after_the_entry_was_stored_answers_from_it() {
        // The race a storm of 100 concurrent misses hit on io_uring: this
        // request's lookup missed, then the previous leader stored its answer
        // and ended its flight, then this request joined as the new leader.
        let c = cache("null");
        let origin = |_: &_| ok(&[("cache-control", "max-age=60")], "one");
        assert!(exchange(&c, get("/r"), &origin).origin, "the first leader's answer is stored");
        let mut late = get("/r");
        let mut req = late.view();
        let Ok(ctx) = c.prepare(&mut req) else { panic!("a GET is cached") };
        let step = c.decide(&mut req, ctx, Found::Nothing, true, now_ms());
        assert!(matches!(&step, Step::Flow(Flow::Respond(r)) if r.body.as_slice() == b"one"), "answered from the stored entry");
        assert!(c.flights.is_empty(), "no flight is left behind");
    }

    #[test]
    fn a_miss_that_finds_a_leader_started_after_its_lookup_waits_for_it() {
        // The race behind a second origin request in a storm: two misses
        // look up at once, the other one joins first and leads; this one,
        // joining second, must wait for it rather than go to the origin too.
        let c = cache("null");
        let mut first = get("/r");
        let mut req = first.view();
        let Ok(ctx) = c.prepare(&mut req) else { panic!("a GET is cached") };
        let leader = c.flights.join(&ctx.primary, c.settings.lock_timeout);
        assert!(matches!(leader, crate::coalesce::Role::Lead(_)), "the other request leads");
        let step = c.decide(&mut req, ctx, Found::Nothing, true, now_ms());
        assert!(matches!(step, Step::Wait(_)), "this one waits for the leader");
        assert!(req.metadata(crate::META_TOKEN).is_none(), "nothing was left for on_response");
        drop(leader);
        assert!(c.flights.is_empty(), "the leader's flight ended");
    }
}
