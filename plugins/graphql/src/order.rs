//! The order of the fields in `data`. The GraphQL spec ("CollectFields",
//! "ExecuteSelectionSet") orders each object's keys as its selection set
//! collects them: document order, fragment spreads and inline fragments
//! expanded in place (when their type condition applies), `@skip` and
//! `@include` honoured, aliases as keys, and a response key selected twice
//! kept at its first position with the sub-selections merged.
//! async-graphql's executor resolves sibling fields concurrently and inserts
//! each as it finishes, so after execution every object of `data` is put
//! back in that order here, walking the executed operation against the
//! result (and the schema's field types, for the objects below).
//!
//! The object type of a value typed by an interface or union is read from a
//! `__typename` selected in it, else it is the first member type whose
//! collected keys are exactly the object's keys (after `nulls.rs` settled
//! the errors, every collected field of the runtime type is a key); when
//! none matches, every type condition counts as applying.

use async_graphql::{Name, Value};
use async_graphql_parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, OperationDefinition, Selection,
    SelectionSet,
};
use async_graphql_value::{ConstValue, Value as InputValue};
use serde_json::Map;

use crate::nulls::{Nullability, named};

/// What the walk reads: the document, the operation, its variables and the schema's types.
struct Walk<'d> {
    doc: &'d ExecutableDocument,
    op: &'d OperationDefinition,
    variables: &'d Map<String, serde_json::Value>,
    types: &'d Nullability,
}

/// The collected fields with their response keys, in document order (a
/// key selected twice is listed twice; its first entry is its position).
type Grouped<'d> = Vec<(&'d str, &'d Field)>;

/// Puts every object of `data` in the order of the executed operation
/// (`operation` of `doc`, run with `variables`).
pub fn reorder(
    data: &mut Value,
    types: &Nullability,
    doc: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Map<String, serde_json::Value>,
) {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => &op.node,
            None => return,
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) => &op.node,
            None => return,
        },
    };
    let Some(root) = types.root(op.ty) else {
        return;
    };
    let walk = Walk {
        doc,
        op,
        variables,
        types,
    };
    walk.value(data, &[&op.selection_set.node], root);
}

