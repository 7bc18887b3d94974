//! The cost model: what one field costs, from the config's `costs` map
//! (`"Type.field"`, a bare `"field"`, and `default`), and how many times its
//! selection counts when a list argument (`first`, `last`, `limit`, …) says
//! how many items it asks for — like GitHub's and Shopify's models, without
//! needing the schema.

use std::collections::HashMap;

use async_graphql_parser::types::Field;
use async_graphql_value::Value;
use foldhash::fast::FixedState;

type Map<V> = HashMap<Box<str>, V, FixedState>;

/// Per-field costs and list multipliers, built once from the config.
#[derive(Debug, Clone)]
pub struct CostModel {
    /// `Type.field` costs, by type then field.
    typed: Map<Map<u64>>,
    /// Bare `field` costs (any parent type).
    bare: Map<u64>,
    /// The cost of a field no entry names.
    default: u64,
    /// The arguments whose integer value multiplies the field's selection.
    list_arguments: Vec<Box<str>>,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel { typed: Map::default(), bare: Map::default(), default: 1, list_arguments: Vec::new() }
    }
}

impl CostModel {
    /// A model from the config's `costs` entries (`default` is the cost of
    /// unnamed fields, 1 when absent) and list arguments.
    pub fn new(costs: &HashMap<String, u64>, list_arguments: &[String]) -> Result<CostModel, String> {
        let mut model = CostModel { list_arguments: list_arguments.iter().map(|a| a.as_str().into()).collect(), ..CostModel::default() };
        for (key, &cost) in costs {
            match key.split_once('.') {
                _ if key == "default" => model.default = cost,
                Some((ty, field)) if is_name(ty) && is_name(field) => {
                    model.typed.entry(ty.into()).or_default().insert(field.into(), cost);
                }
                None if is_name(key) => {
                    model.bare.insert(key.as_str().into(), cost);
                }
                _ => return Err(format!("costs: `{key}` is not `Type.field`, `field` or `default`")),
            }
        }
        if let Some(bad) = list_arguments.iter().find(|a| !is_name(a)) {
            return Err(format!("list_arguments: `{bad}` is not a GraphQL argument name"));
        }
        Ok(model)
    }

    /// What field `field` costs under `parent` (the type, when the document
    /// names it: the root type, or an enclosing fragment's type condition).
    pub fn field_cost(&self, parent: Option<&str>, field: &str) -> u64 {
        if let Some(cost) = parent.and_then(|p| self.typed.get(p)).and_then(|fields| fields.get(field)) {
            return *cost;
        }
        if self.bare.is_empty() {
            return self.default;
        }
        self.bare.get(field).copied().unwrap_or(self.default)
    }

    /// How many items `field` asks for: the first configured list argument
    /// it carries (a literal, or a variable's value or default), else 1.
    /// Negative values count as 0.
    pub fn multiplier(&self, field: &Field, variable: &dyn Fn(&str) -> Option<i64>) -> u64 {
        if self.list_arguments.is_empty() || field.arguments.is_empty() {
            return 1;
        }
        for wanted in &self.list_arguments {
            let Some((_, value)) = field.arguments.iter().find(|(name, _)| name.node.as_str() == &**wanted) else {
                continue;
            };
            let size = match &value.node {
                Value::Number(n) => n.as_i64(),
                Value::Variable(name) => variable(name.as_str()),
                _ => None,
            };
            if let Some(size) = size {
                return u64::try_from(size).unwrap_or(0);
            }
        }
        1
    }
}

/// A GraphQL name: `[_A-Za-z][_0-9A-Za-z]*`.
fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'_' | b'a'..=b'z' | b'A'..=b'Z')) && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(costs: &[(&str, u64)], lists: &[&str]) -> Result<CostModel, String> {
        let costs = costs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        CostModel::new(&costs, &lists.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn typed_entries_win_over_bare_ones_then_the_default() {
        let m = model(&[("Query.search", 10), ("search", 4), ("default", 2)], &[]).unwrap();
        assert_eq!(m.field_cost(Some("Query"), "search"), 10);
        assert_eq!(m.field_cost(Some("User"), "search"), 4);
        assert_eq!(m.field_cost(None, "search"), 4);
        assert_eq!(m.field_cost(None, "name"), 2);
        assert_eq!(model(&[], &[]).unwrap().field_cost(None, "x"), 1);
    }

    #[test]
    fn malformed_keys_and_arguments_are_refused_by_name() {
        assert!(model(&[("Query.", 1)], &[]).unwrap_err().contains("`Query.`"));
        assert!(model(&[("a.b.c", 1)], &[]).unwrap_err().contains("a.b.c"));
        assert!(model(&[], &["fir st"]).unwrap_err().contains("fir st"));
    }
}
