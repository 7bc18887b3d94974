//! RFC 9111 rules: whether a response may be stored and for how long it is
//! fresh ([`judge`], §3 and §4.2), and how a stored response may answer a
//! request ([`evaluate`], §4.2.3 age, §4.2.4 stale, §5.2.1 request directives).

use std::time::Duration;

use covet_plugin_api::{Header, http_syntax::HOP_BY_HOP};

use crate::{directives::Directives, key, policy::Policy, settings::Checked};

/// Statuses a response may be stored with without explicit freshness
/// (RFC 9110 §15.1 "heuristically cacheable").
pub const HEURISTIC_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The most a heuristic lifetime may be.
const HEURISTIC_MAX_MS: u64 = 24 * 3600 * 1000;

/// A response as it arrives, with what is known about its request.
pub struct Arrival<'a> {
    /// The status.
    pub status: u16,
    /// Its headers.
    pub headers: &'a [Header],
    /// When the request was sent on (Unix ms).
    pub request_time_ms: u64,
    /// When the response arrived (Unix ms).
    pub response_time_ms: u64,
    /// A `ttl` from the matching rule or the config.
    pub ttl: Option<Duration>,
    /// The request carried `Authorization`.
    pub authorized: bool,
}

/// Whether to store, and the facts if so.
#[derive(Debug)]
pub enum Verdict {
    /// Store it: its policy and until when it is of use (Unix ms).
    Store(Policy, u64),
    /// Do not store it, and why.
    Skip(&'static str),
}

/// The first value of `name` in `headers`.
pub fn find<'h>(headers: &'h [Header], name: &str) -> Option<&'h str> {
    headers.iter().find(|h| h.name.as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

/// Every value of `name`, joined with `, `.
pub fn joined(headers: &[Header], name: &str) -> Option<String> {
    let mut values = headers.iter().filter(|h| h.name.as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str());
    let first = values.next()?;
    Some(values.fold(first.to_string(), |acc, v| acc + ", " + v))
}

/// An HTTP date as Unix milliseconds.
pub fn http_date_ms(value: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(value.trim()).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// Whether `arrival` may be stored and, if so, its policy (RFC 9111 §3).
pub fn judge(arrival: &Arrival<'_>, settings: &Checked) -> Verdict {
    let headers = arrival.headers;
    let cc = joined(headers, "cache-control").map(|v| Directives::parse(&v)).unwrap_or_default();
    if arrival.status == 206 || arrival.status < 200 || arrival.status == 304 {
        return Verdict::Skip("status");
    }
    if cc.no_store || cc.private {
        return Verdict::Skip("no-store or private");
    }
    if arrival.authorized && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Verdict::Skip("authorization");
    }
    if find(headers, "set-cookie").is_some() {
        return Verdict::Skip("set-cookie");
    }
    let vary = joined(headers, "vary").unwrap_or_default();
    if key::vary_names(&vary).is_none() {
        return Verdict::Skip("vary *");
    }
    let expires = find(headers, "expires");
    let explicit = cc.s_maxage.is_some() || cc.max_age.is_some() || expires.is_some();
    if !explicit && !HEURISTIC_STATUSES.contains(&arrival.status) {
        return Verdict::Skip("status");
    }
    let date_ms = find(headers, "date").and_then(http_date_ms).unwrap_or(arrival.response_time_ms);
    let lifetime_ms = lifetime(arrival, &cc, date_ms, settings);
    let policy = Policy {
        initial_age_ms: initial_age(arrival, date_ms),
        lifetime_ms,
        no_cache: cc.no_cache,
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate,
        swr_ms: window(cc.stale_while_revalidate, cc.s_maxage.is_some(), settings.stale_while_revalidate),
        sie_ms: window(cc.stale_if_error, cc.s_maxage.is_some(), settings.stale_if_error),
        etag: find(headers, "etag").map(str::to_string),
        last_modified: find(headers, "last-modified").map(str::to_string),
        vary: Vec::new(),
        served: Default::default(),
    };
    let useless = policy.lifetime_ms <= policy.initial_age_ms && !policy.has_validator();
    if useless && policy.swr_ms == 0 && policy.sie_ms == 0 {
        return Verdict::Skip("no freshness and no validator");
    }
    let keep = keep_until(&policy, arrival.response_time_ms);
    Verdict::Store(policy, keep)
}

/// A stale window: the response's directive, else the config's default
/// (not for `s-maxage`, which carries `proxy-revalidate`: only an explicit
/// directive opens a window then).
fn window(directive: Option<u64>, s_maxage: bool, default: Duration) -> u64 {
    match directive {
        Some(secs) => secs.saturating_mul(1000),
        None if s_maxage => 0,
        None => default.as_millis() as u64,
    }
}

/// RFC 9111 §4.2.1 (and the `ttl` override; §4.2.2 heuristic).
fn lifetime(arrival: &Arrival<'_>, cc: &Directives, date_ms: u64, settings: &Checked) -> u64 {
    if let Some(ttl) = arrival.ttl {
        return ttl.as_millis() as u64;
    }
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return secs.saturating_mul(1000);
    }
    if let Some(expires) = find(arrival.headers, "expires") {
        return http_date_ms(expires).map_or(0, |e| e.saturating_sub(date_ms));
    }
    if !settings.heuristic || !HEURISTIC_STATUSES.contains(&arrival.status) {
        return 0;
    }
    let modified = find(arrival.headers, "last-modified").and_then(http_date_ms);
    modified.map_or(0, |lm| (date_ms.saturating_sub(lm) / 10).min(HEURISTIC_MAX_MS))
}

