//! Route checks: the path pattern, the reserved `/_covet/` prefix, methods,
//! filter and handler names, and conflicts between routes.
//!
//! Conflicts are found the way the router will meet them: every route goes
//! into one matchit tree per method (a route without `methods` into every
//! tree), and matchit's insert error is reported with the earlier route's
//! location.

use std::collections::HashMap;

use http::Method;
use serde_saphyr::Spanned;

use super::raw::RawRoute;
use super::suggest::{did_you_mean, quoted_list};
use super::validate::Problems;
use super::{Loc, Named, RouteSpec};

/// The methods a route may name, in the order of the per-method trees.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

/// The prefix the host keeps for its own endpoints.
const RESERVED: &str = "/_covet/";

/// Most parameters a route path may have (matchit, the router, panics past
/// 26; found by the manifest fuzz target).
pub const MAX_ROUTE_PARAMS: usize = 16;

const SYNTAX_HELP: &str = "in a path, `{name}` matches one segment and `{*name}` the rest \
    of the path (last segment only); write `{{` or `}}` for a literal brace";

/// Checks every route against the defined `plugins` and each other;
/// `tracing` says whether `telemetry.tracing` is set (a route's
/// `trace_sample_ratio` needs it).
pub fn check(raw: Vec<RawRoute>, plugins: &[String], tracing: bool, problems: &mut Problems) -> Vec<RouteSpec> {
    let mut table = Table::default();
    let mut specs = Vec::with_capacity(raw.len());
    for (index, route) in raw.into_iter().enumerate() {
        let key = format!("routes[{index}]");
        let methods = methods(&route, &key, problems);
        // A route whose methods are all invalid is not placed: it would
        // otherwise go into every tree and report conflicts it does not have.
        let placeable = route.methods.is_none() || !methods.is_empty();
        if path_is_usable(&route.path, &key, problems) && placeable {
            table.insert(index, &route.path, &methods, problems);
        }
        let filters = filters(&route.filters, &key, plugins, problems);
        let handler = plugin_ref(
            &route.handler,
            "as handler",
            format!("{key}.handler"),
            plugins,
            problems,
        );
        let location = Loc::of(&route.path);
        let trace_sample_ratio = trace_ratio(route.trace_sample_ratio.as_ref(), &key, tracing, problems);
        specs.push(RouteSpec {
            path: route.path.value,
            methods,
            filters,
            handler,
            trace_sample_ratio,
            location,
        });
    }
    specs
}

/// A route's sampling ratio: from 0.0 to 1.0, and only with tracing on.
fn trace_ratio(ratio: Option<&Spanned<f64>>, key: &str, tracing: bool, problems: &mut Problems) -> Option<f64> {
    let ratio = ratio?;
    let key = format!("{key}.trace_sample_ratio");
    if !tracing {
        let help = "tracing is off: add `telemetry: { tracing: { sample_ratio: 0.01 } }`, or remove `trace_sample_ratio`";
        problems.report(Loc::of(ratio), key, "`trace_sample_ratio` needs `telemetry.tracing`".to_owned(), Some(help.to_owned()));
        return None;
    }
    super::telemetry::ratio_value(ratio, &key, problems)
}

/// A path must start with `/` and stay out of `/_covet/`.
fn path_is_usable(path: &Spanned<String>, key: &str, problems: &mut Problems) -> bool {
    let (message, help) = if !path.value.starts_with('/') {
        let message = format!("route path \"{}\" does not start with \"/\"", path.value);
        (message, format!("write \"/{}\"", path.value))
    } else if path.value.starts_with(RESERVED) || path.value == RESERVED.trim_end_matches('/') {
        let message = format!("the path prefix \"{RESERVED}\" is reserved for the host");
        (
            message,
            "the host serves its own endpoints there; choose another path".to_owned(),
        )
    } else if let count = param_count(&path.value)
        && count > MAX_ROUTE_PARAMS
    {
        let message = format!("the route path has {count} parameters; at most {MAX_ROUTE_PARAMS} are allowed");
        let help = "match the rest of the path with one `{*rest}` and split it in the handler, \
            or write `{{` for a literal brace";
        (message, help.to_owned())
    } else {
        return true;
    };
    problems.report(Loc::of(path), format!("{key}.path"), message, Some(help));
    false
}

