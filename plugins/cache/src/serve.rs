//! Answers made from a stored entry: the full response (its shared headers
//! and body, plus `Age` and `Cache-Status`), a 304 for a client whose
//! condition it satisfies, and the rewrite of an origin response into the
//! stored one (a 304 the cache asked for, stale-if-error).

use covet_plugin_api::{Header, Headers, Response, ResponseMut};

use crate::{conditional::NOT_MODIFIED_HEADERS, status::Outcome, store::Entry};

/// How responses are labelled (from the settings).
pub struct Labels<'a> {
    /// `Cache-Status` is sent.
    pub status_header: bool,
    /// The cache's name in it.
    pub name: &'a str,
    /// The primary key, when `expose_key` is on.
    pub key: Option<&'a str>,
}

/// The stored response, with `Age: age_secs` and `Cache-Status` for `outcome`.
/// A plain hit reuses the headers last built for the same second (shared,
/// nothing copied).
pub fn full(entry: &Entry, age_secs: u64, outcome: Outcome, labels: &Labels<'_>) -> Response {
    let headers = match outcome {
        Outcome::Hit { ttl } => {
            let served = &entry.meta.policy.served;
            match served.get((age_secs, ttl)) {
                Some(headers) => headers,
                None => {
                    let headers = labelled(&entry.headers, age_secs, outcome, labels);
                    served.set((age_secs, ttl), headers.clone());
                    headers
                }
            }
        }
        _ => labelled(&entry.headers, age_secs, outcome, labels),
    };
    Response { status: entry.status, headers, body: entry.body.clone(), stream: Default::default() }
}

/// A 304 with the stored validators and cache headers (RFC 9110 §15.4.5).
pub fn not_modified(entry: &Entry, age_secs: u64, outcome: Outcome, labels: &Labels<'_>) -> Response {
    let kept: Vec<Header> = entry
        .headers
        .iter()
        .filter(|h| NOT_MODIFIED_HEADERS.iter().any(|n| h.name.as_str().eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    Response { status: 304, headers: labelled(&kept, age_secs, outcome, labels), ..Response::new(304) }
}

fn labelled(stored: &[Header], age_secs: u64, outcome: Outcome, labels: &Labels<'_>) -> Headers {
    let mut list = Vec::with_capacity(stored.len() + 2);
    list.extend_from_slice(stored);
    list.push(Header::new("age", age_secs.to_string()));
    if labels.status_header {
        list.push(Header::new("cache-status", outcome.header(labels.name, labels.key)));
    }
    Headers::from(list)
}

/// Rewrites the outgoing response into the stored one (every header
/// replaced, the body copied), with `Age` and `Cache-Status`; a 304 when
/// `not_modified` (the client's own condition holds).
pub fn rewrite(resp: &mut ResponseMut<'_>, entry: &Entry, age_secs: u64, outcome: Outcome, labels: &Labels<'_>, not_modified: bool) {
    let answer = if not_modified { self::not_modified(entry, age_secs, outcome, labels) } else { full(entry, age_secs, outcome, labels) };
    let mut names: Vec<String> = resp.headers().into_iter().map(|h| h.name.into_string()).collect();
    names.dedup();
    for name in names {
        resp.remove_header(&name);
    }
    let _ = resp.set_status(answer.status);
    for h in answer.headers.iter() {
        let _ = resp.append_header(h.name.as_str(), h.value.as_str());
    }
    resp.set_body(answer.body.to_vec());
}

/// Sets `Cache-Status` on a forwarded response.
pub fn label(resp: &mut ResponseMut<'_>, outcome: Outcome, labels: &Labels<'_>) {
    if labels.status_header {
        let _ = resp.set_header("cache-status", &outcome.header(labels.name, labels.key));
    }
}
