//! Turns a serde-saphyr error (YAML syntax, unknown key, wrong type, bad
//! size or duration, missing key, duplicate key) into a [`Diagnostic`] with
//! the parser's location, the key it is about and, where it helps, a
//! suggestion (`did you mean "config"?`).

use serde_saphyr::Error;
use serde_saphyr::MessageFormatter as _;

use super::source_index::{Node, SourceIndex, join};
use super::suggest::{did_you_mean, quoted_list};
use super::units::HELP_MARK;
use super::{Diagnostic, Loc};

/// The diagnostic for a manifest `text` that serde could not read.
pub fn diagnose(error: &Error, text: &str) -> Diagnostic {
    let index = SourceIndex::new(text);
    let loc = error.location().as_ref().and_then(Loc::from_yaml);
    let node = loc.as_ref().and_then(|loc| index.at(loc.line, loc.column));
    let key = node.map(|node| node.path.clone()).unwrap_or_default();
    let mut diagnostic = Diagnostic { loc, key, message: String::new(), help: None };
    describe(original(error), node, &index, &mut diagnostic);
    diagnostic
}

/// The error itself, without the alias or snippet wrappers.
fn original(mut error: &Error) -> &Error {
    while let Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } =
        error
    {
        error = inner;
    }
    error
}

/// Fills in message, help and (for a missing key) the key.
fn describe(error: &Error, node: Option<&Node>, index: &SourceIndex, d: &mut Diagnostic) {
    match error {
        Error::SerdeUnknownField { field, expected, .. } => {
            d.message = format!("unknown key \"{field}\"");
            d.help = Some(choices(field, expected, "valid keys here"));
        }
        Error::SerdeUnknownVariant { variant, expected, .. } => {
            d.message = format!("unknown value \"{variant}\"");
            d.help = Some(choices(variant, expected, "valid values"));
        }
        Error::SerdeMissingField { field, .. } => {
            d.message = format!("missing key \"{field}\"");
            d.key = missing_key_path(node, field);
        }
        Error::DuplicateMappingKey { key, .. } => duplicate(key.as_deref(), node, index, d),
        Error::SerdeInvalidType { unexpected, expected, .. } => {
            d.message = format!("invalid type: {unexpected}, expected {}", plain(expected));
        }
        Error::SerdeInvalidValue { unexpected, expected, .. } => {
            d.message = format!("invalid value: {unexpected}, expected {}", plain(expected));
        }
        Error::Message { msg, .. } => {
            let (message, help) = msg.split_once(HELP_MARK).unwrap_or((msg, ""));
            d.message = message.to_owned();
            d.help = (!help.is_empty()).then(|| help.to_owned());
        }
        Error::Eof { .. } if d.loc.as_ref().is_none_or(|loc| loc.line <= 1) => {
            d.message = "the manifest is empty".to_owned();
            d.help = Some("it needs at least `listen:` with one address".to_owned());
        }
        other => {
            d.message = serde_saphyr::UserMessageFormatter.format_message(other).into_owned();
        }
    }
}

/// `did you mean "x"?` when one choice is close, else the list of choices.
fn choices(input: &str, expected: &[&'static str], what: &str) -> String {
    did_you_mean(input, expected.iter().copied())
        .unwrap_or_else(|| format!("{what}: {}", quoted_list(expected.iter().copied())))
}

/// Where a missing key belongs: serde points at the mapping (or its first key).
fn missing_key_path(node: Option<&Node>, field: &str) -> String {
    match node {
        Some(Node { key_of: Some(mapping), .. }) => join(mapping, field),
        Some(node) => join(&node.path, field),
        None => field.to_owned(),
    }
}

/// A key written twice; plugin names get their own wording.
fn duplicate(key: Option<&str>, node: Option<&Node>, index: &SourceIndex, d: &mut Diagnostic) {
    let key = key.unwrap_or("?");
    let in_plugins = node.and_then(|node| node.key_of.as_deref()) == Some("plugins");
    d.message = match in_plugins {
        true => format!("plugin \"{key}\" is defined twice"),
        false => format!("duplicate key \"{key}\""),
    };
    let first = index.first_key(&d.key);
    let first = first.filter(|first| Some((first.line, first.column)) != at(d));
    d.help = Some(match (first, in_plugins) {
        (Some(first), true) => format!(
            "the first definition is at line {}, column {}; plugin names must be unique",
            first.line, first.column
        ),
        (Some(first), false) => {
            format!("it is first written at line {}, column {}; keep one", first.line, first.column)
        }
        (None, _) => "a key may appear only once in a mapping; keep one".to_owned(),
    });
}

fn at(d: &Diagnostic) -> Option<(u64, u64)> {
    d.loc.as_ref().map(|loc| (loc.line, loc.column))
}

/// Serde's names for what it expected, in manifest words.
fn plain(expected: &str) -> String {
    if expected.starts_with("struct ") {
        return "a mapping".to_owned();
    }
    match expected {
        "a nonzero usize" | "a nonzero u32" => "a whole number above 0".to_owned(),
        "usize" | "u32" | "u64" => "a whole number".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnose_text(text: &str) -> Diagnostic {
        match super::super::raw::from_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(error) => diagnose(&error, text),
        }
    }

    #[test]
    fn an_unknown_key_suggests_the_close_one() {
        let d = diagnose_text("listen: []\nplugins:\n  jwt:\n    kind: native\n    path: a\n    confg: {}\n");
        assert_eq!(d.message, "unknown key \"confg\"");
        assert_eq!(d.loc, Some(Loc { line: 6, column: 5 }));
        assert_eq!(d.key, "plugins.jwt.confg");
        assert_eq!(d.help.as_deref(), Some("did you mean \"config\"?"));
    }

    #[test]
    fn an_unknown_key_far_from_all_lists_them() {
        let d = diagnose_text("listen: []\nbanana: 1\n");
        assert_eq!(d.help.as_deref(), Some("valid keys here: \"listen\", \"limits\", \"log\", \"plugins\", \"routes\""));
    }

    #[test]
    fn a_missing_key_is_named_where_it_belongs() {
        let d = diagnose_text("listen: []\nroutes:\n  - path: /x\n");
        assert_eq!(d.message, "missing key \"handler\"");
        assert_eq!(d.key, "routes[0].handler");
    }

    #[test]
    fn a_bad_size_keeps_its_help() {
        let d = diagnose_text("listen: []\nlimits:\n  max_body: 1XB\n");
        assert_eq!(d.message, "invalid size \"1XB\": unknown unit \"XB\"");
        assert_eq!(d.loc, Some(Loc { line: 3, column: 13 }));
        assert_eq!(d.key, "limits.max_body");
        assert!(d.help.is_some_and(|help| help.contains("KiB")));
    }

    #[test]
    fn a_duplicate_plugin_points_at_the_first() {
        let text = "listen: []\nplugins:\n  a: {kind: native, path: x}\n  a: {kind: native, path: y}\n";
        let d = diagnose_text(text);
        assert_eq!(d.message, "plugin \"a\" is defined twice");
        assert_eq!(d.loc, Some(Loc { line: 4, column: 3 }));
        assert_eq!(d.help.as_deref(), Some("the first definition is at line 3, column 3; plugin names must be unique"));
    }
}
