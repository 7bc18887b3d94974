//! Request ids: honour a sane incoming `x-request-id`, otherwise make one
//! that is unique across restarts (a random per-process prefix + a counter).

use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use http::HeaderMap;

/// The header carrying the id, in and out.
pub const HEADER: &str = "x-request-id";

/// Longest incoming id that is honoured.
const MAX_LEN: usize = 128;

/// Makes request ids.
pub struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let seed = RandomState::new().hash_one(SystemTime::now());
        RequestIds { prefix: seed as u32, counter: AtomicU64::new(seed >> 32) }
    }
}

impl RequestIds {
    /// The incoming id when it is 1..=128 visible ASCII characters, else a new one.
    pub fn for_request(&self, headers: &HeaderMap) -> String {
        match headers.get(HEADER).and_then(|v| v.to_str().ok()).filter(|v| acceptable(v)) {
            Some(incoming) => incoming.to_string(),
            None => self.next(),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:016x}", self.prefix, n)
    }
}

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_a_sane_incoming_id_and_replaces_a_bad_one() {
        let ids = RequestIds::default();
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(ids.for_request(&headers), "abc-123");
        headers.insert(HEADER, "has space".parse().unwrap());
        assert_eq!(ids.for_request(&headers).len(), 24);
    }

    #[test]
    fn generated_ids_are_distinct() {
        let ids = RequestIds::default();
        assert_ne!(ids.for_request(&HeaderMap::new()), ids.for_request(&HeaderMap::new()));
    }
}
