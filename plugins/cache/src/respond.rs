//! `on_response`: what the origin's answer does to the cache. A 304 to the
//! cache's own validators refreshes the stored entry and answers from it; a
//! 5xx within stale-if-error is replaced by the stale entry; a storable
//! response is teed into the store as it streams; a successful unsafe
//! method invalidates its URI. Then `Cache-Status`, `cache.status`, and the
//! tag headers stripped.

use std::sync::Arc;

use covet_plugin_api::{Body, Header, Headers, Request, ResponseMut};

use crate::{
    Cache, META_FWD, META_KEY, META_STATUS, META_TOKEN,
    conditional,
    freshness::{self, Arrival, Verdict, age_ms},
    key,
    pending::{Fwd, Pending},
    request::now_ms,
    serve,
    status::Outcome,
    store::{Entry, Meta},
    tee::Tee,
};

impl Cache {
    /// `on_response` (never waits).
    pub fn response(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        let token = req.metadata(META_TOKEN).and_then(|t| t.parse::<u64>().ok());
        match token.and_then(|t| self.pending.take(t)) {
            Some(pending) => self.forwarded(req, resp, pending),
            None => self.stepped_aside(req, resp),
        }
    }

    /// A request the cache did not look up (bypass, another method).
    fn stepped_aside(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>) {
        let outcome = match req.metadata(META_FWD) {
            Some("invalidate") => {
                if (200..400).contains(&resp.status())
                    && let Some(primary) = req.metadata(META_KEY).map(str::to_string)
                {
                    self.invalidate(&primary);
                }
                Outcome::Method
            }
            Some("method") => Outcome::Method,
            Some("bypass") => Outcome::Bypass,
            _ => return,
        };
        let primary = req.metadata(META_KEY).unwrap_or("").to_string();
        serve::label(resp, outcome, &self.labels(&primary));
        self.strip_tags(resp);
    }

    /// Drops every stored response of `primary` (RFC 9111 §4.4).
    pub fn invalidate(&self, primary: &str) {
        self.store.remove(primary);
        self.invalidated.record(primary, now_ms());
    }

    fn forwarded(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>, mut pending: Pending) {
        let background = pending.refresh.is_some();
        let status = resp.status();
        let labels_key = pending.primary.clone();
        let labels = self.labels(&labels_key);
        if let Some(entry) = pending.entry.take() {
            if status == 304 {
                let outcome = self.refreshed(req, resp, &pending, entry, background);
                return self.finish(req, resp, outcome, background);
            }
            if pending.if_error && matches!(status, 500 | 502 | 503 | 504) && !background {
                let now = now_ms();
                let age = age_ms(&entry.meta.policy, entry.meta.stored_at_ms, now);
                let stale = age.saturating_sub(entry.meta.policy.lifetime_ms).div_ceil(1000);
                let outcome = Outcome::StaleIfError { stale };
                serve::rewrite(resp, &entry, age / 1000, outcome, &labels, false);
                req.set_metadata(META_STATUS, outcome.metadata());
                return;
            }
        }
        let stored = self.store_response(req, resp, &mut pending);
        let outcome = match pending.fwd {
            Fwd::UriMiss => Outcome::UriMiss { stored },
            Fwd::VaryMiss => Outcome::VaryMiss { stored },
            Fwd::Stale => Outcome::Stale { fwd_status: status, stored },
            Fwd::Request => Outcome::Request { stored },
        };
        self.finish(req, resp, outcome, background);
    }

    fn finish(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>, outcome: Outcome, background: bool) {
        if background {
            return;
        }
        let primary = req.metadata(META_KEY).unwrap_or("").to_string();
        serve::label(resp, outcome, &self.labels(&primary));
        req.set_metadata(META_STATUS, outcome.metadata());
        self.strip_tags(resp);
    }

    /// A 304 for a stale entry: the entry refreshed with its headers (RFC 9111
    /// §4.3.4) and stored, and the client answered from it.
    fn refreshed(&self, req: &mut Request<'_>, resp: &mut ResponseMut<'_>, pending: &Pending, entry: Entry, background: bool) -> Outcome {
        let now = now_ms();
        let merged = freshness::freshen(&entry.headers, &resp.headers());
        let arrival = Arrival {
            status: entry.status,
            headers: &merged,
            request_time_ms: pending.request_time_ms,
            response_time_ms: now,
            ttl: pending.ttl,
            authorized: pending.authorized,
        };
        let (fresh, stored) = match freshness::judge(&arrival, &self.settings) {
            Verdict::Store(policy, keep_until_ms) => {
                let meta = Meta { stored_at_ms: now, keep_until_ms, policy, ..(*entry.meta).clone() };
                let fresh = Entry { meta: Arc::new(meta), status: entry.status, headers: Headers::from(merged), body: entry.body.clone() };
                if pending.storable {
                    self.store.put(fresh.clone());
                }
                (fresh, pending.storable)
            }
            Verdict::Skip(_) => {
                self.store.remove(&entry.meta.key);
                (Entry { headers: Headers::from(merged), ..entry }, false)
            }
        };
        let outcome = match pending.fwd {
            Fwd::Request => Outcome::Request { stored },
            _ => Outcome::Stale { fwd_status: 304, stored },
        };
        if background {
            return outcome;
        }
        let c = &pending.conditions;
        let not_modified = c.any() && conditional::not_modified(c.if_none_match.as_deref(), c.if_modified_since.as_deref(), &fresh.meta.policy);
        let age = age_ms(&fresh.meta.policy, fresh.meta.stored_at_ms, now) / 1000;
        let primary = pending.primary.clone();
        serve::rewrite(resp, &fresh, age, outcome, &self.labels(&primary), not_modified);
        let _ = req;
        outcome
    }

