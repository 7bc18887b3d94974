//! The verification cache: token → [`Verified`], so a token seen again costs a
//! hash lookup instead of a signature check.
//!
//! Keyed by the whole token string (no hash collisions to reason about); an
//! entry is only ever made from a token that just verified. Each entry expires
//! at the token's `exp` (moka's per-entry [`Expiry`]), and a hit is checked
//! against the wall clock again, so a cached token never outlives its `exp`
//! even if the clock jumps. Tokens whose `nbf` is still ahead are not cached.
//! Bounded by `max_entries` (moka evicts by TinyLFU); `0` turns it off.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use moka::{policy::Expiry, sync::Cache};

use crate::claims::Verified;

/// A bounded cache of verified tokens, or nothing when disabled.
pub struct TokenCache {
    cache: Option<Cache<Box<str>, Arc<Verified>>>,
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens; `0` disables it.
    pub fn new(max_entries: u64) -> TokenCache {
        let cache =
            (max_entries > 0).then(|| Cache::builder().max_capacity(max_entries).expire_after(UntilExpiry).build());
        TokenCache { cache }
    }

    /// The verified token, if cached and not expired.
    pub fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let verified = self.cache.as_ref()?.get(token)?;
        verified.is_live(SystemTime::now()).then_some(verified)
    }

    /// Remembers a token that just verified, if it is cacheable now.
    pub fn insert(&self, token: &str, verified: &Arc<Verified>) {
        if let Some(cache) = &self.cache
            && verified.is_cacheable(SystemTime::now())
        {
            cache.insert(token.into(), Arc::clone(verified));
        }
    }
}

/// Expires each entry at its token's `exp`.
struct UntilExpiry;

impl Expiry<Box<str>, Arc<Verified>> for UntilExpiry {
    fn expire_after_create(&self, _token: &Box<str>, verified: &Arc<Verified>, _at: Instant) -> Option<Duration> {
        verified.time_to_live(SystemTime::now())
    }
}
