//! One walk over the selected operation of a parsed document, without the
//! schema: its name and type, its root fields, and the figures the limits
//! check — depth, aliases, root fields, cost — with fragments and inline
//! fragments counted where they are spread, depth followed through them,
//! and a cycle of fragments refused.
//!
//! Each named fragment is walked once per operation (its figures are
//! remembered and added at every spread), so a document that spreads
//! fragments exponentially often costs a walk linear in its size while its
//! figures still count every spread.

use async_graphql_parser::types::{
    DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql_value::ConstValue;

use super::{cost::CostModel, refusal::Refusal};

/// Nesting (fields plus fragment spreads) past which a document is refused
/// outright, so the walk's recursion stays bounded whatever the limits.
pub const MAX_NESTING: usize = 256;

/// What the filter knows about one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis<'d> {
    /// The operation's name (`None`: anonymous).
    pub operation_name: Option<&'d str>,
    /// `query`, `mutation` or `subscription`.
    pub operation_type: OperationType,
    /// The distinct root field names (not aliases), in document order.
    pub root_fields: Vec<&'d str>,
    /// Root field selections, aliases counted (`a: user b: user` is 2).
    pub root_field_count: u64,
    /// The deepest field nesting; a root field is depth 1.
    pub depth: u64,
    /// Aliased fields, counted at every fragment spread.
    pub aliases: u64,
    /// The cost under the model (see [`CostModel`]).
    pub cost: u64,
    /// Whether `__schema` or `__type` is selected anywhere.
    pub introspection: bool,
}

/// The name GraphQL gives an operation type (`query`, …).
pub fn type_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// The root type's default name, the parent of root fields in `costs` keys.
fn root_type(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    }
}

/// The operation `name` asks for (`None`: the document's only one).
pub fn select<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Result<(Option<&'d str>, &'d OperationDefinition), Refusal> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Ok((None, &op.node)),
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get_key_value(name) {
            Some((key, op)) => Ok((Some(key.as_str()), &op.node)),
            None => Err(Refusal::new("OPERATION_NOT_FOUND", format!("unknown operation named \"{name}\""))
                .with("operation_name", name)),
        },
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            let (key, op) = ops.iter().next().expect("one operation");
            Ok((Some(key.as_str()), &op.node))
        }
        (DocumentOperations::Multiple(_), None) => Err(Refusal::new(
            "OPERATION_NAME_REQUIRED",
            "the document has several operations: operationName must say which to run",
        )),
    }
}

/// Analyses operation `name` of `doc`; `variable` gives a request
/// variable's integer value (list arguments), the operation's defaults
/// are used for the others.
pub fn analyze<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
    model: &CostModel,
    variable: &dyn Fn(&str) -> Option<i64>,
) -> Result<Analysis<'d>, Refusal> {
    let (operation_name, op) = select(doc, name)?;
    let with_defaults = |var: &str| variable(var).or_else(|| default_of(op, var));
    let mut walker = Walker { doc, model, variable: &with_defaults, memo: Vec::new(), stack: Vec::new(), nesting: 0 };
    let root = Some(root_type(op.ty));
    let figures = walker.set(&op.selection_set.node, root)?;
    let mut roots = Roots { doc, names: Vec::new(), memo: Vec::new() };
    let root_field_count = roots.set(&op.selection_set.node);
    Ok(Analysis {
        operation_name,
        operation_type: op.ty,
        root_fields: roots.names,
        root_field_count,
        depth: figures.depth,
        aliases: figures.aliases,
        cost: figures.cost,
        introspection: figures.introspection,
    })
}