    /// Tees a storable response into the store; whether it will be stored
    /// (when its body ends within `max_object_size`).
    fn store_response(&self, req: &Request<'_>, resp: &mut ResponseMut<'_>, pending: &mut Pending) -> bool {
        if !pending.storable {
            return false;
        }
        let headers = resp.headers();
        let now = now_ms();
        let arrival = Arrival {
            status: resp.status(),
            headers: &headers,
            request_time_ms: pending.request_time_ms,
            response_time_ms: now,
            ttl: pending.ttl,
            authorized: pending.authorized,
        };
        let Verdict::Store(policy, keep_until_ms) = freshness::judge(&arrival, &self.settings) else { return false };
        let declared = freshness::find(&headers, "content-length").and_then(|n| n.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.settings.max_object_size) {
            return false;
        }
        let vary = key::vary_names(&freshness::joined(&headers, "vary").unwrap_or_default()).unwrap_or_default();
        let variant = (!vary.is_empty()).then(|| key::variant(&pending.primary, &vary, req));
        let meta = Meta {
            key: variant.clone().unwrap_or_else(|| pending.primary.clone()),
            primary: pending.primary.clone(),
            host: key::host(req),
            path: req.path().to_string(),
            tags: self.tags(&headers),
            stored_at_ms: now,
            keep_until_ms,
            policy,
        };
        let marker = variant.map(|_| {
            let policy = crate::policy::Policy { vary, ..Default::default() };
            Entry { meta: Arc::new(Meta { key: pending.primary.clone(), policy, ..meta.clone() }), status: 0, headers: Headers::default(), body: Body::default() }
        });
        let dropped = if self.settings.strip_tag_headers { self.settings.tag_headers.clone() } else { Vec::new() };
        let stored_headers = Headers::from(freshness::storable_headers(&headers, &dropped));
        let status = resp.status();
        let store = self.store.clone();
        let primary = pending.primary.clone();
        let lead = pending.lead.take();
        let refresh = pending.refresh.take();
        let done = Box::new(move |bytes: Vec<u8>| {
            let entry = Entry { meta: Arc::new(meta), status, headers: stored_headers, body: Body::from(bytes) };
            let keep = entry.meta.keep_until_ms;
            store.put(entry);
            if let Some(marker) = marker {
                store.put(outlasting(marker, keep, store.get_local(&primary)));
            }
            drop((lead, refresh));
        });
        let body = resp.take_body();
        resp.set_body_stream(Tee::body(body, self.settings.max_object_size, done));
        if let Some(n) = declared {
            let _ = resp.set_header("content-length", &n.to_string());
        }
        true
    }

    /// The response's tags, from the configured tag headers.
    fn tags(&self, headers: &[Header]) -> Vec<String> {
        let mut tags = Vec::new();
        for h in headers.iter().filter(|h| self.settings.tag_headers.iter().any(|t| h.name.as_str().eq_ignore_ascii_case(t))) {
            let value = h.value.as_str();
            let parts: Vec<&str> = if h.name.as_str().eq_ignore_ascii_case("surrogate-key") {
                value.split_ascii_whitespace().collect()
            } else {
                value.split(',').map(str::trim).collect()
            };
            tags.extend(parts.into_iter().filter(|t| !t.is_empty()).map(str::to_string));
        }
        tags.dedup();
        tags
    }

    fn strip_tags(&self, resp: &mut ResponseMut<'_>) {
        if self.settings.strip_tag_headers {
            for name in &self.settings.tag_headers {
                resp.remove_header(name);
            }
        }
    }
}

/// The marker of a varying resource, kept as long as the longest-lived of
/// its variants (an earlier marker with the same names may outlast this one).
fn outlasting(marker: Entry, keep: u64, earlier: Option<Entry>) -> Entry {
    let earlier_keep = earlier
        .filter(|e| e.meta.policy.vary == marker.meta.policy.vary)
        .map_or(0, |e| e.meta.keep_until_ms);
    let keep_until_ms = keep.max(earlier_keep).max(marker.meta.keep_until_ms);
    if keep_until_ms == marker.meta.keep_until_ms {
        return marker;
    }
    Entry { meta: Arc::new(Meta { keep_until_ms, ..(*marker.meta).clone() }), ..marker }
}
