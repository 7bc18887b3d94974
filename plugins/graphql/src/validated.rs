//! Validation once per document: async-graphql's validation rules depend
//! only on the document and the schema (and the variables' values, which
//! execution coerces again), yet `Schema::execute` runs them on every
//! request, and even its `ValidationMode::Fast` still walks the document.
//! The schema carries [`SkipKnown`], an extension whose validation hook
//! answers at once for a document marked as validated, and runs the rules
//! otherwise. A document is marked once this schema has executed it without
//! a request error. The documents come from the process-wide
//! parsed-document cache, so the same text is the same `Arc` while it is
//! cached: a document is known by that `Arc` (held weakly: an evicted
//! document is parsed anew into another `Arc`, which is validated again; no
//! text or hash is trusted alone).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use async_graphql::{
    ServerError, ValidationResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation},
};

use crate::{
    exchange::Exchange,
    limits::Document,
};

/// The most documents remembered (then the set starts over).
const CAPACITY: usize = 4096;

/// Documents the schema has validated.
#[derive(Default)]
pub struct Validated {
    /// By the document cache's key (already a hash of the text).
    seen: Mutex<HashMap<u64, Weak<Document>, foldhash::fast::FixedState>>,
}

impl Validated {
    /// Whether `doc` (of key `key` in the document cache) has passed validation.
    pub fn contains(&self, key: u64, doc: &Arc<Document>) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&key).is_some_and(|known| std::ptr::eq(known.as_ptr(), Arc::as_ptr(doc)) && known.strong_count() > 0)
    }

    /// Records that `doc` (of key `key`) passed validation.
    pub fn insert(&self, key: u64, doc: &Arc<Document>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CAPACITY {
            seen.clear();
        }
        seen.insert(key, Arc::downgrade(doc));
    }
}

/// The extension skipping validation of a document already validated (the
/// request's [`Exchange`] says so). One instance serves every request.
pub struct SkipKnown(Arc<Skip>);

impl SkipKnown {
    /// The extension's factory, for `SchemaBuilder::extension`.
    pub fn new() -> SkipKnown {
        SkipKnown(Arc::new(Skip))
    }
}

impl ExtensionFactory for SkipKnown {
    fn create(&self) -> Arc<dyn Extension> {
        self.0.clone()
    }
}

/// The extension itself (stateless).
pub struct Skip;

#[async_graphql::async_trait::async_trait]
impl Extension for Skip {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        if ctx.data_opt::<Exchange>().is_some_and(Exchange::prevalidated) {
            // The schema sets no complexity or depth limit and the answer
            // carries no cache-control header: nothing reads these.
            return Ok(ValidationResult { cache_control: Default::default(), complexity: 0, depth: 0 });
        }
        next.run(ctx).await
    }
}