/// RFC 9111 §4.2.3 `corrected_initial_age`.
fn initial_age(arrival: &Arrival<'_>, date_ms: u64) -> u64 {
    let age_value = find(arrival.headers, "age").and_then(|a| a.trim().parse::<u64>().ok()).unwrap_or(0);
    let apparent = arrival.response_time_ms.saturating_sub(date_ms);
    let delay = arrival.response_time_ms.saturating_sub(arrival.request_time_ms);
    apparent.max(age_value.saturating_mul(1000).saturating_add(delay))
}

/// Until when an entry is of use: fresh, then its stale windows; one that can
/// be revalidated is kept a while longer (at least a minute, at most its lifetime more).
pub fn keep_until(policy: &Policy, stored_at_ms: u64) -> u64 {
    let fresh_left = policy.lifetime_ms.saturating_sub(policy.initial_age_ms);
    let mut extra = policy.swr_ms.max(policy.sie_ms);
    if policy.has_validator() {
        extra = extra.max(policy.lifetime_ms.clamp(60_000, HEURISTIC_MAX_MS));
    }
    stored_at_ms.saturating_add(fresh_left).saturating_add(extra)
}

/// What a request asks of a stored response (its `Cache-Control`).
#[derive(Debug, Default, Clone)]
pub struct Ask {
    /// `max-age=N`: no older than N seconds.
    pub max_age: Option<u64>,
    /// `min-fresh=N`: fresh for at least N more seconds.
    pub min_fresh: Option<u64>,
    /// `max-stale[=N]`: stale is fine (up to N seconds).
    pub max_stale: Option<Option<u64>>,
}

impl Ask {
    /// From the request's directives.
    pub fn from(d: &Directives) -> Ask {
        Ask { max_age: d.max_age, min_fresh: d.min_fresh, max_stale: d.max_stale }
    }
}

/// How a stored response may answer a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Fresh enough: a hit. `ttl_secs` is negative when served stale on the
    /// request's `max-stale`.
    Fresh {
        /// `Age`, seconds.
        age_secs: u64,
        /// Seconds of freshness left.
        ttl_secs: i64,
    },
    /// Stale within stale-while-revalidate: answer now, refresh in the background.
    StaleWhileRevalidate {
        /// `Age`, seconds.
        age_secs: u64,
        /// Seconds past its freshness.
        stale_secs: u64,
    },
    /// Must go to the origin (with its validators, if any).
    Revalidate {
        /// `Age`, seconds.
        age_secs: u64,
        /// Seconds past its freshness.
        stale_secs: u64,
        /// Whether stale-if-error may still serve it.
        if_error: bool,
    },
}