/// A variable's default value in `op`, when an integer.
fn default_of(op: &OperationDefinition, var: &str) -> Option<i64> {
    let def = op.variable_definitions.iter().find(|d| d.node.name.node.as_str() == var)?;
    match def.node.default_value.as_ref().map(|v| &v.node) {
        Some(ConstValue::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// The figures of one selection set.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    depth: u64,
    aliases: u64,
    cost: u64,
    introspection: bool,
}

impl Figures {
    /// Siblings: the deepest depth, the sums of the rest.
    fn add(&mut self, other: Figures) {
        self.depth = self.depth.max(other.depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.cost = self.cost.saturating_add(other.cost);
        self.introspection |= other.introspection;
    }
}

struct Walker<'d, 'a> {
    doc: &'d ExecutableDocument,
    model: &'a CostModel,
    variable: &'a dyn Fn(&str) -> Option<i64>,
    /// Fragments already walked, with their figures.
    memo: Vec<(&'d str, Figures)>,
    /// Fragments being walked (a spread of one of them is a cycle).
    stack: Vec<&'d str>,
    nesting: usize,
}

impl<'d> Walker<'d, '_> {
    /// A selection set whose fields belong to `parent` (when known).
    fn set(&mut self, set: &'d SelectionSet, parent: Option<&'d str>) -> Result<Figures, Refusal> {
        let mut figures = Figures::default();
        for item in &set.items {
            let next = match &item.node {
                Selection::Field(field) => self.field(&field.node, parent)?,
                Selection::InlineFragment(inline) => {
                    let parent = inline.node.type_condition.as_ref().map(|t| t.node.on.node.as_str()).or(parent);
                    self.set(&inline.node.selection_set.node, parent)?
                }
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str())?,
            };
            figures.add(next);
        }
        Ok(figures)
    }

    fn field(&mut self, field: &'d Field, parent: Option<&'d str>) -> Result<Figures, Refusal> {
        let name = field.name.node.as_str();
        let own = Figures {
            depth: 1,
            aliases: u64::from(field.alias.is_some()),
            cost: self.model.field_cost(parent, name),
            introspection: name == "__schema" || name == "__type",
        };
        if field.selection_set.node.items.is_empty() {
            return Ok(own);
        }
        self.enter()?;
        let children = self.set(&field.selection_set.node, None)?;
        self.nesting -= 1;
        let times = self.model.multiplier(field, self.variable);
        Ok(Figures {
            depth: children.depth + 1,
            aliases: own.aliases.saturating_add(children.aliases),
            cost: own.cost.saturating_add(children.cost.saturating_mul(times)),
            introspection: own.introspection || children.introspection,
        })
    }

    fn fragment(&mut self, name: &str) -> Result<Figures, Refusal> {
        if let Some((_, figures)) = self.memo.iter().find(|(n, _)| *n == name) {
            return Ok(*figures);
        }
        let Some((key, def)) = self.doc.fragments.get_key_value(name) else {
            return Err(Refusal::new("UNKNOWN_FRAGMENT", format!("unknown fragment \"{name}\"")).with("fragment", name));
        };
        let key = key.as_str();
        if self.stack.contains(&key) {
            return Err(Refusal::new("FRAGMENT_CYCLE", format!("fragment \"{name}\" spreads itself (a cycle)"))
                .with("fragment", name));
        }
        self.enter()?;
        self.stack.push(key);
        let figures = self.set(&def.node.selection_set.node, Some(def.node.type_condition.node.on.node.as_str()));
        self.stack.pop();
        self.nesting -= 1;
        let figures = figures?;
        self.memo.push((key, figures));
        Ok(figures)
    }

    fn enter(&mut self) -> Result<(), Refusal> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(Refusal::new("DOCUMENT_TOO_DEEP", format!("the document nests more than {MAX_NESTING} levels"))
                .with("max", MAX_NESTING));
        }
        Ok(())
    }
}

/// The root fields of an operation, through fragments (already checked by
/// the walk: they exist and have no cycle). Each fragment is walked once:
/// its count is remembered, its names are already in the list.
struct Roots<'d> {
    doc: &'d ExecutableDocument,
    names: Vec<&'d str>,
    memo: Vec<(&'d str, u64)>,
}

impl<'d> Roots<'d> {
    /// Collects the names of `set`'s root fields; returns how many selections.
    fn set(&mut self, set: &'d SelectionSet) -> u64 {
        let mut count = 0u64;
        for item in &set.items {
            let more = match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if !self.names.contains(&name) {
                        self.names.push(name);
                    }
                    1
                }
                Selection::InlineFragment(inline) => self.set(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str()),
            };
            count = count.saturating_add(more);
        }
        count
    }

    fn fragment(&mut self, name: &str) -> u64 {
        if let Some((_, count)) = self.memo.iter().find(|(n, _)| *n == name) {
            return *count;
        }
        let Some((key, def)) = self.doc.fragments.get_key_value(name) else { return 0 };
        let count = self.set(&def.node.selection_set.node);
        self.memo.push((key.as_str(), count));
        count
    }
}

#[cfg(test)]
#[path = "analyze_tests.rs"]
mod tests;
