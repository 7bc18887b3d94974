//! The bans this instance knows, indexed for checking an entry quickly:
//! key and tag bans by their value (the latest `at_ms` per value), prefix
//! bans in a list. Checked when an L2 entry is read and when an entry is
//! stored (a response received before a ban must not come back after it),
//! and built from each batch of new bans to purge L1.

use std::collections::{BTreeMap, HashMap};

use super::{Ban, BanKind, Meta};

/// How long a ban is kept for checking (the purge log keeps 24 h too).
pub(crate) const BAN_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// A set of bans and its indexes.
#[derive(Debug, Default)]
pub(crate) struct BanSet {
    by_seq: BTreeMap<u64, Ban>,
    keys: HashMap<String, u64>,
    tags: HashMap<String, u64>,
    prefixes: Vec<Ban>,
}

impl BanSet {
    /// A set holding `bans`.
    pub(crate) fn of(bans: &[Ban]) -> BanSet {
        let mut set = BanSet::default();
        for ban in bans {
            set.insert(ban.clone());
        }
        set
    }

    /// Adds `ban`; false when a ban with its seq was known already.
    pub(crate) fn insert(&mut self, ban: Ban) -> bool {
        if self.by_seq.contains_key(&ban.seq) {
            return false;
        }
        self.index(&ban);
        self.by_seq.insert(ban.seq, ban);
        true
    }

    fn index(&mut self, ban: &Ban) {
        let latest = |map: &mut HashMap<String, u64>| {
            let at = map.entry(ban.value.clone()).or_insert(ban.at_ms);
            *at = (*at).max(ban.at_ms);
        };
        match ban.kind {
            BanKind::Key => latest(&mut self.keys),
            BanKind::Tag => latest(&mut self.tags),
            BanKind::Prefix => self.prefixes.push(ban.clone()),
        }
    }

    /// Whether a ban in the set removes `meta` (the same answer as
    /// [`Ban::matches`] over every ban, without walking key and tag bans).
    pub(crate) fn removes(&self, meta: &Meta) -> bool {
        if self.by_seq.is_empty() {
            return false;
        }
        let after = |at: Option<&u64>| at.is_some_and(|at| meta.stored_at_ms <= *at);
        after(self.keys.get(&meta.primary))
            || meta.tags.iter().any(|tag| after(self.tags.get(tag)))
            || self.prefixes.iter().any(|ban| ban.matches(meta))
    }

    /// Drops bans made more than [`BAN_LIFETIME_MS`] before `now_ms`.
    pub(crate) fn prune(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(BAN_LIFETIME_MS);
        if self.by_seq.values().all(|ban| ban.at_ms >= oldest) {
            return;
        }
        let kept: Vec<Ban> = self
            .by_seq
            .values()
            .filter(|ban| ban.at_ms >= oldest)
            .cloned()
            .collect();
        *self = BanSet::of(&kept);
    }

    /// How many bans are kept.
    pub(crate) fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Whether none is.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }
}

/// The bans in a purge log's text (a JSON array, oldest first).
pub(crate) fn parse_log(text: &[u8]) -> Result<Vec<Ban>, String> {
    serde_json::from_slice(text).map_err(|e| format!("purge.log is not a JSON array of bans: {e}"))
}