/// The entry's current age in milliseconds at `now_ms`.
pub fn age_ms(policy: &Policy, stored_at_ms: u64, now_ms: u64) -> u64 {
    policy.initial_age_ms.saturating_add(now_ms.saturating_sub(stored_at_ms))
}

/// How the entry (policy, stored at) may answer a request asking `ask`, at `now_ms`.
pub fn evaluate(policy: &Policy, stored_at_ms: u64, now_ms: u64, ask: &Ask) -> Use {
    let age = age_ms(policy, stored_at_ms, now_ms);
    let age_secs = age / 1000;
    let fresh = policy.lifetime_ms > age && !policy.no_cache;
    let ttl_secs = (policy.lifetime_ms / 1000) as i64 - age_secs as i64;
    let too_old = ask.max_age.is_some_and(|max| max == 0 || age > max.saturating_mul(1000));
    let too_close = ask.min_fresh.is_some_and(|min| ttl_secs < min as i64);
    if fresh && !too_old && !too_close {
        return Use::Fresh { age_secs, ttl_secs };
    }
    let stale_ms = age.saturating_sub(policy.lifetime_ms);
    let stale_secs = stale_ms.div_ceil(1000);
    let may_serve_stale = !policy.must_revalidate && !policy.no_cache && !fresh;
    if may_serve_stale && !too_old {
        if let Some(limit) = ask.max_stale
            && limit.is_none_or(|n| stale_secs <= n)
        {
            return Use::Fresh { age_secs, ttl_secs: -(stale_secs as i64) };
        }
        if policy.swr_ms > 0 && stale_ms <= policy.swr_ms {
            return Use::StaleWhileRevalidate { age_secs, stale_secs };
        }
    }
    let if_error = !policy.must_revalidate && policy.sie_ms > 0 && stale_ms <= policy.sie_ms;
    Use::Revalidate { age_secs, stale_secs, if_error }
}

/// Whether a cache never stores header `name` (RFC 9111 §3.1): hop-by-hop
/// ones ([`HOP_BY_HOP`]), `trailer`, and those made per response: the host
/// sets `content-length`, the cache `age` and `cache-status`.
pub fn not_stored(name: &str) -> bool {
    HOP_BY_HOP.iter().chain(&["trailer", "content-length", "age", "cache-status"]).any(|n| name.eq_ignore_ascii_case(n))
}

/// The headers of `response` to store: without those [`not_stored`] names, those the
/// `Connection` header names, those a qualified `private`/`no-cache` names,
/// and `dropped` (the tag headers when they are stripped).
pub fn storable_headers(headers: &[Header], dropped: &[String]) -> Vec<Header> {
    let connection: Vec<String> = joined(headers, "connection")
        .map(|c| c.split(',').map(|t| t.trim().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let cc = joined(headers, "cache-control").map(|v| Directives::parse(&v)).unwrap_or_default();
    headers
        .iter()
        .filter(|h| {
            let name = h.name.as_str();
            !not_stored(name)
                && !connection.iter().chain(&cc.private_fields).chain(&cc.no_cache_fields).chain(dropped).any(|n| name.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect()
}

/// RFC 9111 §3.2: the stored headers updated with those of a 304 (each
/// field the 304 has replaces the stored one; the 304's framing fields do not).
pub fn freshen(stored: &[Header], fresh: &[Header]) -> Vec<Header> {
    let skip = |n: &str| not_stored(n) || n.eq_ignore_ascii_case("content-encoding");
    let updated: Vec<&Header> = fresh.iter().filter(|h| !skip(h.name.as_str())).collect();
    let mut out: Vec<Header> =
        stored.iter().filter(|s| !updated.iter().any(|u| u.name.as_str().eq_ignore_ascii_case(s.name.as_str()))).cloned().collect();
    out.extend(updated.into_iter().cloned());
    out
}