/// The parameters (`{name}`, `{*name}`) in a route path; `{{` and `}}` are
/// literal braces. Every other `{` counts, so a malformed path is never
/// counted short of what matchit would see.
fn param_count(path: &str) -> usize {
    let bytes = path.as_bytes();
    let (mut i, mut count) = (0, 0);
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'{', Some(b'{')) | (b'}', Some(b'}')) => i += 2,
            (b'{', _) => {
                count += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    count
}

fn methods(route: &RawRoute, key: &str, problems: &mut Problems) -> Vec<Method> {
    let Some(list) = &route.methods else {
        return Vec::new();
    };
    if list.value.is_empty() {
        let help = "remove `methods` to answer every method, or name some, e.g. [GET]".to_owned();
        let message = "`methods` is empty".to_owned();
        problems.report(Loc::of(list), format!("{key}.methods"), message, Some(help));
    }
    let mut methods: Vec<Method> = Vec::new();
    for (j, written) in list.value.iter().enumerate() {
        let key = format!("{key}.methods[{j}]");
        match method(&written.value) {
            Ok(method) if methods.contains(&method) => {
                let message = format!("method {method} is listed twice");
                problems.report(
                    Loc::of(written),
                    key,
                    message,
                    Some("remove one".to_owned()),
                );
            }
            Ok(method) => methods.push(method),
            Err(help) => {
                let message = format!("unknown HTTP method \"{}\"", written.value);
                problems.report(Loc::of(written), key, message, Some(help));
            }
        }
    }
    methods
}

/// A standard method, written upper-case; else the help for the mistake.
fn method(text: &str) -> Result<Method, String> {
    if METHODS.contains(&text) {
        return Method::from_bytes(text.as_bytes()).map_err(|e| e.to_string());
    }
    let upper = text.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        return Err(format!(
            "methods are written in upper case: did you mean \"{upper}\"?"
        ));
    }
    let list = || format!("the methods are {}", METHODS.join(", "));
    Err(did_you_mean(&upper, METHODS).unwrap_or_else(list))
}

fn filters(
    raw: &[Spanned<String>],
    key: &str,
    plugins: &[String],
    problems: &mut Problems,
) -> Vec<Named> {
    let mut named = Vec::with_capacity(raw.len());
    for (j, filter) in raw.iter().enumerate() {
        let key = format!("{key}.filters[{j}]");
        if raw[..j].iter().any(|earlier| earlier.value == filter.value) {
            let message = format!("filter \"{}\" is listed twice in this route", filter.value);
            let help = "a filter runs once per request; remove one".to_owned();
            problems.report(Loc::of(filter), key.clone(), message, Some(help));
        }
        named.push(plugin_ref(filter, "in filters", key, plugins, problems));
    }
    named
}

/// A reference to a plugin; reported when no plugin has that name.
fn plugin_ref(
    name: &Spanned<String>,
    role: &str,
    key: String,
    plugins: &[String],
    problems: &mut Problems,
) -> Named {
    let location = Loc::of(name);
    if !plugins.contains(&name.value) {
        let message = format!("unknown plugin \"{}\" {role}", name.value);
        let names = || plugins.iter().map(String::as_str);
        let help = match did_you_mean(&name.value, names()) {
            Some(hint) => hint,
            None if plugins.is_empty() => {
                "no plugins are defined; add one under `plugins:`".to_owned()
            }
            None => format!("the defined plugins are {}", quoted_list(names())),
        };
        problems.report(location.clone(), key, message, Some(help));
    }
    Named {
        name: name.value.clone(),
        location,
    }
}

/// One matchit tree per method, and which route owns each pattern in it.
#[derive(Default)]
struct Table {
    trees: [matchit::Router<usize>; 9],
    owners: HashMap<(usize, String), (usize, Loc)>,
}

/// One insert failure and the methods it happened for.
struct Failure {
    error: matchit::InsertError,
    earlier: Option<(usize, Loc)>,
    methods: Vec<&'static str>,
}

