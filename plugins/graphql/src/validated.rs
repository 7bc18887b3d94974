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

/// Whether a request's document was validated before (read from its data).
pub type Known = fn(&ExtensionContext<'_>) -> bool;

/// The extension skipping validation of a document already validated (the
/// request's [`Exchange`] says so). One instance serves every request.
pub struct SkipKnown(Arc<Skip>);

impl SkipKnown {
    /// The extension's factory, for `SchemaBuilder::extension`.
    pub fn new() -> SkipKnown {
        SkipKnown::with(|ctx| ctx.data_opt::<Exchange>().is_some_and(Exchange::prevalidated))
    }

    /// The factory with another test of a request's data.
    pub fn with(known: Known) -> SkipKnown {
        SkipKnown(Arc::new(Skip(known)))
    }
}

impl ExtensionFactory for SkipKnown {
    fn create(&self) -> Arc<dyn Extension> {
        self.0.clone()
    }
}

/// The extension itself.
pub struct Skip(Known);

#[async_graphql::async_trait::async_trait]
impl Extension for Skip {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        if (self.0)(ctx) {
            // The schema sets no complexity or depth limit and the answer
            // carries no cache-control header: nothing reads these.
            return Ok(ValidationResult { cache_control: Default::default(), complexity: 0, depth: 0 });
        }
        next.run(ctx).await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::dynamic::{Field, FieldFuture, Object, Schema, TypeRef};
    use covet_plugin_api::testing::block_on;

    use super::*;

    /// The request data marking a document as validated, in these tests.
    struct Marked;

    fn schema() -> Schema {
        let a = Field::new("a", TypeRef::named(TypeRef::INT), |_| FieldFuture::from_value(Some(1.into())));
        Schema::build("Query", None, None)
            .register(Object::new("Query").field(a))
            .extension(SkipKnown::with(|ctx| ctx.data_opt::<Marked>().is_some()))
            .finish()
            .unwrap()
    }

    #[test]
    fn validation_runs_unless_the_document_is_marked() {
        // Valid to execute, refused by validation (an unused variable).
        let query = "query Q($v: Int) { a }";
        let schema = schema();
        let checked = block_on(schema.execute(async_graphql::Request::new(query)));
        assert_eq!(checked.errors.len(), 1, "{:?}", checked.errors);
        assert!(checked.errors[0].message.contains("not used"), "{}", checked.errors[0].message);
        let marked = async_graphql::Request::new(query).data(Marked);
        let skipped = block_on(schema.execute(marked));
        assert!(skipped.errors.is_empty(), "{:?}", skipped.errors);
        assert_eq!(skipped.data.into_json().unwrap(), serde_json::json!({ "a": 1 }));
    }
}
