//! Limits on GraphQL operations, checked on the parsed document without
//! the schema: depth, aliases, root fields and cost.
//!
//! ```yaml
//! limits:
//!   max_depth: 10             # deepest field nesting; a root field is depth 1
//!   max_aliases: 20           # aliased fields, counted at every fragment spread
//!   max_root_fields: 10       # root field selections (aliases count: `a: user b: user` is 2)
//!   max_cost: 1000            # the operation's cost under `costs`
//!   costs:                    # per-field costs; default 1
//!     "Query.search": 10      # Type.field: the root type, or a fragment's type condition
//!     author: 2               # field: under any parent
//!     default: 1              # every other field
//!   list_arguments: [first, last, limit]   # their integer value multiplies the field's selection
//! ```
//!
//! Every limit is optional (absent: not checked). The cost of a field is
//! its own cost plus, when it has a selection, the selection's cost times
//! the field's first list argument (a literal or a variable; absent: 1) —
//! so `search(first: 50) { title author { name } }` under the costs above
//! is `10 + 50 × (1 + 2 + 1) = 210`. Over a limit, the GraphQL error's
//! `extensions` name it: `{"code":"COST_LIMIT_EXCEEDED","limit":"max_cost","max":1000,"value":1210}`.

mod analyze;
mod cache;
mod cost;
mod refusal;

use std::collections::HashMap;

use serde::Deserialize;

pub use analyze::{Analysis, MAX_NESTING, analyze, select, type_name};
pub use cache::{Document, DocumentCache, Fetched};
pub use cost::CostModel;
pub use refusal::{Refusal, RefusalKind};

/// The `limits` section of the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The deepest field nesting allowed.
    pub max_depth: Option<u64>,
    /// The most aliased fields allowed.
    pub max_aliases: Option<u64>,
    /// The most root field selections allowed.
    pub max_root_fields: Option<u64>,
    /// The highest cost allowed.
    pub max_cost: Option<u64>,
    /// Per-field costs: `Type.field`, `field` or `default`.
    #[serde(default)]
    pub costs: HashMap<String, u64>,
    /// Arguments whose integer value multiplies a field's selection.
    #[serde(default)]
    pub list_arguments: Vec<String>,
}

/// The limits, ready to check.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    max_depth: Option<u64>,
    max_aliases: Option<u64>,
    max_root_fields: Option<u64>,
    max_cost: Option<u64>,
    /// The cost model the analysis uses.
    pub model: CostModel,
}

impl Limits {
    /// Validates the config section.
    pub fn new(config: &LimitsConfig) -> Result<Limits, String> {
        Ok(Limits {
            max_depth: config.max_depth,
            max_aliases: config.max_aliases,
            max_root_fields: config.max_root_fields,
            max_cost: config.max_cost,
            model: CostModel::new(&config.costs, &config.list_arguments).map_err(|e| format!("limits.{e}"))?,
        })
    }

    /// The first limit `analysis` is over, as the refusal naming it.
    pub fn check(&self, analysis: &Analysis<'_>) -> Result<(), Refusal> {
        let checks = [
            (self.max_depth, analysis.depth, "max_depth", "DEPTH_LIMIT_EXCEEDED", "depth"),
            (self.max_aliases, analysis.aliases, "max_aliases", "ALIAS_LIMIT_EXCEEDED", "aliases"),
            (self.max_root_fields, analysis.root_field_count, "max_root_fields", "ROOT_FIELD_LIMIT_EXCEEDED", "root fields"),
            (self.max_cost, analysis.cost, "max_cost", "COST_LIMIT_EXCEEDED", "cost"),
        ];
        for (max, value, limit, code, what) in checks {
            if let Some(max) = max.filter(|&max| value > max) {
                return Err(over(code, limit, what, max, value));
            }
        }
        Ok(())
    }
}

fn over(code: &'static str, limit: &'static str, what: &str, max: u64, value: u64) -> Refusal {
    Refusal::new(code, format!("operation {what} {value} exceeds the limit {limit} = {max}"))
        .with("limit", limit)
        .with("max", max)
        .with("value", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(depth: u64, aliases: u64, roots: u64, cost: u64) -> Analysis<'static> {
        Analysis {
            operation_name: None,
            operation_type: async_graphql_parser::types::OperationType::Query,
            root_fields: vec![],
            root_field_count: roots,
            depth,
            aliases,
            cost,
            introspection: false,
        }
    }

    fn limits() -> Limits {
        let config = LimitsConfig {
            max_depth: Some(5),
            max_aliases: Some(2),
            max_root_fields: Some(3),
            max_cost: Some(100),
            ..LimitsConfig::default()
        };
        Limits::new(&config).unwrap()
    }

    #[test]
    fn at_the_limit_passes_and_one_over_names_limit_max_and_value() {
        let limits = limits();
        assert_eq!(limits.check(&analysis(5, 2, 3, 100)), Ok(()));
        let cases = [
            (analysis(6, 0, 1, 1), "DEPTH_LIMIT_EXCEEDED", "max_depth", 5, 6),
            (analysis(1, 3, 1, 1), "ALIAS_LIMIT_EXCEEDED", "max_aliases", 2, 3),
            (analysis(1, 0, 4, 1), "ROOT_FIELD_LIMIT_EXCEEDED", "max_root_fields", 3, 4),
            (analysis(1, 0, 1, 101), "COST_LIMIT_EXCEEDED", "max_cost", 100, 101),
        ];
        for (a, code, limit, max, value) in cases {
            let refusal = limits.check(&a).unwrap_err();
            assert_eq!(refusal.code, code);
            let ext = refusal.extensions();
            assert_eq!((ext["limit"].as_str(), ext["max"].as_u64(), ext["value"].as_u64()), (Some(limit), Some(max), Some(value)));
            assert!(refusal.message.contains(&format!("{limit} = {max}")), "{}", refusal.message);
        }
    }

    #[test]
    fn absent_limits_are_not_checked() {
        let limits = Limits::new(&LimitsConfig::default()).unwrap();
        assert_eq!(limits.check(&analysis(1000, 1000, 1000, u64::MAX)), Ok(()));
    }
}
