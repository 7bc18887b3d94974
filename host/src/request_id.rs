//! Request ids: honour a sane incoming `x-request-id`, otherwise make one
//! that is unique across restarts (a random per-process prefix + a counter).
//!
//! Ids are made per thread in batches of [`BATCH`]: the thread takes
//! [`BATCH`] counter values at once, writes their ids into one buffer and
//! hands them out as slices of it. A request's id then costs no allocation
//! and no formatting of its own, and cloning it (the exchange keeps one, the
//! response another) only counts a reference. Ids stay unique (each
//! counter value is taken once); across threads they are not in order.

use std::{
    cell::RefCell,
    collections::hash_map::RandomState,
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::SystemTime,
};

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The header carrying the id, in and out (parsed once, at compile time).
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id that is honoured.
const MAX_LEN: usize = 128;

/// Length of a made id: 8 hex digits of prefix, 16 of counter.
const ID_LEN: usize = 24;

/// Ids a thread makes at once.
const BATCH: usize = 64;

/// Tells `RequestIds` apart, so a thread's batch is used only by its maker.
static MAKERS: AtomicU64 = AtomicU64::new(0);

/// A thread's made ids not handed out yet, and whose they are.
struct Batch {
    maker: u64,
    /// Handed out from the end.
    ids: Vec<HeaderValue>,
}

thread_local! {
    static BATCH_LEFT: RefCell<Batch> = const { RefCell::new(Batch { maker: u64::MAX, ids: Vec::new() }) };
}

/// Makes request ids.
pub struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
    maker: u64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let seed = RandomState::new().hash_one(SystemTime::now());
        let maker = MAKERS.fetch_add(1, Ordering::Relaxed);
        RequestIds { prefix: seed as u32, counter: AtomicU64::new(seed >> 32), maker }
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
        BATCH_LEFT.with_borrow_mut(|batch| {
            if batch.maker != self.maker || batch.ids.is_empty() {
                self.refill(batch);
            }
            batch.ids.pop().expect("a batch was just made")
        })
    }

    /// Takes the next [`BATCH`] counter values and makes their ids, the
    /// first to be handed out last in `batch.ids`.
    fn refill(&self, batch: &mut Batch) {
        let first = self.counter.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut id = [0u8; ID_LEN];
        hex(&mut id[..8], u64::from(self.prefix));
        let mut block = BytesMut::with_capacity(BATCH * ID_LEN);
        for n in (0..BATCH as u64).rev() {
            hex(&mut id[8..], first.wrapping_add(n));
            block.extend_from_slice(&id);
        }
        let block = block.freeze();
        batch.maker = self.maker;
        batch.ids.clear();
        batch.ids.extend((0..BATCH).map(|i| {
            let id = block.slice(i * ID_LEN..(i + 1) * ID_LEN);
            // SAFETY: `id` is hex digits only (written by `hex` above), all
            // visible ASCII, so it is a valid header value; the checked
            // constructor's byte-by-byte validation cost ~120 instructions
            // per request. Debug builds still validate (http's own check).
            unsafe { HeaderValue::from_maybe_shared_unchecked(id) }
        }));
    }
}

/// Writes `value`'s low `out.len()` hex digits into `out`, most
/// significant first, two digits per table lookup (`out.len()` is even).
fn hex(out: &mut [u8], mut value: u64) {
    for pair in out.rchunks_exact_mut(2) {
        pair.copy_from_slice(&HEX_PAIRS[(value & 0xff) as usize]);
        value >>= 8;
    }
}

/// The two hex digits of every byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        pairs[i] = [DIGITS[i >> 4], DIGITS[i & 0xf]];
        i += 1;
    }
    pairs
};

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
    fn hex_writes_every_digit() {
        let mut out = [0u8; 16];
        hex(&mut out, 0x0123_4567_89ab_cdef);
        assert_eq!(&out, b"0123456789abcdef");
        let mut out = [0u8; 8];
        hex(&mut out, 0xdead_beef_f00d_cafe);
        assert_eq!(&out, b"f00dcafe");
    }

    #[test]
    fn generated_ids_are_distinct() {
        let ids = RequestIds::default();
        assert_ne!(ids.for_request(&HeaderMap::new()), ids.for_request(&HeaderMap::new()));
    }

    #[test]
    fn ids_stay_distinct_whole_and_in_order_across_batches() {
        let ids = RequestIds::default();
        let made: Vec<HeaderValue> = (0..3 * BATCH + 5).map(|_| ids.for_request(&HeaderMap::new())).collect();
        assert!(made.iter().all(|v| v.len() == ID_LEN && as_str(v).bytes().all(|b| b.is_ascii_hexdigit())));
        let counters: Vec<u64> = made.iter().map(|v| u64::from_str_radix(&as_str(v)[8..], 16).unwrap()).collect();
        assert!(counters.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "one thread's ids count up by one");
        assert!(made.iter().all(|v| v.as_bytes()[..8] == made[0].as_bytes()[..8]), "one prefix");
    }

    #[test]
    fn two_makers_on_one_thread_keep_their_own_prefix() {
        let (a, b) = (RequestIds::default(), RequestIds::default());
        let prefix = |ids: &RequestIds| format!("{:08x}", ids.prefix);
        for _ in 0..3 {
            assert!(as_str(&a.for_request(&HeaderMap::new())).starts_with(&prefix(&a)));
            assert!(as_str(&b.for_request(&HeaderMap::new())).starts_with(&prefix(&b)));
        }
    }
}
