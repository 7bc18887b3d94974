//! Field errors as the GraphQL spec has them, after async-graphql's dynamic
//! executor: it drops a failed field from its parent object (instead of
//! `null`) and never nulls the parent of a failed non-null field. Here each
//! error with a path gets `null` at that path, and when the position is
//! non-null the `null` moves up to the nearest nullable position (or to
//! `data` itself), as "Handling Field Errors" says. Positions are typed by
//! walking the path through the executed document and the schema's field
//! types ([`Nullability`], kept from the SDL).

use std::collections::HashMap;

use async_graphql::{Name, PathSegment, Response, ServerError, Value};
use async_graphql_parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet, Type,
};

/// The message async-graphql adds when a non-null field resolved to nothing.
const NON_NULL_MISSING: &str = "internal: non-null types require a return value";

/// Field types by type and field name, and the root type names.
#[derive(Debug, Default)]
pub struct Nullability {
    /// Read per request by `order.rs` (hence foldhash, not SipHash).
    fields: HashMap<String, HashMap<String, Type, Hasher>, Hasher>,
    query: String,
    mutation: Option<String>,
    /// The object types of each interface and union (for `order.rs`).
    possible: HashMap<String, Vec<String>, Hasher>,
}

type Hasher = foldhash::fast::RandomState;

impl Nullability {
    /// An empty map with the root types.
    pub fn new(query: &str, mutation: Option<&str>) -> Nullability {
        Nullability {
            fields: HashMap::default(),
            query: query.into(),
            mutation: mutation.map(Into::into),
            possible: HashMap::default(),
        }
    }

    /// Records that object type `object` is a member of interface or union `abstract_type`.
    pub fn add_possible(&mut self, abstract_type: &str, object: &str) {
        let members = self.possible.entry(abstract_type.into()).or_default();
        if !members.iter().any(|m| m == object) {
            members.push(object.into());
        }
    }

    /// The object types of an interface or union; `None` for any other type.
    pub fn possible(&self, ty: &str) -> Option<&[String]> {
        self.possible.get(ty).map(Vec::as_slice)
    }

    /// The type of `ty.field`.
    pub fn field_type(&self, ty: &str, field: &str) -> Option<&Type> {
        self.fields.get(ty)?.get(field)
    }

    /// The root type of an operation.
    pub fn root(&self, op: OperationType) -> Option<&str> {
        match op {
            OperationType::Mutation => self.mutation.as_deref(),
            _ => Some(&self.query),
        }
    }

    /// Records `ty.field: field_type`.
    pub fn add(&mut self, ty: &str, field: &str, field_type: Type) {
        self.fields.entry(ty.into()).or_default().insert(field.into(), field_type);
    }

    /// Settles `response`'s field errors (see the module doc); `query` and
    /// `operation` are what was executed.
    pub fn settle(&self, response: &mut Response, query: &str, operation: Option<&str>) {
        let errors = std::mem::take(&mut response.errors);
        let reported: Vec<_> = errors.iter().filter(|e| !is_non_null(e) && !e.path.is_empty()).map(|e| e.path.clone()).collect();
        let document = async_graphql_parser::parse_query(query).ok();
        for error in errors {
            if is_non_null(&error) && reported.contains(&error.path) {
                continue;
            }
            if !error.path.is_empty() {
                let nullable = document.as_ref().and_then(|d| self.positions(d, operation, &error.path));
                null_out(&mut response.data, &error.path, nullable.as_deref());
            }
            response.errors.push(error);
        }
    }

    /// Whether each prefix of `path` (lengths 1..=n) is a nullable position; `None` when it cannot be typed.
    fn positions(&self, doc: &ExecutableDocument, operation: Option<&str>, path: &[PathSegment]) -> Option<Vec<bool>> {
        let op = match (&doc.operations, operation) {
            (DocumentOperations::Single(op), _) => &op.node,
            (DocumentOperations::Multiple(ops), Some(name)) => &ops.get(name)?.node,
            (DocumentOperations::Multiple(ops), None) => &ops.values().next()?.node,
        };
        let mut ty_name = match op.ty {
            OperationType::Mutation => self.mutation.clone()?,
            _ => self.query.clone(),
        };
        let mut selection = &op.selection_set.node;
        let mut current: Option<&Type> = None;
        let mut out = Vec::with_capacity(path.len());
        for segment in path {
            match segment {
                PathSegment::Field(key) => {
                    let (field, owner) = find(doc, selection, key, &ty_name)?;
                    let owner = if self.has(&owner, &field.name.node) { owner } else { ty_name.clone() };
                    let field_type = self.fields.get(&owner)?.get(field.name.node.as_str())?;
                    out.push(field_type.nullable);
                    current = Some(field_type);
                    ty_name = named(field_type).to_owned();
                    selection = &field.selection_set.node;
                }
                PathSegment::Index(_) => {
                    let BaseType::List(inner) = &current?.base else { return None };
                    out.push(inner.nullable);
                    current = Some(inner);
                }
            }
        }
        Some(out)
    }

    fn has(&self, ty: &str, field: &str) -> bool {
        self.fields.get(ty).is_some_and(|f| f.contains_key(field))
    }
}

fn is_non_null(e: &ServerError) -> bool {
    e.message == NON_NULL_MISSING
}

/// The named type under `ty`'s lists.
pub fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// The field answering as `key` in `selection` (through fragments), and the type it was selected on.
fn find<'d>(
    doc: &'d ExecutableDocument,
    selection: &'d SelectionSet,
    key: &str,
    on: &str,
) -> Option<(&'d async_graphql_parser::types::Field, String)> {
    for item in &selection.items {
        let found = match &item.node {
            Selection::Field(f) if f.node.response_key().node == key => Some((&f.node, on.to_owned())),
            Selection::Field(_) => None,
            Selection::InlineFragment(frag) => {
                let on = frag.node.type_condition.as_ref().map_or(on, |c| c.node.on.node.as_str());
                find(doc, &frag.node.selection_set.node, key, on)
            }
            Selection::FragmentSpread(spread) => {
                let frag = doc.fragments.get(&spread.node.fragment_name.node)?;
                find(doc, &frag.node.selection_set.node, key, frag.node.type_condition.node.on.node.as_str())
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Puts `null` at the nearest nullable position at or above `path` (all of
/// `data` when none is; at `path` itself when the positions are unknown).
fn null_out(data: &mut Value, path: &[PathSegment], nullable: Option<&[bool]>) {
    let depth = match nullable {
        None => path.len(),
        Some(flags) => match flags.iter().rposition(|n| *n) {
            Some(i) => i + 1,
            None => {
                *data = Value::Null;
                return;
            }
        },
    };
    let Some((last, parents)) = path[..depth].split_last() else { return };
    let mut at = data;
    for segment in parents {
        at = match (segment, at) {
            (PathSegment::Field(name), Value::Object(map)) => match map.get_mut(name.as_str()) {
                Some(v) => v,
                None => return,
            },
            (PathSegment::Index(i), Value::List(items)) => match items.get_mut(*i) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    match (last, at) {
        (PathSegment::Field(name), Value::Object(map)) => {
            map.insert(Name::new(name), Value::Null);
        }
        (PathSegment::Index(i), Value::List(items)) => {
            if let Some(v) = items.get_mut(*i) {
                *v = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "nulls_tests.rs"]
mod tests;
