//! Request ids: honour a sane incoming `x-request-id`, otherwise make one
//! that is unique across restarts (a random per-process prefix + a counter).

use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The header carrying the id, in and out (parsed once, at compile time).
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

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
    /// The incoming id when it is 1..=128 visible ASCII characters, else a
    /// new one. The value is always valid UTF-8 (`to_str` cannot fail).
    pub fn for_request(&self, headers: &HeaderMap) -> HeaderValue {
        match headers.get(&HEADER).filter(|v| acceptable(v.as_bytes())) {
            Some(incoming) => incoming.clone(),
            None => self.next(),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 24];
        hex(&mut id[..8], u64::from(self.prefix));
        hex(&mut id[8..], n);
        HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
    }
}

/// Writes `value`'s low `out.len()` hex digits into `out`, most significant first.
fn hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// The id as text (ids are visible ASCII by construction).
pub fn as_str(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("-")
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
        let made = ids.for_request(&headers);
        assert_eq!(made.len(), 24);
        assert!(as_str(&made).bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn generated_ids_are_distinct() {
        let ids = RequestIds::default();
        assert_ne!(ids.for_request(&HeaderMap::new()), ids.for_request(&HeaderMap::new()));
    }
}