impl Table {
    /// Inserts route `index` for `methods` (none: every method), reporting
    /// each distinct matchit error once.
    fn insert(
        &mut self,
        index: usize,
        path: &Spanned<String>,
        methods: &[Method],
        problems: &mut Problems,
    ) {
        let trees = (0..METHODS.len())
            .filter(|&t| methods.is_empty() || methods.iter().any(|m| m == METHODS[t]));
        let mut failures: Vec<Failure> = Vec::new();
        for tree in trees {
            match self.trees[tree].insert(path.value.as_str(), index) {
                Ok(()) => {
                    self.owners
                        .insert((tree, path.value.clone()), (index, Loc::of(path)));
                }
                Err(error) => self.record(tree, error, &mut failures),
            }
        }
        for failure in failures {
            report(index, path, failure, methods.is_empty(), problems);
        }
    }

    fn record(&self, tree: usize, error: matchit::InsertError, failures: &mut Vec<Failure>) {
        let earlier = match &error {
            matchit::InsertError::Conflict { with } => {
                self.owners.get(&(tree, with.clone())).cloned()
            }
            _ => None,
        };
        let same = failures
            .iter_mut()
            .find(|f| f.error == error && f.earlier == earlier);
        match same {
            Some(failure) => failure.methods.push(METHODS[tree]),
            None => failures.push(Failure {
                error,
                earlier,
                methods: vec![METHODS[tree]],
            }),
        }
    }
}

/// Reports one insert failure of route `index`.
fn report(
    index: usize,
    path: &Spanned<String>,
    failure: Failure,
    any_method: bool,
    problems: &mut Problems,
) {
    let key = format!("routes[{index}].path");
    let text = lower_first(&failure.error.to_string());
    let (message, help) = match failure.error {
        matchit::InsertError::Conflict { .. } => (
            format!("route conflict: {text}"),
            conflict_help(&failure, any_method),
        ),
        _ => (
            format!("invalid route path \"{}\": {text}", path.value),
            SYNTAX_HELP.to_owned(),
        ),
    };
    problems.report(Loc::of(path), key, message, Some(help));
}

/// Names the earlier route and the methods the two routes share.
fn conflict_help(failure: &Failure, any_method: bool) -> String {
    let methods = match any_method && failure.methods.len() == METHODS.len() {
        true => "every method".to_owned(),
        false => failure.methods.join(", "),
    };
    let earlier = match &failure.earlier {
        Some((i, Loc { line, column })) => format!("routes[{i}] at line {line}, column {column}"),
        None => "an earlier route".to_owned(),
    };
    format!(
        "it clashes with {earlier} for {methods}; give the routes distinct paths or disjoint methods"
    )
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_counted_as_matchit_sees_them_or_more() {
        assert_eq!(param_count("/users/{id}/files/{*rest}"), 2);
        assert_eq!(param_count("/literal/{{braces}}/{id}"), 1);
        assert_eq!(param_count("/{{{a}"), 1);
        assert_eq!(param_count("/{a{b}"), 2, "a malformed path is not counted short");
        assert_eq!(param_count("/plain"), 0);
    }

    #[test]
    fn a_path_with_more_params_than_the_router_takes_is_refused_not_a_panic() {
        // Found by the manifest fuzz target: matchit panics past 26 parameters.
        let segments: String = (0..30).map(|i| format!("/{{p{i}}}")).collect();
        let text = format!("listen: [{{ addr: 127.0.0.1:0 }}]\nplugins: {{ h: {{ kind: native, path: h.so }} }}\nroutes:\n  - {{ path: \"{segments}\", handler: h }}\n");
        let report = crate::manifest::Manifest::parse(std::path::Path::new("m.yaml"), &text).unwrap_err().to_string();
        assert!(report.contains("the route path has 30 parameters; at most 16 are allowed"), "{report}");
        assert!(report.contains("m.yaml:4:"), "{report}");
        let sixteen: String = (0..16).map(|i| format!("/{{p{i}}}")).collect();
        assert_eq!(param_count(&sixteen), MAX_ROUTE_PARAMS);
    }

    #[test]
    fn methods_are_upper_case_standard_ones() {
        assert_eq!(method("GET"), Ok(Method::GET));
        assert_eq!(
            method("get"),
            Err("methods are written in upper case: did you mean \"GET\"?".to_owned())
        );
        assert_eq!(method("GTE"), Err("did you mean \"GET\"?".to_owned()));
        assert!(method("BREW").is_err_and(|help| help.starts_with("the methods are GET, HEAD")));
    }

    #[test]
    fn matchit_messages_read_as_sentences() {
        assert_eq!(lower_first("Only one parameter"), "only one parameter");
        assert_eq!(lower_first(""), "");
    }
}
