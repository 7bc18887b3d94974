//! The keys a token may be verified with, swapped as a whole when a remote
//! key set is (re)fetched: [`Keys::current`] is one atomic load, and a
//! verification runs against one consistent snapshot while a refresh
//! installs the next.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use jsonwebtoken::Validation;

use crate::keys::KeyMaterial;

/// A key ready to verify: its material and its own [`Validation`].
pub struct Key {
    /// The key and what it verifies.
    pub material: KeyMaterial,
    /// The shared claim rules, pinned to this key's algorithms.
    pub validation: Validation,
}

/// Keys from one source (the local entries, or one fetched set).
pub struct KeySet(Vec<Key>);

impl KeySet {
    /// Gives each key the shared `rules`, pinned to its algorithms.
    pub fn new(materials: Vec<KeyMaterial>, rules: &Validation) -> KeySet {
        let keys = materials
            .into_iter()
            .map(|material| {
                let mut validation = rules.clone();
                validation.algorithms = material.algorithms.clone();
                Key { material, validation }
            })
            .collect();
        KeySet(keys)
    }
}

impl KeySet {
    /// Whether some key of `self` is not in `next` (kids compared; a key
    /// without a kid counts as gone).
    fn lost_by(&self, next: &KeySet) -> bool {
        let kept = |kid: &str| next.0.iter().any(|k| k.material.kid.as_deref() == Some(kid));
        self.0.iter().any(|k| k.material.kid.as_deref().is_none_or(|kid| !kept(kid)))
    }
}

/// One snapshot: the local keys, and each remote set (`None` until its first
/// successful fetch).
pub struct KeyStore {
    local: Arc<KeySet>,
    remote: Vec<Option<Arc<KeySet>>>,
}

impl KeyStore {
    /// Every key, local ones first, then each remote set in `keys:` order.
    pub fn iter(&self) -> impl Iterator<Item = &Key> {
        self.local.0.iter().chain(self.remote.iter().flatten().flat_map(|set| set.0.iter()))
    }

    /// Whether some remote set has never been fetched.
    pub fn pending(&self) -> bool {
        self.remote.iter().any(Option::is_none)
    }
}

/// The current [`KeyStore`], replaced whole by [`Keys::install`].
pub struct Keys {
    current: ArcSwap<KeyStore>,
    /// Serialises installs (read-copy-update of `current`).
    writer: Mutex<()>,
}

impl Keys {
    /// The local keys, and `remote` sets still to fetch.
    pub fn new(local: KeySet, remote: usize) -> Keys {
        let store = KeyStore { local: Arc::new(local), remote: vec![None; remote] };
        Keys { current: ArcSwap::from_pointee(store), writer: Mutex::new(()) }
    }

    /// The snapshot to verify one token with.
    pub fn current(&self) -> Guard<Arc<KeyStore>> {
        self.current.load()
    }

    /// Replaces remote set `index` (the last good set stays until this).
    /// Whether a key of the old set is gone (tokens it verified must be
    /// verified again: the issuer may have revoked it).
    pub fn install(&self, index: usize, set: KeySet) -> bool {
        let _writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = self.current.load_full();
        let removed = old.remote[index].as_ref().is_some_and(|before| before.lost_by(&set));
        let mut remote = old.remote.clone();
        remote[index] = Some(Arc::new(set));
        self.current.store(Arc::new(KeyStore { local: Arc::clone(&old.local), remote }));
        removed
    }
}