impl<'d> Walk<'d> {
    /// Reorders `value` of (named) type `ty`, selected by `sets`: an object, or a list of them at any depth.
    fn value(&self, value: &mut Value, sets: &[&'d SelectionSet], ty: &str) {
        match value {
            Value::Object(map) => self.object(map, sets, ty),
            Value::List(items) => items.iter_mut().for_each(|item| self.value(item, sets, ty)),
            _ => {}
        }
    }

    fn object(
        &self,
        map: &mut async_graphql::indexmap::IndexMap<Name, Value>,
        sets: &[&'d SelectionSet],
        ty: &str,
    ) {
        let (runtime, grouped) = self.runtime(map, sets, ty);
        let position = |key: &Name| {
            grouped
                .iter()
                .position(|(k, _)| *k == key.as_str())
                .unwrap_or(usize::MAX)
        };
        if !map.keys().map(position).is_sorted() {
            let mut entries: Vec<(usize, Name, Value)> = std::mem::take(map)
                .into_iter()
                .map(|(k, v)| (position(&k), k, v))
                .collect();
            entries.sort_by_key(|(p, _, _)| *p);
            *map = entries.into_iter().map(|(_, k, v)| (k, v)).collect();
        }
        let owner = runtime.unwrap_or(ty);
        for (key, value) in map.iter_mut() {
            if !matches!(value, Value::Object(_) | Value::List(_)) {
                continue;
            }
            let mut fields = grouped
                .iter()
                .filter(|(k, _)| *k == key.as_str())
                .map(|(_, f)| *f);
            let Some(first) = fields.next() else { continue };
            let name = first.name.node.as_str();
            let Some(field_type) = self
                .types
                .field_type(owner, name)
                .or_else(|| self.types.field_type(ty, name))
            else {
                continue;
            };
            let more: Vec<&SelectionSet> = fields.map(|f| &f.selection_set.node).collect();
            if more.is_empty() {
                self.value(value, &[&first.selection_set.node], named(field_type));
            } else {
                let subs: Vec<&SelectionSet> = std::iter::once(&first.selection_set.node)
                    .chain(more)
                    .collect();
                self.value(value, &subs, named(field_type));
            }
        }
    }

    /// The object's type (`None`: unknown, every condition applies) and its collected fields.
    fn runtime<'t>(
        &self,
        map: &async_graphql::indexmap::IndexMap<Name, Value>,
        sets: &[&'d SelectionSet],
        ty: &'t str,
    ) -> (Option<&'t str>, Grouped<'d>)
    where
        'd: 't,
    {
        let Some(members) = self.types.possible(ty) else {
            return (Some(ty), self.collect(sets, Some(ty)));
        };
        let all = self.collect(sets, None);
        let typename = all
            .iter()
            .find(|(_, field)| field.name.node == "__typename");
        if let Some((key, _)) = typename
            && let Some(Value::String(name)) = map.get(*key)
            && let Some(member) = members.iter().find(|m| *m == name)
        {
            return (Some(member.as_str()), self.collect(sets, Some(member)));
        }
        for member in members {
            let grouped = self.collect(sets, Some(member));
            let keys = grouped
                .iter()
                .enumerate()
                .filter(|(i, (k, _))| !grouped[..*i].iter().any(|(o, _)| o == k))
                .count();
            if keys == map.len() && grouped.iter().all(|(k, _)| map.contains_key(*k)) {
                return (Some(member.as_str()), grouped);
            }
        }
        (None, all)
    }

    /// CollectFields on `sets` for an object of type `runtime` (`None`: every type condition applies).
    fn collect(&self, sets: &[&'d SelectionSet], runtime: Option<&str>) -> Grouped<'d> {
        let mut out = Vec::new();
        let mut visited = Vec::new();
        for set in sets {
            self.collect_into(set, runtime, &mut out, &mut visited);
        }
        out
    }

    fn collect_into(
        &self,
        set: &'d SelectionSet,
        runtime: Option<&str>,
        out: &mut Grouped<'d>,
        visited: &mut Vec<&'d str>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) if self.included(&f.node.directives) => {
                    out.push((f.node.response_key().node.as_str(), &f.node));
                }
                Selection::InlineFragment(frag) if self.included(&frag.node.directives) => {
                    let condition = frag
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str());
                    if condition.is_none_or(|c| self.applies(c, runtime)) {
                        self.collect_into(&frag.node.selection_set.node, runtime, out, visited);
                    }
                }
                Selection::FragmentSpread(spread) if self.included(&spread.node.directives) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if visited.contains(&name) {
                        continue;
                    }
                    visited.push(name);
                    let Some(frag) = self.doc.fragments.get(name) else {
                        continue;
                    };
                    if self.applies(frag.node.type_condition.node.on.node.as_str(), runtime) {
                        self.collect_into(&frag.node.selection_set.node, runtime, out, visited);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether a fragment on `condition` applies to an object of type `runtime`.
    fn applies(&self, condition: &str, runtime: Option<&str>) -> bool {
        let Some(runtime) = runtime else { return true };
        condition == runtime
            || self
                .types
                .possible(condition)
                .is_some_and(|m| m.iter().any(|t| t == runtime))
    }

    /// `@skip` and `@include`: whether a selection is collected.
    fn included(&self, directives: &[async_graphql_parser::Positioned<Directive>]) -> bool {
        directives.iter().all(|d| match d.node.name.node.as_str() {
            "skip" => self.flag(&d.node) != Some(true),
            "include" => self.flag(&d.node) != Some(false),
            _ => true,
        })
    }

    /// The `if` argument of a directive: a literal, or a variable (sent, else its default).
    fn flag(&self, directive: &Directive) -> Option<bool> {
        match &directive.get_argument("if")?.node {
            InputValue::Boolean(b) => Some(*b),
            InputValue::Variable(name) => match self.variables.get(name.as_str()) {
                Some(serde_json::Value::Bool(b)) => Some(*b),
                Some(_) => None,
                None => {
                    let def = self
                        .op
                        .variable_definitions
                        .iter()
                        .find(|v| v.node.name.node == *name)?;
                    match def.node.default_value.as_ref().map(|d| &d.node) {
                        Some(ConstValue::Boolean(b)) => Some(*b),
                        _ => None,
                    }
                }
            },
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
