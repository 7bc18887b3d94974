//! # ab-tagger — a WASM filter
//!
//! Puts every visitor in an A/B variant and keeps them there with a cookie.
//!
//! - `on-request`: reads the variant from the cookie when it names a known
//!   variant; otherwise picks one by hashing the client address and the
//!   request id with the configured weights. Sets metadata `ab.variant`
//!   (and `ab.assigned` = `true` for a new visitor) for later plugins, and
//!   the request header `x-ab-variant` for the handler.
//! - `on-response`: echoes the variant in `x-ab-variant` and, for a new
//!   visitor, sets the cookie.
//!
//! ```yaml
//! plugins:
//!   ab:
//!     kind: wasm
//!     path: wasm/ab_tagger.wasm
//!     config:
//!       cookie: ab             # default "ab"
//!       variants: { a: 50, b: 50 }   # name → weight (default a: 50, b: 50)
//!       max_age: 2592000       # cookie Max-Age in seconds (default: 30 days)
//! ```
//!
//! It needs no capability: no files, no environment, no network.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use covet_guest::{Descriptor, Flow, Guest, OutgoingResponse, Phases, Request, Response};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    cookie: String,
    variants: BTreeMap<String, u32>,
    max_age: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let variants = [("a".to_string(), 50), ("b".to_string(), 50)].into();
        Settings { cookie: "ab".into(), variants, max_age: 30 * 24 * 3600 }
    }
}

thread_local! {
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

fn with_settings<T>(f: impl FnOnce(&Settings) -> T) -> T {
    SETTINGS.with_borrow(|s| f(s.as_ref().expect("init ran before any phase")))
}

struct AbTagger;

impl Guest for AbTagger {
    fn describe() -> Descriptor {
        covet_guest::descriptor!(Phases::ON_REQUEST | Phases::ON_RESPONSE)
    }

    fn init(config: String, _instance: String) -> Result<(), String> {
        let json = if config.trim() == "null" { "{}" } else { &config };
        let settings: Settings = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if settings.variants.is_empty() || settings.variants.values().all(|w| *w == 0) {
            return Err("`variants` needs at least one variant with a weight above 0".into());
        }
        if settings.cookie.is_empty() || !settings.cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("`cookie` must be letters, digits, `_` or `-`, not {:?}", settings.cookie));
        }
        SETTINGS.set(Some(settings));
        Ok(())
    }

    fn on_request(req: &Request) -> Flow {
        with_settings(|s| {
            let (variant, assigned) = match from_cookie(req, s) {
                Some(known) => (known, false),
                None => (pick(req, s), true),
            };
            req.set_metadata("ab.variant", &variant);
            if assigned {
                req.set_metadata("ab.assigned", "true");
            }
            let _ = req.set_header("x-ab-variant", &variant);
            Flow::Continue
        })
    }

    fn handle(_req: &Request) -> Response {
        Response::text(501, "ab-tagger is a filter")
    }

    fn on_response(req: &Request, resp: &OutgoingResponse) {
        let Some(variant) = req.metadata("ab.variant") else { return };
        let _ = resp.set_header("x-ab-variant", &variant);
        if req.metadata("ab.assigned").as_deref() == Some("true") {
            let cookie = with_settings(|s| format!("{}={variant}; Path=/; Max-Age={}; SameSite=Lax", s.cookie, s.max_age));
            let _ = resp.append_header("set-cookie", &cookie);
        }
    }
}

/// The variant named by the request's cookie, if it is a known one.
fn from_cookie(req: &Request, s: &Settings) -> Option<String> {
    let header = req.header("cookie")?;
    let value = header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(name, _)| *name == s.cookie)?.1;
    s.variants.contains_key(value).then(|| value.to_string())
}

/// A weighted pick, stable for one client address and request id.
fn pick(req: &Request, s: &Settings) -> String {
    let mut hasher = DefaultHasher::new();
    (req.client_addr(), req.request_id()).hash(&mut hasher);
    let total: u64 = s.variants.values().map(|w| u64::from(*w)).sum();
    let mut point = hasher.finish() % total;
    for (name, weight) in &s.variants {
        match point.checked_sub(u64::from(*weight)) {
            Some(rest) => point = rest,
            None => return name.clone(),
        }
    }
    s.variants.keys().next().cloned().unwrap_or_default()
}

covet_guest::export!(AbTagger);
