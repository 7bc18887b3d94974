//! The verification cache: token → [`Verified`], so a token seen again costs a
//! hash lookup instead of a signature check.
//!
//! Keyed by the whole token string (no hash collisions to reason about); an
//! entry is only ever made from a token that just verified. Every hit is
//! checked against the wall clock, so a cached token never outlives its `exp`
//! (an expired entry is removed when found); tokens whose `nbf` is still
//! ahead are not cached. Bounded by `max_entries` (quick_cache evicts by
//! CLOCK-Pro, so expired entries nobody asks for age out); `0` turns it off.
//! quick_cache rather than moka: a hit costs about a tenth of the
//! instructions, and this lookup runs on every authenticated request.

use std::{sync::Arc, time::SystemTime};

use quick_cache::sync::Cache;

use crate::claims::Verified;

/// A bounded cache of verified tokens, or nothing when disabled.
pub struct TokenCache {
    cache: Option<Cache<Box<str>, Arc<Verified>>>,
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens; `0` disables it.
    pub fn new(max_entries: u64) -> TokenCache {
        let capacity = usize::try_from(max_entries).unwrap_or(usize::MAX);
        TokenCache { cache: (capacity > 0).then(|| Cache::new(capacity)) }
    }

    /// The verified token, if cached and not expired.
    pub fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let cache = self.cache.as_ref()?;
        let verified = cache.get(token)?;
        if verified.is_live(SystemTime::now()) {
            return Some(verified);
        }
        cache.remove(token);
        None
    }

    /// Forgets every token (a key that verified some of them is gone).
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
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
