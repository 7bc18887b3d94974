//! The parsed-document cache, one per process: parsing is what a GraphQL
//! filter spends most on (tens of µs for a 20-field query with
//! `async-graphql-parser`), and clients send the same few documents over and
//! over, so each distinct document is parsed once and shared.
//!
//! It is also how the filter hands its parse to covet's GraphQL handler on
//! the same route: the filter sets metadata `graphql.document` to the
//! document's key ([`DocumentCache::key_text`]), and the handler takes the
//! parsed document with [`DocumentCache::get`] (and the query text, which
//! an automatic persisted query did not carry) instead of parsing again.
//!
//! Entries are keyed by a 64-bit hash of the text and hold the text, so a hit
//! is confirmed by comparing it. At most [`CAPACITY`] documents are held,
//! the oldest dropped first; a document over [`MAX_CACHED_LEN`] bytes is
//! parsed every time and not held.

use std::{
    collections::{HashMap, VecDeque},
    hash::BuildHasher,
    sync::{Arc, LazyLock, Mutex},
};

use async_graphql_parser::types::ExecutableDocument;
use foldhash::fast::FixedState;

use super::refusal::Refusal;

/// The most documents held.
pub const CAPACITY: usize = 1024;
/// The longest document text held (bytes).
pub const MAX_CACHED_LEN: usize = 64 * 1024;

/// A parsed document with its text.
#[derive(Debug)]
pub struct Document {
    /// The query text it was parsed from.
    pub query: Box<str>,
    /// The parsed document.
    pub parsed: ExecutableDocument,
}

/// What [`DocumentCache::fetch`] found.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The key of the text.
    pub key: u64,
    /// The parsed document.
    pub document: Arc<Document>,
    /// Whether the cache holds it under `key` now.
    pub held: bool,
}

/// Parsed documents by the hash of their text.
pub struct DocumentCache {
    inner: Mutex<Inner>,
    hasher: FixedState,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<u64, Arc<Document>, FixedState>,
    /// Keys in insertion order, for eviction.
    order: VecDeque<u64>,
}

static GLOBAL: LazyLock<DocumentCache> = LazyLock::new(|| DocumentCache::new(CAPACITY));

impl DocumentCache {
    /// An empty cache holding at most `capacity` documents.
    pub fn new(capacity: usize) -> DocumentCache {
        DocumentCache { inner: Mutex::new(Inner::default()), hasher: FixedState::with_seed(0x636f_7665_7467_716c), capacity }
    }

    /// The process's cache, shared by the filter and the handler.
    pub fn global() -> &'static DocumentCache {
        &GLOBAL
    }

    /// The key of `query`'s text.
    pub fn key(&self, query: &str) -> u64 {
        self.hasher.hash_one(query)
    }

    /// The key as metadata text (16 hex digits).
    pub fn key_text(key: u64) -> String {
        format!("{key:016x}")
    }

    /// The document held under `key`, if any (`key_text`'s digits).
    pub fn get_text(&self, key: &str) -> Option<Arc<Document>> {
        self.get(u64::from_str_radix(key, 16).ok()?)
    }

    /// The document held under `key`, if any.
    pub fn get(&self, key: u64) -> Option<Arc<Document>> {
        self.lock().map.get(&key).cloned()
    }

    /// `query` parsed, from the cache or parsed now (and held); with its key.
    pub fn get_or_parse(&self, query: &str) -> Result<(u64, Arc<Document>), Refusal> {
        self.fetch(query).map(|f| (f.key, f.document))
    }

    /// [`DocumentCache::get_or_parse`], telling also whether the document is
    /// held (so that its key finds it, for the handler).
    pub fn fetch(&self, query: &str) -> Result<Fetched, Refusal> {
        let key = self.key(query);
        if let Some(document) = self.get(key).filter(|d| *d.query == *query) {
            return Ok(Fetched { key, document, held: true });
        }
        let parsed = async_graphql_parser::parse_query(query).map_err(|e| {
            Refusal::new("GRAPHQL_PARSE_FAILED", format!("the query does not parse: {e}"))
        })?;
        let document = Arc::new(Document { query: query.into(), parsed });
        // Not held: too long, or another text with the same key holds the slot.
        let held = query.len() <= MAX_CACHED_LEN && self.insert(key, Arc::clone(&document));
        Ok(Fetched { key, document, held })
    }

    /// Holds `doc` under `key` unless another text holds it; returns whether it does.
    fn insert(&self, key: u64, doc: Arc<Document>) -> bool {
        let mut inner = self.lock();
        match inner.map.get(&key) {
            Some(held) if held.query != doc.query => return false,
            Some(_) => {}
            None => inner.order.push_back(key),
        }
        inner.map.insert(key, doc);
        while inner.map.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.map.remove(&oldest);
        }
        true
    }

    /// How many documents are held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no document is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_parsed_once_and_shared() {
        let cache = DocumentCache::new(4);
        let (key, first) = cache.get_or_parse("{ a }").unwrap();
        let (again, second) = cache.get_or_parse("{ a }").unwrap();
        assert_eq!(key, again);
        assert!(Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&cache.get_text(&DocumentCache::key_text(key)).unwrap(), &first));
    }

    #[test]
    fn a_document_over_the_size_bound_is_parsed_but_not_held() {
        let cache = DocumentCache::new(4);
        let long = format!("# {}\n{{ a }}", "x".repeat(MAX_CACHED_LEN));
        let fetched = cache.fetch(&long).unwrap();
        assert!(!fetched.held);
        assert!(cache.is_empty());
        assert!(cache.fetch("{ a }").unwrap().held);
    }

    #[test]
    fn the_oldest_documents_go_first_and_parse_errors_are_not_held() {
        let cache = DocumentCache::new(2);
        let (a, _) = cache.get_or_parse("{ a }").unwrap();
        cache.get_or_parse("{ b }").unwrap();
        cache.get_or_parse("{ c }").unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.get(a).is_none());
        let refusal = cache.get_or_parse("{ a ").unwrap_err();
        assert_eq!(refusal.code, "GRAPHQL_PARSE_FAILED");
        assert_eq!(cache.len(), 2);
    }
}
