//! Validation once per document: async-graphql's validation rules depend
//! only on the document and the schema, yet run on every request. The
//! plugin builds its schema twice from the same SDL, the second time with
//! `ValidationMode::Fast` (no rules), and runs a document on the fast twin
//! once the strict schema has executed it without a request error. The
//! documents come from the process-wide parsed-document cache, so the same
//! text is the same `Arc` while it is cached: a document is known by that
//! `Arc` (held weakly: an evicted document is parsed anew into another
//! `Arc`, which is validated again; no text or hash is trusted alone).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use crate::limits::{Document, DocumentCache};

/// The most documents remembered (then the set starts over).
const CAPACITY: usize = 4096;

/// Documents the strict schema has validated.
#[derive(Default)]
pub struct Validated {
    seen: Mutex<HashMap<u64, Weak<Document>>>,
}

impl Validated {
    /// Whether `doc` has passed validation.
    pub fn contains(&self, doc: &Arc<Document>) -> bool {
        let key = DocumentCache::global().key(&doc.query);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&key).is_some_and(|known| std::ptr::eq(known.as_ptr(), Arc::as_ptr(doc)) && known.strong_count() > 0)
    }

    /// Records that `doc` passed validation.
    pub fn insert(&self, doc: &Arc<Document>) {
        let key = DocumentCache::global().key(&doc.query);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CAPACITY {
            seen.clear();
        }
        seen.insert(key, Arc::downgrade(doc));
    }
}
